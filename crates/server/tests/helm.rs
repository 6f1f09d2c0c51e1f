//! The Helm chart (deploy/helm/polaris), rendered and checked: one Deployment per role with probes on the
//! endpoints every role serves, the database URL only by secret reference, a ServiceMonitor reaching every role,
//! least-privilege RBAC for the worker, and, with `istio.enabled`, the mesh objects of deploy/MESH.md validated
//! by Istio's real CRDs and by `istioctl analyze`.
//!
//! The renderings are checked in (deploy/helm/rendered/polaris.yaml with the defaults, polaris-istio.yaml with
//! deploy/helm/values-istio.yaml) so the checks run where helm is not installed; where it is (./dev/test builds
//! it), the chart is rendered afresh and must equal the checked-in files. Regenerate:
//! `POLARIS_WRITE_RENDERED=1 cargo test -p polaris-server --test server helm::`.

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

/// The chart rendered with `values` (a values file under deploy/helm, or none for the defaults), checked against
/// its checked-in rendering `deploy/helm/rendered/<rendering>`.
fn render(values: Option<&str>, rendering: &str) -> String {
    let checked_in = root().join("deploy/helm/rendered").join(rendering);
    let Some(helm) = helm() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "helm is missing in CI: ./dev/test builds it into .polaris/cache/helm-<version>/"
        );
        return std::fs::read_to_string(&checked_in).expect("the rendering is checked in");
    };
    let mut args =
        vec!["template", "polaris", "deploy/helm/polaris", "--namespace", "polaris", "--kube-version", "1.34.0"];
    if let Some(values) = values {
        args.extend(["-f", values]);
    }
    let out = Command::new(&helm).args(&args).current_dir(root()).output().expect("helm runs");
    assert!(out.status.success(), "helm template failed: {}", String::from_utf8_lossy(&out.stderr));
    let fresh = String::from_utf8(out.stdout).expect("utf8");
    if std::env::var_os("POLARIS_WRITE_RENDERED").is_some() {
        std::fs::create_dir_all(checked_in.parent().expect("dir")).expect("mkdir");
        std::fs::write(&checked_in, &fresh).expect("write rendering");
    }
    let stored = std::fs::read_to_string(&checked_in).unwrap_or_default();
    assert_eq!(stored, fresh, "deploy/helm/rendered/{rendering} is stale; regenerate with POLARIS_WRITE_RENDERED=1");
    fresh
}

