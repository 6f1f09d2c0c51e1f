//! Kafka users' permissions as Strimzi's `KafkaUser` spells them (`authorization: simple`), and the rules that
//! decide whether a set of ACL rules and quotas can be applied at all: Kafka's own operation matrix (which
//! operations exist on which resource type), resource names, patterns, and quota bounds. Every problem is
//! reported with the field it is in (`acls[1].operations[0]`), not only the first.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::topic::TopicName;

/// What an ACL rule is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AclResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
}

/// How a rule's resource name matches: the exact name, or every name starting with it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AclPattern {
    #[default]
    Literal,
    Prefix,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AclEffect {
    #[default]
    Allow,
    Deny,
}

/// Kafka's ACL operations, spelled as Strimzi spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
pub enum AclOperation {
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
    All,
}

impl AclOperation {
    pub const ALL: [AclOperation; 11] = [
        AclOperation::Read,
        AclOperation::Write,
        AclOperation::Create,
        AclOperation::Delete,
        AclOperation::Alter,
        AclOperation::Describe,
        AclOperation::ClusterAction,
        AclOperation::DescribeConfigs,
        AclOperation::AlterConfigs,
        AclOperation::IdempotentWrite,
        AclOperation::All,
    ];
}

impl AclResourceType {
    /// The operations Kafka defines on this resource type (Kafka's "Operations and Resources on Protocols"
    /// table; `All` is valid on every type).
    pub fn operations(self) -> &'static [AclOperation] {
        use AclOperation::*;
        match self {
            AclResourceType::Topic => {
                &[Read, Write, Create, Delete, Alter, Describe, DescribeConfigs, AlterConfigs, All]
            }
            AclResourceType::Group => &[Read, Delete, Describe, All],
            AclResourceType::Cluster => {
                &[Create, Alter, Describe, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, All]
            }
            AclResourceType::TransactionalId => &[Write, Describe, All],
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AclResourceType::Topic => "topic",
            AclResourceType::Group => "group",
            AclResourceType::Cluster => "cluster",
            AclResourceType::TransactionalId => "transactional_id",
        }
    }
}

/// The resource a rule is about. A `cluster` resource has no name (Kafka's is always `kafka-cluster`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AclResource {
    #[serde(rename = "type")]
    pub type_: AclResourceType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    #[schemars(with = "AclPattern")]
    pub pattern: AclPattern,
}

/// One rule: these operations on this resource, allowed or denied, from a host (`*`: any).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AclRule {
    pub resource: AclResource,
    pub operations: Vec<AclOperation>,
    #[serde(default = "any_host", deserialize_with = "null_as_any_host")]
    #[schemars(with = "String")]
    pub host: String,
    #[serde(default, deserialize_with = "null_as_default")]
    #[schemars(with = "AclEffect")]
    pub effect: AclEffect,
}

fn any_host() -> String {
    "*".into()
}

/// `null` reads as absent (a request may send either): the default (`false`, empty, a drift mode's `report`).
pub(crate) fn null_as_default<'de, D: serde::Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `null` reads as absent: any host.
fn null_as_any_host<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_else(any_host))
}

/// Client quotas, as Kafka enforces them per user (all optional).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserQuotas {
    /// Bytes per second a user's producers may send, per broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer_byte_rate: Option<u64>,
    /// Bytes per second a user's consumers may fetch, per broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_byte_rate: Option<u64>,
    /// Percentage of a broker's request handler and network threads' time the user may take (per thread).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_percentage: Option<u32>,
}

/// A problem with a user's ACLs or quotas: where, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclProblem {
    /// `acls[1].operations[0]`, `quotas.producer_byte_rate`, ...
    pub field: String,
    pub detail: String,
}

/// The most ACL rules a user may have (Strimzi keeps them all in one resource).
pub const MAX_ACL_RULES: usize = 200;
/// Kafka's group and transactional id names are free text; these bounds keep them sane.
const MAX_NAME_LEN: usize = 249;

