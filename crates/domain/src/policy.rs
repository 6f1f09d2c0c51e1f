//! The policy engine (SPEC.md §3). A bundle is data, versioned per org; judging a command against it is a pure
//! function that reports every violated rule, never only the first. The API judges commands before they reach
//! an aggregate, so the same command gets the same verdict through every channel.

use std::collections::BTreeMap;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// An inclusive range; either end may be absent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
}

impl Bounds {
    fn check(&self, value: u64) -> Option<String> {
        match (self.min, self.max) {
            (Some(min), _) if value < min => Some(self.describe()),
            (_, Some(max)) if value > max => Some(self.describe()),
            _ => None,
        }
    }

    fn describe(&self) -> String {
        match (self.min, self.max) {
            (Some(min), Some(max)) => format!("between {min} and {max}"),
            (Some(min), None) => format!(">= {min}"),
            (None, Some(max)) => format!("<= {max}"),
            (None, None) => "any".to_owned(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    pub provider: String,
    pub region: String,
}

/// `retention.ms` rules: `finite` refuses `-1` (infinite retention); `min`/`max` bound finite values.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionRule {
    #[serde(default, deserialize_with = "crate::acl::null_as_default")]
    pub finite: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
}

/// How the org's clusters join an Istio service mesh.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MeshMode {
    /// Sidecar injection and mutual TLS required for everything the sidecar carries.
    Strict,
    /// Sidecar injection; mutual TLS accepted, plain text too (a migration step).
    Permissive,
    /// No mesh objects (the default).
    #[default]
    Off,
}

impl MeshMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MeshMode::Strict => "strict",
            MeshMode::Permissive => "permissive",
            MeshMode::Off => "off",
        }
    }
}

/// The mesh setting of an org's clusters: how they join the mesh, and which client namespaces may call them.
/// Recorded on each cluster when it is requested, so a later change applies to clusters requested after it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshPolicy {
    pub mode: MeshMode,
    /// Namespaces (besides the cluster's own) whose workloads may call the cluster through the mesh.
    #[serde(default, deserialize_with = "crate::acl::null_as_default")]
    pub client_namespaces: Vec<String>,
}

/// At most this many client namespaces per policy.
pub const MESH_CLIENT_NAMESPACES_MAX: usize = 64;

/// A Kubernetes namespace name: a DNS-1123 label.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The rules of a bundle. Every rule is optional; an absent rule allows everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRules {
    /// Allowed `(provider, region)` pairs for clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_locations: Option<Vec<Location>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_kafka_versions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brokers: Option<Bounds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_gib: Option<Bounds>,
    /// A regular expression every topic name must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_name_pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replication_factor: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_partitions_per_topic: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_ms: Option<RetentionRule>,
    /// Topics may not ask for more replicas than the cluster has brokers.
    #[serde(default, skip_serializing_if = "std::ops::Not::not", deserialize_with = "crate::acl::null_as_default")]
    pub replication_factor_at_most_brokers: bool,
    /// Clusters whose name matches this regular expression must keep deletion protection on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_protection_required_for: Option<String>,
    /// Whether clusters requested under this bundle join an Istio mesh (absent: `off`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh: Option<MeshPolicy>,
    /// What Kafka users may be given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<UserRules>,
    /// What happens when a managed object drifts from its recorded state (absent: report only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftPolicy>,
}

/// How an org's drift is resolved (issue #15): `report` records it and leaves it to a person; `revert`
/// re-applies the recorded state through a workflow. `adopt` names the fields whose live value a person may
/// record instead (each adoption is judged by the policy like any request).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftPolicy {
    #[serde(default, deserialize_with = "crate::acl::null_as_default")]
    pub mode: DriftMode,
    /// Field paths (`spec.replicas`, `spec.config.retention.ms`) whose drift may be adopted.
    #[serde(default, deserialize_with = "crate::acl::null_as_default")]
    pub adopt: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftMode {
    #[default]
    Report,
    Revert,
}

