//! The Helm chart (deploy/helm/polaris), rendered and checked: one Deployment per role with probes on the
//! endpoints every role serves, the database URL only by secret reference, a ServiceMonitor reaching every role,
//! and least-privilege RBAC for the worker.
//!
//! The rendering is checked in (deploy/helm/rendered/polaris.yaml) so the checks run where helm is not
//! installed; where it is (./dev/test builds it), the chart is rendered afresh and must equal the checked-in
//! file. Regenerate: `POLARIS_WRITE_RENDERED=1 cargo test -p polaris-server --test helm`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn helm() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("POLARIS_HELM") {
        return Some(PathBuf::from(p));
    }
    let cache = root().join(".polaris/cache");
    let cached = std::fs::read_dir(&cache).ok()?.filter_map(Result::ok).map(|e| e.path().join("helm")).find(|p| {
        p.parent().and_then(|d| d.file_name()).is_some_and(|n| n.to_string_lossy().starts_with("helm-")) && p.exists()
    });
    cached.or_else(|| {
        Command::new("helm").arg("version").output().ok().filter(|o| o.status.success()).map(|_| "helm".into())
    })
}

fn rendered() -> String {
    let checked_in = root().join("deploy/helm/rendered/polaris.yaml");
    let Some(helm) = helm() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "helm is missing in CI: ./dev/test builds it into .polaris/cache/helm-<version>/"
        );
        return std::fs::read_to_string(&checked_in).expect("deploy/helm/rendered/polaris.yaml is checked in");
    };
    let out = Command::new(&helm)
        .args(["template", "polaris", "deploy/helm/polaris", "--namespace", "polaris", "--kube-version", "1.34.0"])
        .current_dir(root())
        .output()
        .expect("helm runs");
    assert!(out.status.success(), "helm template failed: {}", String::from_utf8_lossy(&out.stderr));
    let fresh = String::from_utf8(out.stdout).expect("utf8");
    if std::env::var_os("POLARIS_WRITE_RENDERED").is_some() {
        std::fs::create_dir_all(checked_in.parent().expect("dir")).expect("mkdir");
        std::fs::write(&checked_in, &fresh).expect("write rendering");
    }
    let stored = std::fs::read_to_string(&checked_in).unwrap_or_default();
    assert_eq!(stored, fresh, "deploy/helm/rendered/polaris.yaml is stale; regenerate with POLARIS_WRITE_RENDERED=1");
    fresh
}