/// Every problem of `acls`, each with its field; empty when they can be applied.
pub fn acl_problems(acls: &[AclRule]) -> Vec<AclProblem> {
    let mut out = Vec::new();
    let mut problem = |field: String, detail: String| out.push(AclProblem { field, detail });
    if acls.len() > MAX_ACL_RULES {
        problem("acls".into(), format!("at most {MAX_ACL_RULES} rules, got {}", acls.len()));
    }
    for (i, rule) in acls.iter().enumerate() {
        let at = |f: &str| format!("acls[{i}].{f}");
        let r = &rule.resource;
        match (r.type_, r.name.as_deref()) {
            (AclResourceType::Cluster, None | Some("kafka-cluster")) => {
                if r.pattern != AclPattern::Literal {
                    problem(at("resource.pattern"), "a cluster resource is matched literally".into());
                }
            }
            (AclResourceType::Cluster, Some(other)) => problem(
                at("resource.name"),
                format!("a cluster resource has no name (Kafka's is kafka-cluster), got {other:?}"),
            ),
            (t, None) => problem(at("resource.name"), format!("a {} resource needs a name", t.as_str())),
            (t, Some(name)) => {
                if let Some(detail) = name_problem(t, name, r.pattern) {
                    problem(at("resource.name"), detail);
                }
            }
        }
        if rule.operations.is_empty() {
            problem(at("operations"), "at least one operation".into());
        }
        let valid = r.type_.operations();
        for (j, op) in rule.operations.iter().enumerate() {
            if !valid.contains(op) {
                problem(
                    format!("acls[{i}].operations[{j}]"),
                    format!("{op:?} is not an operation on a {} resource; Kafka's are {valid:?}", r.type_.as_str()),
                );
            }
            if rule.operations[..j].contains(op) {
                problem(format!("acls[{i}].operations[{j}]"), format!("{op:?} is listed twice"));
            }
        }
        if !host_is_valid(&rule.host) {
            problem(at("host"), format!("a host is `*` or an IP address, got {:?}", rule.host));
        }
    }
    out
}

/// Every problem of `quotas`, each with its field.
pub fn quota_problems(quotas: &UserQuotas) -> Vec<AclProblem> {
    let mut out = Vec::new();
    for (field, value) in
        [("producer_byte_rate", quotas.producer_byte_rate), ("consumer_byte_rate", quotas.consumer_byte_rate)]
    {
        if value == Some(0) {
            out.push(AclProblem {
                field: format!("quotas.{field}"),
                detail: "a byte rate is at least 1 (leave it out for no limit)".into(),
            });
        }
    }
    if let Some(p) = quotas.request_percentage
        && !(1..=10_000).contains(&p)
    {
        out.push(AclProblem {
            field: "quotas.request_percentage".into(),
            detail: format!("between 1 and 10000 (percent of one thread, summed over the threads), got {p}"),
        });
    }
    out
}

fn name_problem(t: AclResourceType, name: &str, pattern: AclPattern) -> Option<String> {
    if name == "*" {
        // Kafka's wildcard: every resource of the type (policy may forbid it; it is valid Kafka).
        return (pattern == AclPattern::Prefix).then(|| "the wildcard `*` is a literal name, not a prefix".into());
    }
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Some(format!("1 to {MAX_NAME_LEN} characters"));
    }
    if name.chars().any(char::is_control) {
        return Some("no control characters".into());
    }
    match t {
        // A prefix may be any start of a topic name; a literal is a whole one.
        AclResourceType::Topic if pattern == AclPattern::Literal => {
            TopicName::parse(name).err().map(|e| format!("not a topic name: {e}"))
        }
        AclResourceType::Topic => (!name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
            .then(|| "a topic prefix may contain only letters, digits, '.', '_' and '-'".into()),
        _ => None,
    }
}

fn host_is_valid(host: &str) -> bool {
    host == "*" || host.parse::<std::net::IpAddr>().is_ok()
}

/// A Kafka user's name: the `KafkaUser` resource's name and the SCRAM user name, so a DNS subdomain of at most
/// 64 characters (Strimzi's limit, from the TLS certificate's common name).
pub fn user_name_problem(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > 64 {
        return Some("1 to 64 characters".into());
    }
    let ok = name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !ok {
        return Some(
            "lowercase letters, digits, '-' and '.', starting and ending with a letter or digit (a Kubernetes name)"
                .into(),
        );
    }
    // Polaris' own super user (`polaris-admin`) and the users' password Secrets live under this prefix.
    name.starts_with(RESERVED_USER_PREFIX)
        .then(|| format!("names starting with {RESERVED_USER_PREFIX:?} are Polaris' own"))
}

/// User names Polaris keeps for itself.
pub const RESERVED_USER_PREFIX: &str = "polaris-";