/// Rules for Kafka users' ACLs and quotas.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRules {
    /// No topic ACL on every topic: neither the literal name `*` nor a prefix that every name starts with.
    #[serde(default, skip_serializing_if = "std::ops::Not::not", deserialize_with = "crate::acl::null_as_default")]
    pub no_wildcard_topic_acls: bool,
    /// Every topic ACL's name (literal or prefix) must start with one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_topic_prefixes: Option<Vec<String>>,
    /// Producer and consumer byte rates must be set, and at most this (bytes per second, per broker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_byte_rate: Option<u64>,
    /// An ACL that grants `All` may only be given by an admin.
    #[serde(default, skip_serializing_if = "std::ops::Not::not", deserialize_with = "crate::acl::null_as_default")]
    pub all_operations_need_admin: bool,
}

/// A rule set that cannot be used: a pattern that does not compile, or bounds upside down.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("policy rule `{field}`: {reason}")]
pub struct InvalidPolicy {
    pub field: &'static str,
    pub reason: String,
}

impl PolicyRules {
    /// Checks that the rules can be applied; a bundle is refused at publication, never at judgement.
    pub fn validate(&self) -> Result<(), InvalidPolicy> {
        for (field, pattern) in [
            ("topic_name_pattern", &self.topic_name_pattern),
            ("deletion_protection_required_for", &self.deletion_protection_required_for),
        ] {
            if let Some(p) = pattern {
                compile(p).map_err(|reason| InvalidPolicy { field, reason })?;
            }
        }
        for (field, bounds) in [("brokers", &self.brokers), ("storage_gib", &self.storage_gib)] {
            if let Some(Bounds { min: Some(min), max: Some(max) }) = bounds
                && min > max
            {
                return Err(InvalidPolicy { field, reason: format!("min {min} is above max {max}") });
            }
        }
        if let Some(RetentionRule { min: Some(min), max: Some(max), .. }) = &self.retention_ms
            && min > max
        {
            return Err(InvalidPolicy { field: "retention_ms", reason: format!("min {min} is above max {max}") });
        }
        if let Some(mesh) = &self.mesh {
            let field = "mesh.client_namespaces";
            if mesh.client_namespaces.len() > MESH_CLIENT_NAMESPACES_MAX {
                let reason = format!("at most {MESH_CLIENT_NAMESPACES_MAX} namespaces");
                return Err(InvalidPolicy { field, reason });
            }
            if let Some(bad) = mesh.client_namespaces.iter().find(|n| !is_dns_label(n)) {
                let reason = format!("{bad:?} is not a namespace name (a DNS-1123 label)");
                return Err(InvalidPolicy { field, reason });
            }
        }
        Ok(())
    }
}

fn compile(pattern: &str) -> Result<Regex, String> {
    if pattern.len() > 1024 {
        return Err("pattern longer than 1024 characters".to_owned());
    }
    regex::RegexBuilder::new(pattern).size_limit(1 << 20).build().map_err(|e| e.to_string())
}

/// A published bundle: the rules and the version that judged a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyBundle {
    /// 0 is the empty bundle every org starts with.
    pub version: i64,
    pub rules: PolicyRules,
}

/// One violated rule, as SPEC.md §2 reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The rule's name in the bundle.
    pub policy: String,
    pub policy_version: i64,
    /// The request field at fault.
    pub field: String,
    /// What the rule requires.
    pub constraint: String,
    /// What the request asked for.
    pub actual: String,
    pub message: String,
}

/// What a command asks for, as far as policies care.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject<'a> {
    Cluster {
        name: &'a str,
        provider: &'a str,
        region: &'a str,
        kafka_version: Option<&'a str>,
        brokers: u32,
        storage_gib: Option<u32>,
        deletion_protection: bool,
    },
    Scale {
        brokers: u32,
    },
    Upgrade {
        kafka_version: &'a str,
    },
    /// A cluster's deletion protection being set (`PATCH`).
    ClusterProtection {
        name: &'a str,
        deletion_protection: bool,
    },
    Topic {
        name: &'a str,
        partitions: Option<u32>,
        replication_factor: Option<u32>,
        config: Option<&'a BTreeMap<String, String>>,
        /// The cluster's broker count, when known.
        cluster_brokers: Option<u32>,
    },
    /// A Kafka user's ACLs and quotas (either may be absent in a change), and whether an admin asks.
    User {
        acls: Option<&'a [crate::acl::AclRule]>,
        quotas: Option<&'a crate::acl::UserQuotas>,
        by_admin: bool,
    },
}