fn documents() -> Vec<Value> {
    let text = rendered();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("every rendered document is YAML"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"].as_str() == Some(kind)).collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence().map(|s| s.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

#[test]
fn one_deployment_per_role_with_probes_and_secret_references() {
    let docs = documents();
    let deployments = of_kind(&docs, "Deployment");
    let mut roles: Vec<String> = Vec::new();
    for d in &deployments {
        let pod = &d["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        let args = strings(&c["args"]);
        assert_eq!(args[..2], ["serve".to_owned(), "--roles".to_owned()], "{args:?}");
        roles.push(args[2].clone());
        assert_eq!(c["livenessProbe"]["httpGet"]["path"].as_str(), Some("/healthz"));
        assert_eq!(c["readinessProbe"]["httpGet"]["path"].as_str(), Some("/readyz"));
        assert_eq!(c["ports"][0]["containerPort"].as_i64(), Some(8080));
        let db = c["env"].as_sequence().expect("env").iter().find(|e| e["name"].as_str() == Some("DATABASE_URL"));
        let db = db.expect("DATABASE_URL is set");
        assert!(db.get("value").is_none(), "the database URL is never rendered in clear");
        assert!(db["valueFrom"]["secretKeyRef"]["name"].as_str().is_some());
        assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"].as_bool(), Some(false));
        let worker = args[2] == "worker";
        assert_eq!(pod["automountServiceAccountToken"].as_bool(), Some(worker), "only the worker talks to Kubernetes");
        assert_eq!(pod["serviceAccountName"].as_str().is_some_and(|s| s.ends_with("-worker")), worker);
    }
    roles.sort();
    assert_eq!(roles, ["api", "projector", "relay", "worker"]);
    let relay = deployments.iter().find(|d| d["metadata"]["name"].as_str().is_some_and(|n| n.ends_with("-relay")));
    assert_eq!(relay.expect("relay")["spec"]["replicas"].as_i64(), Some(1), "one relay moves the cursor");
    // No Secret is rendered: secrets are referenced, never shipped in the chart.
    assert!(of_kind(&docs, "Secret").is_empty());
    let config = of_kind(&docs, "ConfigMap");
    let data = &config.first().expect("a ConfigMap")["data"];
    for key in ["KAFKA_BOOTSTRAP", "POLARIS_EVENTS_TOPIC", "TEMPORAL_ADDRESS", "POLARIS_LISTEN"] {
        assert!(data[key].as_str().is_some(), "config has {key}");
    }
}

#[test]
fn every_role_is_scraped() {
    let docs = documents();
    let services = of_kind(&docs, "Service");
    assert_eq!(services.len(), 4, "a Service per role");
    let monitors = of_kind(&docs, "ServiceMonitor");
    let monitor = monitors.first().expect("a ServiceMonitor");
    assert_eq!(monitor["apiVersion"].as_str(), Some("monitoring.coreos.com/v1"));
    assert_eq!(monitor["spec"]["endpoints"][0]["path"].as_str(), Some("/metrics"));
    let selector = monitor["spec"]["selector"]["matchLabels"].as_mapping().expect("selector");
    for s in services {
        let labels = &s["metadata"]["labels"];
        for (k, v) in selector {
            assert_eq!(&labels[k], v, "{:?} is selected", s["metadata"]["name"]);
        }
        assert_eq!(s["spec"]["ports"][0]["name"].as_str(), Some("http"));
    }
}

#[test]
fn the_worker_gets_least_privilege_rbac() {
    let docs = documents();
    let roles = of_kind(&docs, "ClusterRole");
    let role = roles.first().expect("a ClusterRole for the worker");
    let mut granted: Vec<(String, String, Vec<String>)> = Vec::new();
    for rule in role["rules"].as_sequence().expect("rules") {
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                granted.push((group.clone(), resource, strings(&rule["verbs"])));
            }
        }
    }
    for (group, resource, verbs) in &granted {
        assert!(group != "*" && resource != "*" && !verbs.contains(&"*".to_owned()), "no wildcards: {granted:?}");
        assert!(!verbs.contains(&"escalate".to_owned()) && !verbs.contains(&"bind".to_owned()));
        let allowed = match (group.as_str(), resource.as_str()) {
            ("kafka.strimzi.io", "kafkas" | "kafkanodepools" | "kafkatopics" | "kafkarebalances") => true,
            ("", "namespaces") => true,
            ("", "secrets") => verbs == &["get".to_owned()],
            _ => false,
        };
        assert!(
            allowed,
            "the worker needs nothing beyond Strimzi kinds, namespaces and reading secrets: {group}/{resource} {verbs:?}"
        );
    }
    for kind in ["kafkas", "kafkanodepools", "kafkatopics", "kafkarebalances"] {
        let (_, _, verbs) = granted.iter().find(|(_, r, _)| r == kind).expect("each Strimzi kind is granted");
        for verb in ["get", "patch", "delete"] {
            assert!(verbs.contains(&verb.to_owned()), "{kind} needs {verb}");
        }
    }
    let binding = of_kind(&docs, "ClusterRoleBinding");
    let binding = binding.first().expect("bound");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    assert!(binding["subjects"][0]["name"].as_str().is_some_and(|n| n.ends_with("-worker")));
}

#[test]
fn the_dockerfile_builds_the_server_and_runs_it_unprivileged() {
    let text = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile at the repository root");
    assert!(text.contains("cargo build --release --locked -p polaris-server"));
    assert!(text.lines().any(|l| l.starts_with("USER ") && !l.contains("root") && l.trim() != "USER 0"));
    assert!(text.contains("EXPOSE 8080"));
    assert!(text.contains("ENTRYPOINT [\"/usr/local/bin/polaris-server\"]"));
}

/// The rendered objects (all but the ServiceMonitor, whose CRD the local API servers do not have) are accepted
/// by a real kube-apiserver: a server-side dry run validates them against the real schemas.
#[test]
fn a_real_api_server_accepts_the_rendered_chart() {
    let kubeconfig = PathBuf::from(polaris_test_support::harness::kubeconfig_dir()).join("aws-eu-west-1.kubeconfig");
    assert!(kubeconfig.exists(), "{} is missing; {}", kubeconfig.display(), polaris_test_support::START_HINT);
    let kubectl = root().join(".polaris/cache/venv/bin/kubectl");
    let run = |args: &[&str], input: &str| {
        use std::io::Write;
        let mut child = Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl runs (./dev/up installs it)");
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write");
        let out = child.wait_with_output().expect("kubectl finishes");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) =
        run(&["apply", "--server-side", "-f", "-"], "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: polaris\n");
    assert!(ok, "namespace polaris: {out}");
    let docs: Vec<String> = documents()
        .into_iter()
        .filter(|d| d["kind"].as_str() != Some("ServiceMonitor"))
        .map(|d| serde_yaml::to_string(&d).expect("yaml"))
        .collect();
    let (ok, out) = run(&["apply", "--server-side", "--dry-run=server", "-f", "-"], &docs.join("---\n"));
    assert!(ok, "the API server refused the chart: {out}");
    for kind in ["deployment.apps", "clusterrole.rbac.authorization.k8s.io", "serviceaccount", "configmap", "service"] {
        assert!(out.contains(kind), "{kind} was validated: {out}");
    }
}
