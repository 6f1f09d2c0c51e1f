//! Output: aligned tables for people, the API's own JSON for scripts.

use clap::ValueEnum;
use serde_json::Value;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

pub fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Columns sized to their widest cell.
fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn list(output: Output, items: &[Value], headers: &[&str], row: impl Fn(&Value) -> Vec<String>) {
    if output == Output::Json {
        print_json(&Value::Array(items.to_vec()));
        return;
    }
    table(headers, &items.iter().map(row).collect::<Vec<_>>());
}

pub fn clusters(output: Output, items: &[Value]) {
    list(output, items, &["ID", "NAME", "PLACE", "STATUS", "BROKERS", "KAFKA", "VERSION"], |c| {
        vec![
            s(&c["id"]),
            s(&c["name"]),
            format!("{}/{}", s(&c["provider"]), s(&c["region"])),
            s(&c["status"]),
            s(&c["brokers"]),
            s(&c["kafka_version"]),
            s(&c["version"]),
        ]
    });
}

pub fn topics(output: Output, items: &[Value]) {
    list(output, items, &["NAME", "PARTITIONS", "REPLICAS", "STATUS", "PROTECTED", "CONFIG"], |t| {
        let config = t["config"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{k}={}", s(v))).collect::<Vec<_>>().join(","))
            .unwrap_or_default();
        vec![
            s(&t["name"]),
            s(&t["partitions"]),
            s(&t["replication_factor"]),
            s(&t["status"]),
            s(&t["deletion_protection"]),
            config,
        ]
    });
}

pub fn users(output: Output, items: &[Value]) {
    list(output, items, &["NAME", "STATUS", "GENERATION", "ACLS", "QUOTAS", "SECRET"], |u| {
        let acls = u["acls"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let res = &r["resource"];
                let star = if res["pattern"] == "prefix" { "*" } else { "" };
                let ops: Vec<String> = r["operations"].as_array().into_iter().flatten().map(s).collect();
                let deny = if r["effect"] == "deny" { ":deny" } else { "" };
                format!("{}:{}{star}:{}{deny}", s(&res["type"]), s(&res["name"]), ops.join(","))
            })
            .collect::<Vec<_>>()
            .join(" ");
        let quotas = u["quotas"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{k}={}", s(v))).collect::<Vec<_>>().join(","))
            .unwrap_or_default();
        vec![s(&u["name"]), s(&u["status"]), s(&u["credentials_generation"]), acls, quotas, s(&u["secret_name"])]
    });
}

pub fn drift(output: Output, items: &[Value]) {
    list(output, items, &["ID", "STATUS", "RESOURCE", "FIELD", "EXPECTED", "ACTUAL", "CHANGED BY", "DETECTED"], |d| {
        let or = |v: &Value, none: &str| if v.is_null() { none.to_owned() } else { s(v) };
        vec![
            s(&d["id"]),
            if d["reverting"] == true { "reverting".to_owned() } else { s(&d["status"]) },
            s(&d["resource"]),
            s(&d["field"]),
            or(&d["expected"], "(unexplained)"),
            or(&d["actual"], "(missing)"),
            s(&d["changed_by"]),
            s(&d["detected_at"]),
        ]
    });
}

/// The credentials of a create or rotate, shown this once, with the warning that they will not be again.
pub fn credentials(answer: &Value) {
    let c = &answer["credentials"];
    if c.is_null() {
        if answer["credentials_shown"] == false {
            eprintln!(
                "warning: this request was answered before (same Idempotency-Key); its password is not shown again"
            );
        }
        return;
    }
    eprintln!("warning: the password is shown this once; Polaris keeps it only in the cluster's Secret");
    println!("username           {}", s(&c["username"]));
    println!("password           {}", s(&c["password"]));
    println!("mechanism          {}", s(&c["mechanism"]));
    println!("security.protocol  {}", s(&c["security_protocol"]));
    println!("bootstrap.servers  {}", s(&c["bootstrap_servers"]));
    println!("generation         {}", s(&c["generation"]));
}

pub fn operations(output: Output, items: &[Value]) {
    list(output, items, &["ID", "KIND", "STATE", "CLUSTER", "STARTED", "FINISHED"], |o| {
        vec![s(&o["id"]), s(&o["kind"]), s(&o["state"]), s(&o["cluster_id"]), s(&o["started_at"]), s(&o["finished_at"])]
    });
}

pub fn operation(output: Output, op: &Value) {
    if output == Output::Json {
        print_json(op);
        return;
    }
    println!("operation {} ({}) {}", s(&op["id"]), s(&op["kind"]), s(&op["state"]));
    if let Some(e) = op["error"].as_str() {
        println!("error: {e}");
    }
    let steps: Vec<Vec<String>> = op["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|st| vec![s(&st["name"]), s(&st["state"]), s(&st["detail"])])
        .collect();
    table(&["STEP", "STATE", "DETAIL"], &steps);
}

/// A `202`: what was accepted and the operation to follow.
pub fn accepted(output: Output, answer: &Value) {
    if output == Output::Json {
        print_json(answer);
        return;
    }
    let op = &answer["operation"];
    if let Some(c) = answer["cluster"].as_object() {
        println!("requested cluster {} ({})", s(&c["name"]), s(&c["id"]));
    }
    if let Some(t) = answer["topic"].as_object() {
        println!("topic {} ({})", s(&t["name"]), s(&t["id"]));
    }
    if let Some(u) = answer["user"].as_object() {
        println!("user {} ({})", s(&u["name"]), s(&u["id"]));
    }
    println!(
        "operation {} ({}) {}; follow it: polaris operations watch {}",
        s(&op["id"]),
        s(&op["kind"]),
        s(&op["state"]),
        s(&op["id"])
    );
}

pub fn plan(output: Output, plan: &Value) {
    if output == Output::Json {
        print_json(plan);
        return;
    }
    println!("dry run, judged by policy version {}: nothing was recorded", s(&plan["policy_version"]));
    let events: Vec<Vec<String>> =
        plan["events"].as_array().into_iter().flatten().map(|e| vec![s(&e["event_type"]), s(&e["payload"])]).collect();
    table(&["EVENT", "PAYLOAD"], &events);
    let kube: Vec<Vec<String>> = plan["kubernetes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|k| {
            let at = match k["namespace"].as_str() {
                Some(ns) => format!("{ns}/{}", s(&k["name"])),
                None => s(&k["name"]),
            };
            vec![s(&k["action"]), s(&k["kind"]), at, s(&k["detail"])]
        })
        .collect();
    println!();
    table(&["ACTION", "KIND", "NAME", "DETAIL"], &kube);
}

pub fn audit(output: Output, items: &[Value]) {
    list(output, items, &["AT", "ACTOR", "CHANNEL", "METHOD", "RESOURCE", "OUTCOME", "STATUS", "CODE"], |a| {
        vec![
            s(&a["at"]),
            s(&a["actor"]),
            s(&a["channel"]),
            s(&a["method"]),
            s(&a["resource"]),
            s(&a["outcome"]),
            s(&a["status"]),
            s(&a["code"]),
        ]
    });
}

pub fn policies(output: Output, bundle: &Value) {
    if output == Output::Json {
        print_json(bundle);
        return;
    }
    println!(
        "policy bundle version {} (by {}, {})",
        s(&bundle["version"]),
        s(&bundle["created_by"]),
        s(&bundle["created_at"])
    );
    let rules: Vec<Vec<String>> = bundle["rules"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| vec![k.clone(), v.to_string()])
        .collect();
    table(&["RULE", "VALUE"], &rules);
}

pub fn evaluation(output: Output, verdict: &Value) {
    if output == Output::Json {
        print_json(verdict);
        return;
    }
    let allowed = verdict["allowed"] == true;
    println!("policy version {}: {}", s(&verdict["policy_version"]), if allowed { "allowed" } else { "refused" });
    for v in verdict["violations"].as_array().into_iter().flatten() {
        println!("  {} ({}): {}", s(&v["field"]), s(&v["policy"]), s(&v["message"]));
    }
}

/// A cluster's history (oldest first).
pub fn events(output: Output, items: &[Value]) {
    if output == Output::Json {
        print_json(&Value::Array(items.to_vec()));
        return;
    }
    table(
        &["SEQ", "OCCURRED", "EVENT", "ACTOR", "CORRELATION"],
        &items
            .iter()
            .map(|e| {
                vec![
                    s(&e["sequence"]),
                    s(&e["occurred_at"]),
                    s(&e["event_type"]),
                    s(&e["actor"]),
                    s(&e["correlation_id"]),
                ]
            })
            .collect::<Vec<_>>(),
    );
}

const TAIL_FORMAT: [usize; 4] = [32, 8, 36, 30];

pub fn event_header() {
    let [a, b, c, d] = TAIL_FORMAT;
    println!("{:<a$}  {:<b$}  {:<c$}  {:<d$}  ACTOR", "OCCURRED", "TYPE", "AGGREGATE", "EVENT");
}

/// One event of `events tail`, as it arrives: a line for people, one JSON object per line for scripts.
pub fn event_line(output: Output, e: &Value) {
    if output == Output::Json {
        println!("{}", serde_json::to_string(e).unwrap_or_default());
        return;
    }
    let [a, b, c, d] = TAIL_FORMAT;
    println!(
        "{:<a$}  {:<b$}  {:<c$}  {:<d$}  {}",
        s(&e["occurred_at"]),
        s(&e["aggregate_type"]),
        format!("{}#{}", s(&e["aggregate_id"]), s(&e["sequence"])),
        s(&e["event_type"]),
        s(&e["actor"])
    );
}

pub fn verify(output: Output, result: &Value) {
    if output == Output::Json {
        print_json(result);
        return;
    }
    for c in result["chains"].as_array().into_iter().flatten() {
        let problems = c["problems"].as_array().map_or(0, Vec::len);
        println!(
            "{}: {} rows sealed, {} pending, head {}, {}",
            s(&c["chain"]),
            s(&c["rows"]),
            s(&c["pending"]),
            s(&c["head"]),
            if problems == 0 { "intact".to_owned() } else { format!("{problems} problem(s)") }
        );
        for p in c["problems"].as_array().into_iter().flatten() {
            println!("  {p}");
        }
    }
}

pub fn replay(output: Output, result: &Value) {
    if output == Output::Json {
        print_json(result);
        return;
    }
    let r = &result["report"];
    println!(
        "replay {}: {} events applied ({} in total), {:.0} events/s, {}",
        s(&r["schema"]),
        s(&r["events_applied"]),
        s(&r["events_total"]),
        r["events_per_second"].as_f64().unwrap_or_default(),
        if result["identical"] == true {
            "identical to the live read models"
        } else {
            "DIFFERS from the live read models"
        }
    );
    let tables: Vec<Vec<String>> = r["tables"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            vec![
                s(&t["table"]),
                s(&t["live_rows"]),
                s(&t["replayed_rows"]),
                (t["live_md5"] == t["replayed_md5"]).to_string(),
            ]
        })
        .collect();
    table(&["TABLE", "LIVE", "REPLAYED", "SAME"], &tables);
    for c in r["differing_clusters"].as_array().into_iter().flatten() {
        println!("  differs: cluster {}", s(c));
    }
    if r["clusters_in_flight"].as_u64().is_some_and(|n| n > 0) {
        println!(
            "  {} cluster(s) with events still in flight were left out of the last comparison",
            r["clusters_in_flight"]
        );
    }
}