impl<'a> Subject<'a> {
    /// The subject a cluster request is judged as, with the defaults the Cluster aggregate applies to what the
    /// request leaves out. Creating, dry-running and evaluating a request all judge this one subject, so they give
    /// the same verdict and the same violations.
    pub fn cluster_request(
        name: &'a str,
        provider: &'a str,
        region: &'a str,
        kafka_version: Option<&'a str>,
        brokers: u32,
        storage_gib: Option<u32>,
        deletion_protection: Option<bool>,
    ) -> Self {
        Subject::Cluster {
            name,
            provider,
            region,
            kafka_version: Some(kafka_version.unwrap_or(crate::cluster::DEFAULT_KAFKA_VERSION)),
            brokers,
            storage_gib: Some(storage_gib.unwrap_or(crate::cluster::DEFAULT_STORAGE_GIB)),
            deletion_protection: deletion_protection.unwrap_or(false),
        }
    }
}

impl PolicyBundle {
    pub fn empty() -> Self {
        PolicyBundle { version: 0, rules: PolicyRules::default() }
    }

    /// Every rule the subject breaks; empty means allowed.
    pub fn evaluate(&self, subject: &Subject<'_>) -> Vec<Violation> {
        let mut out = Vec::new();
        let mut violate = |policy: &str, field: &str, constraint: String, actual: String, message: String| {
            out.push(Violation {
                policy: policy.to_owned(),
                policy_version: self.version,
                field: field.to_owned(),
                constraint,
                actual,
                message,
            })
        };
        let r = &self.rules;
        match subject {
            Subject::Cluster { name, provider, region, kafka_version, brokers, storage_gib, deletion_protection } => {
                if let Some(allowed) = &r.allowed_locations
                    && !allowed.iter().any(|l| l.provider == *provider && l.region == *region)
                {
                    let list: Vec<String> = allowed.iter().map(|l| format!("{}/{}", l.provider, l.region)).collect();
                    violate(
                        "allowed_locations",
                        "region",
                        format!("one of [{}]", list.join(", ")),
                        format!("{provider}/{region}"),
                        format!("clusters may not be placed in {provider}/{region}"),
                    );
                }
                if let Some(v) = kafka_version {
                    check_version(r, v, &mut violate);
                }
                check_brokers(r, *brokers, &mut violate);
                if let (Some(bounds), Some(gib)) = (&r.storage_gib, storage_gib)
                    && let Some(constraint) = bounds.check(u64::from(*gib))
                {
                    violate(
                        "storage_gib",
                        "storage_gib",
                        constraint.clone(),
                        gib.to_string(),
                        format!("storage_gib must be {constraint}"),
                    );
                }
                check_protection(r, name, *deletion_protection, &mut violate);
            }
            Subject::Scale { brokers } => check_brokers(r, *brokers, &mut violate),
            Subject::Upgrade { kafka_version } => check_version(r, kafka_version, &mut violate),
            Subject::ClusterProtection { name, deletion_protection } => {
                check_protection(r, name, *deletion_protection, &mut violate)
            }
            Subject::Topic { name, partitions, replication_factor, config, cluster_brokers } => {
                if let Some(pattern) = &r.topic_name_pattern
                    && let Ok(re) = compile(pattern)
                    && !re.is_match(name)
                {
                    violate(
                        "topic_name_pattern",
                        "name",
                        format!("matches {pattern}"),
                        (*name).to_owned(),
                        format!("topic name {name:?} does not match {pattern}"),
                    );
                }
                if let (Some(min), Some(rf)) = (r.min_replication_factor, replication_factor)
                    && *rf < min
                {
                    violate(
                        "min_replication_factor",
                        "replication_factor",
                        format!(">= {min}"),
                        rf.to_string(),
                        format!("replication_factor must be at least {min}"),
                    );
                }
                if let (true, Some(rf), Some(brokers)) =
                    (r.replication_factor_at_most_brokers, replication_factor, cluster_brokers)
                    && rf > brokers
                {
                    violate(
                        "replication_factor_at_most_brokers",
                        "replication_factor",
                        format!("<= {brokers} (the cluster's brokers)"),
                        rf.to_string(),
                        format!("replication_factor {rf} is more than the cluster's {brokers} brokers"),
                    );
                }
                if let (Some(max), Some(p)) = (r.max_partitions_per_topic, partitions)
                    && *p > max
                {
                    violate(
                        "max_partitions_per_topic",
                        "partitions",
                        format!("<= {max}"),
                        p.to_string(),
                        format!("a topic may have at most {max} partitions"),
                    );
                }
                if let (Some(rule), Some(value)) = (&r.retention_ms, config.and_then(|c| c.get("retention.ms"))) {
                    check_retention(rule, value, &mut violate);
                }
            }
            Subject::User { acls, quotas, by_admin } => {
                if let Some(rules) = &r.users {
                    check_user(rules, *acls, *quotas, *by_admin, &mut violate);
                }
            }
        }
        out
    }
}