/// The Secret Polaris writes a user's password into (the KafkaUser references it; Strimzi's User Operator writes
/// its own Secret named after the user). Never a user's name: those may not start with `polaris-`.
pub fn password_secret_name(user: &str) -> String {
    format!("{RESERVED_USER_PREFIX}user-{user}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(type_: AclResourceType, name: Option<&str>, pattern: AclPattern, ops: &[AclOperation]) -> AclRule {
        AclRule {
            resource: AclResource { type_, name: name.map(Into::into), pattern },
            operations: ops.to_vec(),
            host: "*".into(),
            effect: AclEffect::Allow,
        }
    }

    #[test]
    fn the_issue_examples_are_valid() {
        use AclOperation::*;
        let acls = [
            rule(AclResourceType::Topic, Some("orders."), AclPattern::Prefix, &[Write, Describe]),
            rule(AclResourceType::Topic, Some("orders.v1"), AclPattern::Literal, &[Read]),
            rule(AclResourceType::Group, Some("orders-app"), AclPattern::Literal, &[Read]),
            rule(AclResourceType::Cluster, None, AclPattern::Literal, &[IdempotentWrite]),
            rule(AclResourceType::TransactionalId, Some("orders-tx"), AclPattern::Prefix, &[Write, Describe]),
        ];
        assert_eq!(acl_problems(&acls), vec![]);
    }

    #[test]
    fn kafkas_operation_matrix_is_enforced_and_every_problem_names_its_field() {
        use AclOperation::*;
        let acls = [
            rule(AclResourceType::Group, Some("g"), AclPattern::Literal, &[Read, Write]),
            rule(AclResourceType::TransactionalId, Some("t"), AclPattern::Literal, &[Read]),
            rule(AclResourceType::Topic, Some("t"), AclPattern::Literal, &[ClusterAction, IdempotentWrite]),
            rule(AclResourceType::Cluster, None, AclPattern::Literal, &[Read]),
        ];
        let fields: Vec<String> = acl_problems(&acls).into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "acls[0].operations[1]",
                "acls[1].operations[0]",
                "acls[2].operations[0]",
                "acls[2].operations[1]",
                "acls[3].operations[0]"
            ]
        );
    }

    #[test]
    fn all_is_valid_on_every_type_and_every_type_has_describe() {
        for t in
            [AclResourceType::Topic, AclResourceType::Group, AclResourceType::Cluster, AclResourceType::TransactionalId]
        {
            assert!(t.operations().contains(&AclOperation::All));
            assert!(t.operations().contains(&AclOperation::Describe));
        }
    }

    #[test]
    fn names_patterns_hosts_and_repeats() {
        use AclOperation::*;
        let acls = [
            rule(AclResourceType::Topic, None, AclPattern::Literal, &[Read]),
            rule(AclResourceType::Topic, Some("bad name"), AclPattern::Literal, &[Read]),
            rule(AclResourceType::Cluster, Some("mine"), AclPattern::Literal, &[Describe]),
            rule(AclResourceType::Cluster, None, AclPattern::Prefix, &[Describe]),
            rule(AclResourceType::Topic, Some("*"), AclPattern::Prefix, &[Read]),
            rule(AclResourceType::Group, Some("g"), AclPattern::Literal, &[]),
            rule(AclResourceType::Group, Some("g"), AclPattern::Literal, &[Read, Read]),
            AclRule {
                host: "example.com".into(),
                ..rule(AclResourceType::Group, Some("g"), AclPattern::Literal, &[Read])
            },
        ];
        let fields: Vec<String> = acl_problems(&acls).into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "acls[0].resource.name",
                "acls[1].resource.name",
                "acls[2].resource.name",
                "acls[3].resource.pattern",
                "acls[4].resource.name",
                "acls[5].operations",
                "acls[6].operations[1]",
                "acls[7].host",
            ]
        );
        // `*` literal is Kafka's wildcard: valid here (a policy rule may forbid it).
        assert_eq!(acl_problems(&[rule(AclResourceType::Topic, Some("*"), AclPattern::Literal, &[Read])]), vec![]);
    }

    #[test]
    fn quotas_and_user_names() {
        let q = UserQuotas { producer_byte_rate: Some(0), consumer_byte_rate: Some(1), request_percentage: Some(0) };
        let fields: Vec<String> = quota_problems(&q).into_iter().map(|p| p.field).collect();
        assert_eq!(fields, ["quotas.producer_byte_rate", "quotas.request_percentage"]);
        assert_eq!(quota_problems(&UserQuotas::default()), vec![]);
        assert_eq!(user_name_problem("orders-app"), None);
        assert_eq!(user_name_problem("orders.app.v1"), None);
        for bad in ["", "Orders", "-a", "a-", "a_b", &"a".repeat(65)] {
            assert!(user_name_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn rules_read_as_the_api_writes_them() {
        let rule: AclRule = serde_json::from_value(serde_json::json!({
            "resource": {"type": "topic", "name": "orders.", "pattern": "prefix"},
            "operations": ["Write", "Describe"]
        }))
        .expect("a rule");
        assert_eq!(rule.host, "*");
        assert_eq!(rule.effect, AclEffect::Allow);
        assert_eq!(rule.resource.type_, AclResourceType::Topic);
        assert!(
            serde_json::from_value::<AclRule>(serde_json::json!({
                "resource": {"type": "topic", "name": "x"}, "operations": ["Fly"]
            }))
            .is_err()
        );
    }
}
