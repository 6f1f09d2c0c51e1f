//! Prints the CRDs Polaris generates from its own Strimzi types, as a JSON `v1/List` for `kubectl apply -f`.
//! `./dev/up` uses it only when the real Strimzi CRDs (../shared/strimzi-crds) are absent.

fn main() {
    match serde_json::to_string_pretty(&polaris_workers::strimzi::generated_crds()) {
        Ok(s) => println!("{s}"),
        Err(e) => {
            eprintln!("polaris-crds: {e}");
            std::process::exit(1);
        }
    }
}