fn check_user(
    rules: &UserRules,
    acls: Option<&[crate::acl::AclRule]>,
    quotas: Option<&crate::acl::UserQuotas>,
    by_admin: bool,
    violate: &mut impl FnMut(&str, &str, String, String, String),
) {
    use crate::acl::{AclOperation, AclPattern, AclResourceType};
    for (i, acl) in acls.unwrap_or_default().iter().enumerate() {
        let name = acl.resource.name.as_deref().unwrap_or_default();
        if acl.resource.type_ == AclResourceType::Topic {
            let field = format!("acls[{i}].resource.name");
            let wildcard = match acl.resource.pattern {
                AclPattern::Literal => name == "*",
                AclPattern::Prefix => name.is_empty() || name == "*",
            };
            if rules.no_wildcard_topic_acls && wildcard {
                violate(
                    "users.no_wildcard_topic_acls",
                    &field,
                    "a topic name or a prefix of one".to_owned(),
                    name.to_owned(),
                    format!("acls[{i}] would apply to every topic"),
                );
            }
            if let Some(prefixes) = &rules.allowed_topic_prefixes
                && !prefixes.iter().any(|p| name.starts_with(p.as_str()))
            {
                violate(
                    "users.allowed_topic_prefixes",
                    &field,
                    format!("starts with one of [{}]", prefixes.join(", ")),
                    name.to_owned(),
                    format!("acls[{i}] names topic {name:?}, outside the allowed prefixes"),
                );
            }
        }
        if rules.all_operations_need_admin && !by_admin && acl.operations.contains(&AclOperation::All) {
            violate(
                "users.all_operations_need_admin",
                &format!("acls[{i}].operations"),
                "All only by an admin".to_owned(),
                "All".to_owned(),
                format!("acls[{i}] grants All, which only an admin may give"),
            );
        }
    }
    if let (Some(max), Some(q)) = (rules.max_byte_rate, quotas) {
        for (field, value) in
            [("quotas.producer_byte_rate", q.producer_byte_rate), ("quotas.consumer_byte_rate", q.consumer_byte_rate)]
        {
            match value {
                Some(v) if v <= max => {}
                _ => violate(
                    "users.max_byte_rate",
                    field,
                    format!("set, <= {max}"),
                    value.map_or_else(|| "unset (unlimited)".to_owned(), |v| v.to_string()),
                    format!("{field} must be set and at most {max} bytes/s"),
                ),
            }
        }
    }
}

fn check_version(r: &PolicyRules, version: &str, violate: &mut impl FnMut(&str, &str, String, String, String)) {
    if let Some(allowed) = &r.allowed_kafka_versions
        && !allowed.iter().any(|v| v == version)
    {
        violate(
            "allowed_kafka_versions",
            "kafka_version",
            format!("one of [{}]", allowed.join(", ")),
            version.to_owned(),
            format!("Kafka {version} is not an allowed version"),
        );
    }
}

