//! The User Operator's work on a real cluster: a SCRAM-SHA-512 KafkaUser gets its credentials on the brokers,
//! from the Secret its `authentication.password.valueFrom.secretKeyRef` names, with Kafka's own config tool (the
//! password goes to the tool in a file only its owner can read, never on a command line or in a log).

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams};
use polaris_workers::strimzi::KafkaUser;
use sha2::{Digest, Sha256};

use crate::dataplane::{CONFIG_COMMAND, Cluster};

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
