//! The User Operator's work on a real cluster: a SCRAM-SHA-512 KafkaUser gets its credentials on the brokers,
//! from the Secret its `authentication.password.valueFrom.secretKeyRef` names, with Kafka's own config tool (the
//! password goes to the tool in a file only its owner can read, never on a command line or in a log).

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams};
use polaris_workers::strimzi::KafkaUser;
use sha2::{Digest, Sha256};

use crate::dataplane::{ACL_COMMAND, CONFIG_COMMAND, Cluster};

/// The password a SCRAM user's spec points at, read from its Secret.
pub async fn password(client: &kube::Client, ns: &str, user: &KafkaUser) -> anyhow::Result<Option<String>> {
    let Some(auth) = &user.spec.authentication else { return Ok(None) };
    if auth.type_ != "scram-sha-512" {
        return Ok(None);
    }
    let Some(source) = &auth.password else {
        anyhow::bail!("strimzi-sim only supports SCRAM users with a password from a Secret")
    };
    let key = &source.value_from.secret_key_ref;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret = secrets.get_opt(&key.name).await?.ok_or_else(|| anyhow::anyhow!("Secret {} not found", key.name))?;
    let bytes = secret
        .data
        .and_then(|d| d.get(&key.key).cloned())
        .ok_or_else(|| anyhow::anyhow!("Secret {} has no key {}", key.name, key.key))?;
    Ok(Some(String::from_utf8(bytes.0)?))
}

pub fn fingerprint(password: &str) -> String {
    format!("{:x}", Sha256::digest(password.as_bytes()))
}

/// Sets the user's SCRAM-SHA-512 credential on the brokers.
pub async fn set_scram(cluster: &Cluster, user: &str, password: &str) -> anyhow::Result<()> {
    let file = cluster.dir.join(format!("scram-{}.properties", uuid::Uuid::new_v4().simple()));
    // From a file the tool takes the value without the brackets `--add-config` needs.
    crate::dataplane::write_private(&file, &format!("SCRAM-SHA-512=iterations=4096,password={password}\n"))?;
    let path = file.display().to_string();
    let version = cluster.desired.borrow().version.clone();
    let result = cluster
        .tool(
            &version,
            CONFIG_COMMAND,
            &["--alter", "--entity-type", "users", "--entity-name", user, "--add-config-file", &path],
        )
        .await;
    let _ = std::fs::remove_file(&file);
    // The tool may echo what it was given: the password never reaches a log.
    result.map(|_| ()).map_err(|e| anyhow::anyhow!("{}", format!("{e:#}").replace(password, "<redacted>")))
}

/// The Secret the User Operator writes for a user: named after it, holding its password and a ready JAAS line.
pub async fn write_user_secret(
    client: &kube::Client,
    ns: &str,
    user: &KafkaUser,
    password: &str,
) -> anyhow::Result<()> {
    use kube::ResourceExt;
    let name = user.name_any();
    let jaas = format!(
        "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"{name}\" password=\"{password}\";"
    );
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.to_owned()),
            labels: Some(user.labels().clone()),
            owner_references: Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "kafka.strimzi.io/v1".into(),
                kind: "KafkaUser".into(),
                name: name.clone(),
                uid: user.uid().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..Default::default()
        },
        data: Some(
            [
                ("password".to_owned(), ByteString(password.as_bytes().to_vec())),
                ("sasl.jaas.config".to_owned(), ByteString(jaas.into_bytes())),
            ]
            .into(),
        ),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    secrets.patch(&name, &PatchParams::apply("strimzi-sim").force(), &Patch::Apply(&secret)).await?;
    Ok(())
}

/// One ACL binding as Kafka lists it: resource type, name, pattern type, host, operation, permission (Kafka's
/// enum names: `TOPIC`, `PREFIXED`, `IDEMPOTENT_WRITE`, `ALLOW`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Binding {
    pub resource_type: String,
    pub name: String,
    pub pattern: String,
    pub host: String,
    pub operation: String,
    pub permission: String,
}