fn check_brokers(r: &PolicyRules, brokers: u32, violate: &mut impl FnMut(&str, &str, String, String, String)) {
    if let Some(bounds) = &r.brokers
        && let Some(constraint) = bounds.check(u64::from(brokers))
    {
        violate("brokers", "brokers", constraint.clone(), brokers.to_string(), format!("brokers must be {constraint}"));
    }
}

fn check_protection(
    r: &PolicyRules,
    name: &str,
    deletion_protection: bool,
    violate: &mut impl FnMut(&str, &str, String, String, String),
) {
    if let Some(pattern) = &r.deletion_protection_required_for
        && let Ok(re) = compile(pattern)
        && re.is_match(name)
        && !deletion_protection
    {
        violate(
            "deletion_protection_required_for",
            "deletion_protection",
            "true".to_owned(),
            "false".to_owned(),
            format!("clusters named like {pattern} must have deletion protection"),
        );
    }
}

fn check_retention(rule: &RetentionRule, value: &str, violate: &mut impl FnMut(&str, &str, String, String, String)) {
    let field = "config.retention.ms";
    let constraint = {
        let mut parts = Vec::new();
        if rule.finite {
            parts.push("finite (not -1)".to_owned());
        }
        if let Some(min) = rule.min {
            parts.push(format!(">= {min}"));
        }
        if let Some(max) = rule.max {
            parts.push(format!("<= {max}"));
        }
        parts.join(", ")
    };
    match value.trim().parse::<i64>() {
        Ok(v) if v < 0 => {
            if rule.finite || rule.max.is_some() {
                violate("retention_ms", field, constraint, value.to_owned(), "retention.ms must be finite".to_owned());
            }
        }
        Ok(v) => {
            let v = v as u64;
            if rule.min.is_some_and(|m| v < m) || rule.max.is_some_and(|m| v > m) {
                violate(
                    "retention_ms",
                    field,
                    constraint.clone(),
                    value.to_owned(),
                    format!("retention.ms must be {constraint}"),
                );
            }
        }
        Err(_) => violate(
            "retention_ms",
            field,
            constraint,
            value.to_owned(),
            "retention.ms must be a whole number of milliseconds".to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The API's schema lets a client send `null` for an optional rule (Schemathesis sent
    /// `{"drift": {"mode": null}, "users": {"no_wildcard_topic_acls": null}, "allowed_locations": null}`): it reads
    /// as absent, not as a 400.
    #[test]
    fn null_rules_read_as_absent() {
        let rules: PolicyRules = serde_json::from_value(serde_json::json!({
            "users": {"no_wildcard_topic_acls": null}, "drift": {"mode": null, "adopt": null}, "allowed_locations": null
        }))
        .expect("null reads as absent");
        assert_eq!(rules.drift, Some(DriftPolicy { mode: DriftMode::Report, adopt: vec![] }));
        assert_eq!(rules.users, Some(UserRules::default()));
        assert_eq!(rules.allowed_locations, None);
    }

    #[test]
    fn the_mesh_setting_reads_every_mode_and_refuses_what_is_not_one() {
        for (mode, expected) in
            [("strict", MeshMode::Strict), ("permissive", MeshMode::Permissive), ("off", MeshMode::Off)]
        {
            let rules: PolicyRules = serde_json::from_value(serde_json::json!({"mesh": {"mode": mode}})).unwrap();
            let mesh = rules.mesh.expect("mesh");
            assert_eq!((mesh.mode, mesh.client_namespaces.len()), (expected, 0));
            assert_eq!(mesh.mode.as_str(), mode);
        }
        for bad in [
            serde_json::json!({"mesh": {"mode": "STRICT"}}),
            serde_json::json!({"mesh": {}}),
            serde_json::json!({"mesh": {"mode": "strict", "extra": 1}}),
        ] {
            assert!(serde_json::from_value::<PolicyRules>(bad.clone()).is_err(), "{bad}");
        }
        let named = |names: &[&str]| PolicyRules {
            mesh: Some(MeshPolicy {
                mode: MeshMode::Strict,
                client_namespaces: names.iter().map(|n| (*n).to_owned()).collect(),
            }),
            ..PolicyRules::default()
        };
        assert_eq!(named(&["payments", "team-a1"]).validate(), Ok(()));
        for bad in ["Payments", "-a", "a-", "", "a_b", &"a".repeat(64)] {
            let e = named(&[bad]).validate().expect_err(bad);
            assert_eq!(e.field, "mesh.client_namespaces", "{bad}");
        }
        let many: Vec<String> = (0..=MESH_CLIENT_NAMESPACES_MAX).map(|i| format!("ns-{i}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(named(&refs).validate().is_err(), "at most {MESH_CLIENT_NAMESPACES_MAX}");
    }

    fn bundle(rules: PolicyRules) -> PolicyBundle {
        PolicyBundle { version: 7, rules }
    }

    fn cluster<'a>(provider: &'a str, region: &'a str) -> Subject<'a> {
        Subject::Cluster {
            name: "orders",
            provider,
            region,
            kafka_version: Some("4.1.1"),
            brokers: 3,
            storage_gib: Some(100),
            deletion_protection: false,
        }
    }

    #[test]
    fn a_region_outside_the_allow_list_is_one_violation_naming_the_version() {
        let b = bundle(PolicyRules {
            allowed_locations: Some(vec![Location { provider: "aws".into(), region: "eu-west-1".into() }]),
            ..Default::default()
        });
        assert!(b.evaluate(&cluster("aws", "eu-west-1")).is_empty());
        let v = b.evaluate(&cluster("aws", "us-east-1"));
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(
            (v[0].policy.as_str(), v[0].policy_version, v[0].field.as_str(), v[0].actual.as_str()),
            ("allowed_locations", 7, "region", "aws/us-east-1")
        );
    }

    #[test]
    fn a_topic_breaking_four_rules_gets_four_violations() {
        let b = bundle(PolicyRules {
            topic_name_pattern: Some("^[a-z][a-z0-9.-]+$".into()),
            min_replication_factor: Some(3),
            max_partitions_per_topic: Some(1000),
            retention_ms: Some(RetentionRule { finite: true, ..Default::default() }),
            ..Default::default()
        });
        let config = BTreeMap::from([("retention.ms".to_owned(), "-1".to_owned())]);
        let v = b.evaluate(&Subject::Topic {
            name: "Orders_Bad",
            partitions: Some(5000),
            replication_factor: Some(1),
            config: Some(&config),
            cluster_brokers: Some(3),
        });
        let rules: Vec<&str> = v.iter().map(|v| v.policy.as_str()).collect();
        assert_eq!(rules, ["topic_name_pattern", "min_replication_factor", "max_partitions_per_topic", "retention_ms"]);
        let ok = BTreeMap::from([("retention.ms".to_owned(), "604800000".to_owned())]);
        let fine = Subject::Topic {
            name: "orders.v1",
            partitions: Some(12),
            replication_factor: Some(3),
            config: Some(&ok),
            cluster_brokers: Some(3),
        };
        let too_many = PolicyBundle {
            version: 1,
            rules: PolicyRules { replication_factor_at_most_brokers: true, ..Default::default() },
        };
        assert!(too_many.evaluate(&fine).is_empty());
        let above = Subject::Topic {
            name: "x",
            partitions: None,
            replication_factor: Some(5),
            config: None,
            cluster_brokers: Some(3),
        };
        assert_eq!(too_many.evaluate(&above)[0].policy, "replication_factor_at_most_brokers");
        assert!(b.evaluate(&fine).is_empty());
    }

    #[test]
    fn bounds_versions_and_protection_rules_each_report() {
        let b = bundle(PolicyRules {
            allowed_kafka_versions: Some(vec!["4.1.1".into()]),
            brokers: Some(Bounds { min: Some(3), max: Some(9) }),
            storage_gib: Some(Bounds { min: Some(200), max: None }),
            deletion_protection_required_for: Some("^ord".into()),
            ..Default::default()
        });
        let v = b.evaluate(&Subject::Cluster {
            name: "orders",
            provider: "aws",
            region: "x",
            kafka_version: Some("4.0.0"),
            brokers: 12,
            storage_gib: Some(100),
            deletion_protection: false,
        });
        let rules: Vec<&str> = v.iter().map(|v| v.policy.as_str()).collect();
        assert_eq!(rules, ["allowed_kafka_versions", "brokers", "storage_gib", "deletion_protection_required_for"]);
        assert!(b.evaluate(&Subject::Scale { brokers: 9 }).is_empty());
        assert_eq!(b.evaluate(&Subject::Scale { brokers: 2 })[0].constraint, "between 3 and 9");
        assert_eq!(b.evaluate(&Subject::Upgrade { kafka_version: "4.2.0" }).len(), 1);
        assert_eq!(b.evaluate(&Subject::ClusterProtection { name: "orders", deletion_protection: false }).len(), 1);
        assert!(b.evaluate(&Subject::ClusterProtection { name: "billing", deletion_protection: false }).is_empty());
    }

    #[test]
    fn the_empty_bundle_allows_everything() {
        assert!(PolicyBundle::empty().evaluate(&cluster("onprem", "anywhere")).is_empty());
    }

    #[test]
    fn unusable_rules_are_refused_at_publication() {
        let bad = PolicyRules { topic_name_pattern: Some("([a-z".into()), ..Default::default() };
        assert_eq!(bad.validate().unwrap_err().field, "topic_name_pattern");
        let upside_down = PolicyRules { brokers: Some(Bounds { min: Some(5), max: Some(1) }), ..Default::default() };
        assert_eq!(upside_down.validate().unwrap_err().field, "brokers");
        assert!(serde_json::from_str::<PolicyRules>(r#"{"max_brokers": 3}"#).is_err(), "unknown rules are refused");
    }

    #[test]
    fn user_rules_report_every_violation_with_its_field() {
        let rules: PolicyRules = serde_json::from_value(serde_json::json!({"users": {
            "no_wildcard_topic_acls": true, "allowed_topic_prefixes": ["orders."],
            "max_byte_rate": 1048576, "all_operations_need_admin": true}}))
        .unwrap();
        let bundle = PolicyBundle { version: 4, rules };
        let acls: Vec<crate::acl::AclRule> = serde_json::from_value(serde_json::json!([
            {"resource": {"type": "topic", "name": "orders.", "pattern": "prefix"}, "operations": ["Write"]},
            {"resource": {"type": "topic", "name": "*", "pattern": "literal"}, "operations": ["Read"]},
            {"resource": {"type": "group", "name": "g", "pattern": "literal"}, "operations": ["All"]},
        ]))
        .unwrap();
        let quotas = crate::acl::UserQuotas { producer_byte_rate: Some(2 << 20), ..Default::default() };
        let subject = Subject::User { acls: Some(&acls), quotas: Some(&quotas), by_admin: false };
        let found: Vec<(String, String)> = bundle.evaluate(&subject).into_iter().map(|v| (v.policy, v.field)).collect();
        let expected = [
            ("users.no_wildcard_topic_acls", "acls[1].resource.name"),
            ("users.allowed_topic_prefixes", "acls[1].resource.name"),
            ("users.all_operations_need_admin", "acls[2].operations"),
            ("users.max_byte_rate", "quotas.producer_byte_rate"),
            ("users.max_byte_rate", "quotas.consumer_byte_rate"),
        ];
        assert_eq!(found, expected.map(|(p, f)| (p.to_owned(), f.to_owned())));
        let admin = Subject::User { acls: Some(&acls[..1]), quotas: None, by_admin: true };
        assert!(bundle.evaluate(&admin).is_empty());
    }

    #[test]
    fn the_drift_policy_reads_report_by_default_and_refuses_an_unknown_mode() {
        let rules: PolicyRules = serde_json::from_value(serde_json::json!({"drift": {}})).unwrap();
        assert_eq!(rules.drift, Some(DriftPolicy { mode: DriftMode::Report, adopt: vec![] }));
        let rules: PolicyRules =
            serde_json::from_value(serde_json::json!({"drift": {"mode": "revert", "adopt": ["spec.replicas"]}}))
                .unwrap();
        assert_eq!(rules.drift.map(|d| (d.mode, d.adopt)), Some((DriftMode::Revert, vec!["spec.replicas".to_owned()])));
        assert!(serde_json::from_value::<PolicyRules>(serde_json::json!({"drift": {"mode": "heal"}})).is_err());
    }
}
