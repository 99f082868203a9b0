//! The two names operators choose: a server's and a canary's. Each is its own type so that one
//! cannot be passed where the other is meant, and each has one rule, checked by `parse`.
//!
//! On the wire both are plain JSON strings. A report's names are taken as sent and held to
//! their rules by [`Report::validate`](crate::Report::validate), which names every bad field
//! of a report in one answer; names typed by an operator (config, command line) go through
//! `parse`.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

/// The longest server name (a DNS name's limit).
pub const MAX_SERVER_NAME: usize = 253;
/// What a server name may be, for error messages.
pub const SERVER_NAME_RULE: &str = "1 to 253 characters of ASCII letters, digits, '.', '-' and '_'";
/// The longest canary name.
pub const MAX_CANARY_NAME: usize = 128;
/// What a canary name may be, for error messages.
pub const CANARY_NAME_RULE: &str = "text of 1 to 128 characters";

/// A name that does not follow its rule: the value and the rule, for the caller to put after
/// the field's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {what}; use {rule}")]
pub struct BadName {
    pub what: &'static str,
    pub value: String,
    pub rule: &'static str,
}

/// Whether `name` can name a server: 1 to 253 characters of ASCII letters, digits, `.`, `-`
/// and `_` (a host name, or a label of the operator's choosing).
pub fn is_valid_server_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SERVER_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// Whether `name` can name a canary: 1 to 128 characters of any text.
pub fn is_valid_canary_name(name: &str) -> bool {
    (1..=MAX_CANARY_NAME).contains(&name.chars().count())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $valid:path, $rule:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// `name` if it follows the rule.
            pub fn parse(name: &str) -> Result<$name, BadName> {
                if $valid(name) {
                    Ok($name(name.to_owned()))
                } else {
                    Err(BadName {
                        what: $what,
                        value: name.to_owned(),
                        rule: $rule,
                    })
                }
            }

            /// Whether this name follows the rule (a name from the wire may not).
            pub fn is_valid(&self) -> bool {
                $valid(&self.0)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        /// Unchecked, as a name arrives on the wire; `parse` checks.
        impl From<&str> for $name {
            fn from(name: &str) -> $name {
                $name(name.to_owned())
            }
        }

        /// Unchecked, as a name arrives on the wire; `parse` checks.
        impl From<String> for $name {
            fn from(name: String) -> $name {
                $name(name)
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }
    };
}

name_type!(
    /// A server's name: what a probe reports for, a token is issued to, and the page lists.
    ServerName,
    "server name",
    is_valid_server_name,
    SERVER_NAME_RULE
);

name_type!(
    /// A canary's name, from the probe's config: unique among one probe's canaries.
    CanaryName,
    "canary name",
    is_valid_canary_name,
    CANARY_NAME_RULE
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_holds_each_name_to_its_rule() {
        assert_eq!(
            ServerName::parse("web-01.example").unwrap(),
            "web-01.example"
        );
        let bad = ServerName::parse("web 01").unwrap_err();
        assert_eq!(
            bad.to_string(),
            format!("\"web 01\" is not a valid server name; use {SERVER_NAME_RULE}")
        );
        assert!(ServerName::parse("").is_err());
        assert!(ServerName::parse(&"a".repeat(254)).is_err());
        assert_eq!(CanaryName::parse("shop front ✓").unwrap(), "shop front ✓");
        assert!(CanaryName::parse("").is_err());
        assert!(CanaryName::parse(&"é".repeat(129)).is_err());
        assert!(CanaryName::parse(&"é".repeat(128)).is_ok());
    }

    #[test]
    fn on_the_wire_a_name_is_a_string_taken_as_sent() {
        let name: ServerName = serde_json::from_str("\"web 01\"").unwrap();
        assert!(!name.is_valid());
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"web 01\"");
    }
}