fn parse(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).expect("every rendered document is YAML"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// The chart with its default values.
fn documents() -> Vec<Value> {
    parse(&render(None, "polaris.yaml"))
}

/// The chart in an Istio mesh, with a canary API (deploy/helm/values-istio.yaml).
fn mesh_documents() -> Vec<Value> {
    parse(&render(Some("deploy/helm/values-istio.yaml"), "polaris-istio.yaml"))
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
        // The credentials key: mounted from a Secret into the two roles that derive passwords, and no other.
        let derives = worker || args[2] == "api";
        let key = c["env"]
            .as_sequence()
            .expect("env")
            .iter()
            .find(|e| e["name"].as_str() == Some("POLARIS_CREDENTIALS_KEY_FILE"));
        assert_eq!(key.is_some(), derives, "{}: the credentials key", args[2]);
        let secret =
            pod["volumes"].as_sequence().and_then(|v| v.iter().find(|v| v["name"].as_str() == Some("credentials")));
        assert_eq!(secret.map(|v| v["secret"]["secretName"].is_string()), derives.then_some(true), "{}", args[2]);
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
            ("kafka.strimzi.io", "kafkas" | "kafkanodepools" | "kafkatopics" | "kafkarebalances" | "kafkausers") => {
                true
            }
            ("", "namespaces") => true,
            // The admin password's Secret is created once, never updated or listed.
            ("", "secrets") => verbs == &["get".to_owned(), "create".to_owned()],
            ("", "configmaps") => !verbs.contains(&"delete".to_owned()),
            // http_sd lists the Kafka pods; the worker never writes one.
            ("", "pods") => verbs == &["list".to_owned()],
            ("security.istio.io", "peerauthentications" | "authorizationpolicies") => true,
            ("networking.istio.io", "destinationrules") => true,
            ("monitoring.coreos.com", "podmonitors") => true,
            _ => false,
        };
        assert!(
            allowed,
            "the worker needs nothing beyond Strimzi kinds, namespaces, clusters' mesh objects and PodMonitors, the \
             metrics ConfigMap, the admin Secret and listing pods: {group}/{resource} {verbs:?}"
        );
    }
    // Deleting a cluster deletes its objects by label: `deletecollection` is its own verb.
    for kind in [
        "kafkas",
        "kafkanodepools",
        "kafkatopics",
        "kafkarebalances",
        "peerauthentications",
        "authorizationpolicies",
        "destinationrules",
        "podmonitors",
    ] {
        let (_, _, verbs) = granted.iter().find(|(_, r, _)| r == kind).expect("each kind the worker writes is granted");
        for verb in ["get", "list", "patch", "delete", "deletecollection"] {
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

/// Runs kubectl against the first local API server with `input` on stdin: whether it succeeded, and its output.
fn kubectl(args: &[&str], input: &str) -> (bool, String) {
    polaris_test_support::harness::kubectl("aws-eu-west-1", args, input)
}

/// A server-side dry run of `docs` in namespace `polaris` (the local API servers have the Prometheus Operator's
/// ServiceMonitor CRD, so the chart's ServiceMonitor is validated by its real schema too).
fn dry_run(docs: &[Value]) -> (bool, String) {
    let (ok, out) = kubectl(
        &["apply", "--server-side", "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: polaris\n",
    );
    assert!(ok, "namespace polaris: {out}");
    let docs: Vec<String> = docs.iter().map(|d| serde_yaml::to_string(d).expect("yaml")).collect();
    kubectl(&["apply", "--server-side", "--dry-run=server", "-n", "polaris", "-f", "-"], &docs.join("---\n"))
}

/// The rendered objects are accepted by a real kube-apiserver: a server-side dry run validates them against the
/// real schemas.
#[test]
fn a_real_api_server_accepts_the_rendered_chart() {
    let (ok, out) = dry_run(&documents());
    assert!(ok, "the API server refused the chart: {out}");
    for kind in [
        "deployment.apps",
        "clusterrole.rbac.authorization.k8s.io",
        "serviceaccount",
        "configmap",
        "service",
        "servicemonitor.monitoring.coreos.com",
    ] {
        assert!(out.contains(kind), "{kind} was validated: {out}");
    }
}

const ISTIO_KINDS: [&str; 6] =
    ["PeerAuthentication", "AuthorizationPolicy", "DestinationRule", "VirtualService", "Sidecar", "Gateway"];

fn is_istio(d: &Value) -> bool {
    d["apiVersion"].as_str().is_some_and(|v| v.contains("istio.io/"))
}

fn name(d: &Value) -> &str {
    d["metadata"]["name"].as_str().expect("every object is named")
}

/// Whether every label of `selector` is on `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let selector = selector.as_mapping().expect("a selector is a map");
    !selector.is_empty() && selector.iter().all(|(k, v)| &labels[k] == v)
}

#[test]
fn without_istio_the_chart_renders_no_mesh_object() {
    let docs = documents();
    assert!(docs.iter().all(|d| !is_istio(d)), "istio.enabled is false by default");
    assert_eq!(of_kind(&docs, "Deployment").len(), 4, "no canary without the mesh");
}

/// The rendering with `istio.enabled=true` has every object of deploy/MESH.md, and each selector and host
/// matches what the same rendering deploys: a label that drifts fails here.
#[test]
fn in_a_mesh_every_role_has_its_istio_objects_and_their_selectors_match_the_pods() {
    let docs = mesh_documents();
    let deployments = of_kind(&docs, "Deployment");
    let services = of_kind(&docs, "Service");
    let pods: Vec<(&str, &Value)> =
        deployments.iter().map(|d| (name(d), &d["spec"]["template"]["metadata"]["labels"])).collect();
    assert_eq!(pods.len(), 5, "four roles and the canary API");
    let host = |svc: &Value| format!("{}.polaris.svc.cluster.local", name(svc));
    let ingress = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account";
    let prometheus = "cluster.local/ns/monitoring/sa/prometheus";

    // Each Service selects exactly the pods of its own Deployment.
    for svc in &services {
        let selected: Vec<&str> =
            pods.iter().filter(|(_, labels)| selects(&svc["spec"]["selector"], labels)).map(|(n, _)| *n).collect();
        assert_eq!(selected, [name(svc)], "Service {} selects its own Deployment only", name(svc));
    }

    // Mutual TLS for the namespace.
    let peer = of_kind(&docs, "PeerAuthentication");
    assert_eq!(peer.len(), 1);
    assert_eq!(peer[0]["spec"]["mtls"]["mode"].as_str(), Some("STRICT"));
    assert!(peer[0]["spec"].get("selector").is_none(), "namespace-wide");

    // A DestinationRule per Service: Istio's mutual TLS, connection limits, outlier detection for the API.
    let rules = of_kind(&docs, "DestinationRule");
    assert_eq!(rules.len(), services.len());
    for svc in &services {
        let rule = rules.iter().find(|r| r["spec"]["host"].as_str() == Some(host(svc).as_str()));
        let rule = rule.unwrap_or_else(|| panic!("a DestinationRule for {}", host(svc)));
        let policy = &rule["spec"]["trafficPolicy"];
        assert_eq!(policy["tls"]["mode"].as_str(), Some("ISTIO_MUTUAL"));
        assert!(policy["connectionPool"]["tcp"]["maxConnections"].as_i64().is_some_and(|n| n > 0));
        let api = name(svc).ends_with("-api") || name(svc).ends_with("-api-canary");
        assert_eq!(policy.get("outlierDetection").is_some(), api, "{}", name(svc));
    }

    // An AuthorizationPolicy per Deployment: the ingress to the API's port, Prometheus to /metrics, nobody else.
    let policies = of_kind(&docs, "AuthorizationPolicy");
    assert_eq!(policies.len(), pods.len());
    for (deployment, labels) in &pods {
        let mine: Vec<&&Value> =
            policies.iter().filter(|p| selects(&p["spec"]["selector"]["matchLabels"], labels)).collect();
        assert_eq!(mine.len(), 1, "exactly one AuthorizationPolicy selects {deployment}");
        let spec = &mine[0]["spec"];
        assert_eq!(spec["action"].as_str(), Some("ALLOW"));
        let mut callers: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
        for rule in spec["rules"].as_sequence().expect("rules") {
            for from in rule["from"].as_sequence().expect("from") {
                let op = &rule["to"][0]["operation"];
                for principal in strings(&from["source"]["principals"]) {
                    callers.push((principal, strings(&op["ports"]), strings(&op["paths"])));
                }
            }
        }
        let api = deployment.ends_with("-api") || deployment.ends_with("-api-canary");
        let mut expected = vec![(prometheus.to_owned(), vec!["8080".to_owned()], vec!["/metrics".to_owned()])];
        if api {
            expected.insert(0, (ingress.to_owned(), vec!["8080".to_owned()], vec![]));
        }
        assert_eq!(callers, expected, "who may call {deployment}");
    }

    // The API's VirtualService: every destination is a rendered Service; retries only where Polaris makes a
    // repeat safe; gRPC routed; the canary split adds up.
    let vs = of_kind(&docs, "VirtualService");
    assert_eq!(vs.len(), 1);
    let api_svc = services.iter().find(|s| name(s).ends_with("-api")).expect("the API Service");
    assert!(strings(&vs[0]["spec"]["hosts"]).contains(&host(api_svc)));
    let mut retried = Vec::new();
    let mut grpc = false;
    for route in vs[0]["spec"]["http"].as_sequence().expect("http routes") {
        let route_name = route["name"].as_str().expect("named route");
        let destinations = route["route"].as_sequence().expect("destinations");
        let weights: i64 = destinations.iter().map(|d| d["weight"].as_i64().unwrap_or(100)).sum();
        assert_eq!(weights, 100, "{route_name}");
        assert_eq!(destinations.len(), 2, "{route_name}: the API and its canary");
        for d in destinations {
            let target = d["destination"]["host"].as_str().expect("host");
            let svc = services.iter().find(|s| host(s) == target).unwrap_or_else(|| panic!("{target} is rendered"));
            assert_eq!(d["destination"]["port"]["number"], svc["spec"]["ports"][0]["port"], "{route_name}");
        }
        let attempts = route["retries"]["attempts"].as_i64().unwrap_or_else(|| panic!("{route_name} says its retries"));
        let matches = route["match"].as_sequence().cloned().unwrap_or_default();
        grpc |= matches.iter().any(|m| m["headers"]["content-type"]["prefix"].as_str() == Some("application/grpc"));
        if attempts > 0 {
            retried.push(route_name.to_owned());
            // Each match of a retried route is a read, or requires an idempotency key.
            for m in &matches {
                let read_method = matches!(m["method"]["exact"].as_str(), Some("GET" | "HEAD"));
                let read_rpc = m["uri"]["regex"].as_str().is_some_and(|r| r.contains("(Get|List|Evaluate)"));
                let keyed = m["headers"]["idempotency-key"]["regex"].as_str() == Some(".+");
                assert!(read_method || read_rpc || keyed, "{route_name} retries an unsafe request: {m:?}");
            }
            assert!(!matches.is_empty(), "{route_name}: a retried route must say what it matches");
        }
    }
    assert!(grpc, "a gRPC route");
    assert_eq!(retried, ["grpc-reads", "grpc-idempotent", "rest-reads", "rest-idempotent"]);
    let canary = deployments.iter().find(|d| name(d).ends_with("-api-canary")).expect("canary");
    let image = canary["spec"]["template"]["spec"]["containers"][0]["image"].as_str().expect("image");
    assert!(image.ends_with(":0.2.0-rc.1"), "{image}");

    // The chart's Gateway carries the VirtualService's outside host.
    let gateway = of_kind(&docs, "Gateway");
    assert_eq!(gateway.len(), 1);
    assert!(strings(&vs[0]["spec"]["gateways"]).contains(&format!("polaris/{}", name(gateway[0]))));
    assert_eq!(strings(&gateway[0]["spec"]["servers"][0]["hosts"]), ["polaris.example.com"]);

    // Egress: PostgreSQL, Kafka, Temporal and the Kubernetes API, nothing outside the registry.
    let sidecar = of_kind(&docs, "Sidecar");
    assert_eq!(sidecar.len(), 1);
    let hosts = strings(&sidecar[0]["spec"]["egress"][0]["hosts"]);
    for h in ["postgres/*", "kafka/*", "temporal/*", "default/kubernetes.default.svc.cluster.local"] {
        assert!(hosts.contains(&h.to_owned()), "egress to {h}: {hosts:?}");
    }
    assert_eq!(sidecar[0]["spec"]["outboundTrafficPolicy"]["mode"].as_str(), Some("REGISTRY_ONLY"));
    for kind in ISTIO_KINDS {
        assert!(!of_kind(&docs, kind).is_empty(), "{kind} is rendered");
    }
}

/// The mesh rendering is accepted by a real kube-apiserver with Istio's CRDs (./dev/up installs them), and the
/// validation is real: the same objects with a wrong enum value are refused.
#[test]
fn a_real_api_server_with_istios_crds_accepts_the_mesh_rendering_and_refuses_a_wrong_enum() {
    let docs = mesh_documents();
    let (ok, out) = dry_run(&docs);
    assert!(ok, "the API server refused the mesh rendering: {out}");
    for kind in ["peerauthentication", "authorizationpolicy", "destinationrule", "virtualservice", "sidecar", "gateway"]
    {
        assert!(out.contains(&format!("{kind}.")), "{kind} was validated: {out}");
    }
    type Spoil = fn(&mut Value);
    let wrong: [(&str, Spoil); 3] = [
        ("PeerAuthentication", |d| d["spec"]["mtls"]["mode"] = "STRICTEST".into()),
        ("AuthorizationPolicy", |d| d["spec"]["action"] = "PERMIT".into()),
        ("Sidecar", |d| d["spec"]["outboundTrafficPolicy"]["mode"] = "REGISTRY_MOSTLY".into()),
    ];
    for (kind, spoil) in wrong {
        let mut docs = docs.clone();
        let doc = docs.iter_mut().find(|d| d["kind"].as_str() == Some(kind)).expect("rendered");
        spoil(doc);
        let (ok, out) = dry_run(&docs);
        assert!(!ok, "a wrong enum in {kind} was accepted: {out}");
        assert!(out.contains("Unsupported value") || out.contains("Invalid value"), "{kind}: {out}");
    }
}

fn istioctl() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("POLARIS_ISTIOCTL") {
        return Some(PathBuf::from(p));
    }
    let cache = root().join(".polaris/cache");
    std::fs::read_dir(&cache).ok()?.filter_map(Result::ok).map(|e| e.path()).find_map(|dir| {
        let named = dir.file_name().is_some_and(|n| n.to_string_lossy().starts_with("istioctl-"));
        Some(dir.join("istioctl")).filter(|p| named && p.exists())
    })
}

fn analyze(istioctl: &Path, docs: &[Value]) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!("polaris-istio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join(format!("mesh-{}.yaml", docs.len()));
    let text: Vec<String> = docs.iter().map(|d| serde_yaml::to_string(d).expect("yaml")).collect();
    std::fs::write(&file, text.join("---\n")).expect("write");
    let out = Command::new(istioctl)
        .args(["analyze", "--use-kube=false", "--namespace", "polaris"])
        .arg(&file)
        .output()
        .expect("istioctl runs");
    let _ = std::fs::remove_file(&file);
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

/// `istioctl analyze` (built from istio.io/istio by ./dev/test) finds nothing to say about the mesh rendering,
/// and does find a VirtualService bound to a Gateway that does not exist.
#[test]
fn istioctl_analyze_finds_no_issue_in_the_mesh_rendering() {
    let Some(istioctl) = istioctl() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "istioctl is missing in CI: ./dev/test builds it into .polaris/cache/istioctl-<version>/"
        );
        return;
    };
    let docs = mesh_documents();
    let (ok, out) = analyze(&istioctl, &docs);
    assert!(ok && out.contains("No validation issues found"), "istioctl analyze: {out}");
    let without_gateway: Vec<Value> = docs.into_iter().filter(|d| d["kind"].as_str() != Some("Gateway")).collect();
    let (ok, out) = analyze(&istioctl, &without_gateway);
    assert!(!ok && out.contains("IST0101"), "a missing Gateway is reported: {out}");
}
