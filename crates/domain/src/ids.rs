//! Typed identifiers and names. Each validates on construction, so a value of these types is known to be good
//! wherever it travels; bare `Uuid`s and `String`s do not cross module boundaries.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// A cluster aggregate's id; also the Kafka message key of its events.
    ClusterId
);
uuid_id!(
    /// An organization (tenant).
    OrgId
);
uuid_id!(
    /// A long-running operation (provision, scale, ...).
    OperationId
);
uuid_id!(
    /// A Kubernetes cluster Polaris deploys into.
    TargetId
);

impl TargetId {
    /// The target of a cluster requested before placement existed (`ClusterRequested` version 1): none.
    pub const UNPLACED: TargetId = TargetId(Uuid::nil());
}

/// Why a name was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters, got {len}")]
    TooLong { max: usize, len: usize },
    #[error("must contain only lowercase letters, digits and '-', and start and end with a letter or digit")]
    BadCharacters,
}

/// A cluster name: an RFC 1123 DNS label, because it becomes part of the Kubernetes namespace
/// `polaris-<name>` and of Strimzi resource names. The namespace prefix takes 9 of the 63 characters a label
/// allows, which leaves 54.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClusterName(String);

impl ClusterName {
    pub const MAX_LEN: usize = 54;

    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > Self::MAX_LEN {
            return Err(NameError::TooLong { max: Self::MAX_LEN, len: s.len() });
        }
        let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        let first = s.chars().next().is_some_and(alnum);
        let last = s.chars().last().is_some_and(alnum);
        if !(first && last && s.chars().all(ok_char)) {
            return Err(NameError::BadCharacters);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl JsonSchema for ClusterName {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ClusterName".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An RFC 1123 DNS label of at most 54 characters (it becomes the namespace polaris-<name>)",
            "type": "string",
            "minLength": 1,
            "maxLength": Self::MAX_LEN,
            "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
        })
    }
}

impl TryFrom<String> for ClusterName {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ClusterName> for String {
    fn from(n: ClusterName) -> Self {
        n.0
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The cloud (or on-premises) a target runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Aws,
    Gcp,
    Azure,
    Onprem,
}

impl Provider {
    pub const ALL: [Provider; 4] = [Provider::Aws, Provider::Gcp, Provider::Azure, Provider::Onprem];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    pub const fn as_str(&self) -> &'static str {
        match self {
            Provider::Aws => "aws",
            Provider::Gcp => "gcp",
            Provider::Azure => "azure",
            Provider::Onprem => "onprem",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A provider region such as `eu-west-1`: not empty, lowercase letters, digits and '-'.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Region(String);

impl Region {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.trim().is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > 63 {
            return Err(NameError::TooLong { max: 63, len: s.len() });
        }
        if !s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return Err(NameError::BadCharacters);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl JsonSchema for Region {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Region".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A provider region such as eu-west-1",
            "type": "string",
            "minLength": 1,
            "maxLength": 63,
            "pattern": "^[a-z0-9-]+$"
        })
    }
}

impl TryFrom<String> for Region {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Region> for String {
    fn from(r: Region) -> Self {
        r.0
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_follow_dns_1123() {
        for good in ["a", "orders", "orders-eu-1", "0abc"] {
            assert!(ClusterName::parse(good).is_ok(), "{good}");
        }
        assert_eq!(ClusterName::parse(""), Err(NameError::Empty));
        for bad in ["Orders", "-a", "a-", "a_b", "a.b", "ä"] {
            assert_eq!(ClusterName::parse(bad), Err(NameError::BadCharacters), "{bad}");
        }
        assert_eq!(ClusterName::parse(&"a".repeat(55)), Err(NameError::TooLong { max: 54, len: 55 }));
    }

    #[test]
    fn providers_parse_only_known_names() {
        assert_eq!(Provider::parse("aws"), Some(Provider::Aws));
        assert_eq!(Provider::parse("AWS"), None);
        assert_eq!(Provider::parse("ibm"), None);
    }
}