/// `ReadConfigs` -> `READ_CONFIGS`: Strimzi's operation spelling as Kafka's enum name.
fn enum_name(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// The bindings a KafkaUser's `authorization.acls` ask for.
pub fn desired_bindings(acls: &[polaris_workers::strimzi::AclRuleSpec]) -> std::collections::BTreeSet<Binding> {
    let mut out = std::collections::BTreeSet::new();
    for rule in acls {
        let resource_type = enum_name(&rule.resource.type_);
        let name = match rule.resource.type_.as_str() {
            "cluster" => "kafka-cluster".to_owned(),
            _ => rule.resource.name.clone().unwrap_or_default(),
        };
        let pattern = match rule.resource.pattern_type.as_deref() {
            Some("prefix") => "PREFIXED",
            _ => "LITERAL",
        };
        for op in &rule.operations {
            out.insert(Binding {
                resource_type: resource_type.clone(),
                name: name.clone(),
                pattern: pattern.into(),
                host: rule.host.clone().unwrap_or_else(|| "*".into()),
                operation: enum_name(op),
                permission: enum_name(rule.type_.as_deref().unwrap_or("allow")),
            });
        }
    }
    out
}

/// Parses AclCommand's `--list` output:
/// ``Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=orders., patternType=PREFIXED)`:``
/// followed by `(principal=User:x, host=*, operation=WRITE, permissionType=ALLOW)` lines.
pub fn parse_acl_list(text: &str) -> std::collections::BTreeSet<Binding> {
    fn field<'a>(s: &'a str, key: &str) -> Option<&'a str> {
        let start = s.find(&format!("{key}="))? + key.len() + 1;
        let rest = &s[start..];
        let end = rest.find([',', ')']).unwrap_or(rest.len());
        Some(rest[..end].trim())
    }
    let mut out = std::collections::BTreeSet::new();
    let mut resource: Option<(String, String, String)> = None;
    for line in text.lines() {
        if line.contains("ResourcePattern(") {
            resource = match (field(line, "resourceType"), field(line, "name"), field(line, "patternType")) {
                (Some(t), Some(n), Some(p)) => Some((t.to_owned(), n.to_owned(), p.to_owned())),
                _ => None,
            };
        } else if let (Some((t, n, p)), Some(host), Some(op), Some(perm)) =
            (&resource, field(line, "host"), field(line, "operation"), field(line, "permissionType"))
        {
            out.insert(Binding {
                resource_type: t.clone(),
                name: n.clone(),
                pattern: p.clone(),
                host: host.to_owned(),
                operation: op.to_owned(),
                permission: perm.to_owned(),
            });
        }
    }
    out
}

/// AclCommand's arguments naming one binding's resource.
fn resource_args(b: &Binding) -> Vec<String> {
    let mut args = match b.resource_type.as_str() {
        "TOPIC" => vec!["--topic".to_owned(), b.name.clone()],
        "GROUP" => vec!["--group".to_owned(), b.name.clone()],
        "TRANSACTIONAL_ID" => vec!["--transactional-id".to_owned(), b.name.clone()],
        _ => vec!["--cluster".to_owned()],
    };
    args.extend(["--resource-pattern-type".to_owned(), b.pattern.to_lowercase()]);
    args
}

/// `IDEMPOTENT_WRITE` -> `IdempotentWrite`: the spelling AclCommand's `--operation` takes.
fn operation_arg(op: &str) -> String {
    op.split('_').map(|w| w[..1].to_owned() + &w[1..].to_lowercase()).collect()
}

/// Makes the user's ACLs on the brokers exactly `want`: lists what Kafka has for the principal, removes what is
/// not wanted, adds what is missing (one tool run per resource, host and permission).
pub async fn apply_acls(
    cluster: &Cluster,
    user: &str,
    want: &std::collections::BTreeSet<Binding>,
) -> anyhow::Result<()> {
    let version = cluster.desired.borrow().version.clone();
    let principal = format!("User:{user}");
    let listed = cluster.tool(&version, ACL_COMMAND, &["--list", "--principal", &principal]).await?;
    let have = parse_acl_list(&listed);
    type Group = (String, String, String, String, String);
    let mut groups: std::collections::BTreeMap<(bool, Group), Vec<String>> = std::collections::BTreeMap::new();
    for (add, b) in want.difference(&have).map(|b| (true, b)).chain(have.difference(want).map(|b| (false, b))) {
        let key = (b.resource_type.clone(), b.name.clone(), b.pattern.clone(), b.host.clone(), b.permission.clone());
        groups.entry((add, key)).or_default().push(b.operation.clone());
    }
    // Removals first: a rule that turns from allow into deny never holds both at once.
    let mut ordered: Vec<_> = groups.into_iter().collect();
    ordered.sort_by_key(|((add, _), _)| *add);
    for ((add, (resource_type, name, pattern, host, permission)), ops) in ordered {
        let b = Binding { resource_type, name, pattern, host: host.clone(), operation: String::new(), permission };
        let (principal_flag, host_flag) = if b.permission == "DENY" {
            ("--deny-principal", "--deny-host")
        } else {
            ("--allow-principal", "--allow-host")
        };
        let mut args: Vec<String> = vec![if add { "--add" } else { "--remove" }.into()];
        if !add {
            args.push("--force".into());
        }
        args.extend([principal_flag.to_owned(), principal.clone(), host_flag.to_owned(), host]);
        for op in ops {
            args.extend(["--operation".to_owned(), operation_arg(&op)]);
        }
        args.extend(resource_args(&b));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        cluster.tool(&version, ACL_COMMAND, &refs).await?;
    }
    Ok(())
}

/// Sets the user's client quotas on the brokers: the ones given, and removes the others it has (Kafka refuses to
/// delete a quota that is not set, so they are read first).
pub async fn apply_quotas(
    cluster: &Cluster,
    user: &str,
    quotas: Option<&polaris_workers::strimzi::KafkaUserQuotas>,
) -> anyhow::Result<()> {
    let q = quotas.cloned().unwrap_or_default();
    let version = cluster.desired.borrow().version.clone();
    let described = cluster
        .tool(&version, CONFIG_COMMAND, &["--describe", "--entity-type", "users", "--entity-name", user])
        .await?;
    let set = quota_keys(&described);
    let mut add = Vec::new();
    let mut delete = Vec::new();
    for (key, value) in [
        ("producer_byte_rate", q.producer_byte_rate),
        ("consumer_byte_rate", q.consumer_byte_rate),
        ("request_percentage", q.request_percentage.map(u64::from)),
    ] {
        match value {
            Some(v) => add.push(format!("{key}={v}")),
            None if set.contains(&key) => delete.push(key),
            None => {}
        }
    }
    if add.is_empty() && delete.is_empty() {
        return Ok(());
    }
    let mut args =
        vec!["--alter".to_owned(), "--entity-type".into(), "users".into(), "--entity-name".into(), user.into()];
    if !add.is_empty() {
        args.extend(["--add-config".to_owned(), add.join(",")]);
    }
    if !delete.is_empty() {
        args.extend(["--delete-config".to_owned(), delete.join(",")]);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    cluster.tool(&version, CONFIG_COMMAND, &refs).await.map(|_| ())
}

/// The client quota keys ConfigCommand's `--describe` of a user shows as set
/// (`Quota configs for user-principal 'x' are producer_byte_rate=102400.0, ...`).
fn quota_keys(described: &str) -> Vec<&'static str> {
    let line = described.lines().find(|l| l.starts_with("Quota configs")).unwrap_or_default();
    ["producer_byte_rate", "consumer_byte_rate", "request_percentage"]
        .into_iter()
        .filter(|k| line.contains(&format!("{k}=")))
        .collect()
}

/// What the User Operator does when a KafkaUser is deleted: its SCRAM credential, ACLs and quotas leave the
/// brokers, and the Secret it wrote goes.
pub async fn remove_user(client: &kube::Client, cluster: Option<&Cluster>, ns: &str, user: &str) -> anyhow::Result<()> {
    if let Some(cluster) = cluster {
        let version = cluster.desired.borrow().version.clone();
        let scram = ["--alter", "--entity-type", "users", "--entity-name", user, "--delete-config", "SCRAM-SHA-512"];
        if let Err(e) = cluster.tool(&version, CONFIG_COMMAND, &scram).await {
            // A user whose credential never reached the brokers has none to delete.
            tracing::info!(user, error = %format!("{e:#}"), "no SCRAM credential removed");
        }
        apply_acls(cluster, user, &std::collections::BTreeSet::new()).await?;
        apply_quotas(cluster, user, None).await?;
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    match secrets.delete(user, &kube::api::DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use polaris_workers::strimzi::{AclResourceSpec, AclRuleSpec};

    #[test]
    fn kafkas_listing_and_strimzis_rules_meet_as_the_same_bindings() {
        let listed = "Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=orders., patternType=PREFIXED)`: \n \
            \t(principal=User:app, host=*, operation=WRITE, permissionType=ALLOW)\n \
            \t(principal=User:app, host=*, operation=DESCRIBE, permissionType=ALLOW) \n\n\
            Current ACLs for resource `ResourcePattern(resourceType=CLUSTER, name=kafka-cluster, patternType=LITERAL)`: \n \
            \t(principal=User:app, host=*, operation=IDEMPOTENT_WRITE, permissionType=ALLOW) \n";
        let rules = [
            AclRuleSpec {
                type_: Some("allow".into()),
                resource: AclResourceSpec {
                    type_: "topic".into(),
                    name: Some("orders.".into()),
                    pattern_type: Some("prefix".into()),
                },
                operations: vec!["Write".into(), "Describe".into()],
                host: None,
            },
            AclRuleSpec {
                type_: None,
                resource: AclResourceSpec { type_: "cluster".into(), name: None, pattern_type: None },
                operations: vec!["IdempotentWrite".into()],
                host: Some("*".into()),
            },
        ];
        assert_eq!(parse_acl_list(listed), desired_bindings(&rules));
        assert_eq!(operation_arg("IDEMPOTENT_WRITE"), "IdempotentWrite");
        assert_eq!(enum_name("transactionalId"), "TRANSACTIONAL_ID");
        let described =
            "Quota configs for user-principal 'app' are producer_byte_rate=102400.0, request_percentage=50.0\n";
        assert_eq!(quota_keys(described), ["producer_byte_rate", "request_percentage"]);
        assert!(
            quota_keys("SCRAM credential configs for user-principal 'app' are SCRAM-SHA-512=iterations=4096\n")
                .is_empty()
        );
    }
}
