//! Ids from a newer version: a cause, a failure kind or a DNS outcome this version does not
//! know, in a report from a newer probe.
//!
//! A fleet is upgraded a host at a time, and often the probes before the collector. Refusing a
//! report for an id it does not know would make the probe set it aside for good: a rolling
//! upgrade would lose data. So the wire enums keep such an id as it came ([`NewerId`]), and
//! stores and shows it as such; code that needs a known value reads it as `unknown` (a cause)
//! or its enum's nearest catch-all.
//!
//! The enums are `Copy` and their ids `&'static str`, so a newer id is kept once in a table
//! of this process and referred to by its index. The table is bounded ([`MAX_IDS`] ids of at
//! most [`MAX_LEN`] characters, a few KiB): a probe sending made-up ids cannot grow it
//! further, and ids past the bound read as the enum's catch-all. Only snake_case is kept, as
//! every id of the vocabulary is: anything else is refused as before.

use std::sync::{Mutex, PoisonError};

use serde::de::{Deserializer, Error};
use serde::{Deserialize, Serialize, Serializer};

/// Distinct newer ids kept per process.
const MAX_IDS: usize = 256;
/// The longest newer id kept.
const MAX_LEN: usize = 64;

static IDS: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

/// An id this version does not know, kept as it came.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NewerId(u16);

impl NewerId {
    /// The id as it came.
    pub fn id(self) -> &'static str {
        let ids = IDS.lock().unwrap_or_else(PoisonError::into_inner);
        ids.get(usize::from(self.0)).copied().unwrap_or("unknown")
    }
}

impl std::fmt::Debug for NewerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NewerId({:?})", self.id())
    }
}

/// Whether `id` looks like an id of the vocabulary: 1 to [`MAX_LEN`] of `a-z`, `0-9`, `_`.
fn is_id(id: &str) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// What a newer id became.
enum Kept {
    Newer(NewerId),
    /// The table is full: the caller's catch-all.
    Full,
}

/// Keeps `id` in the table; `None` when it is not snake_case.
fn keep(id: &str) -> Option<Kept> {
    if !is_id(id) {
        return None;
    }
    let mut ids = IDS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(i) = ids.iter().position(|kept| *kept == id) {
        return Some(Kept::Newer(NewerId(i as u16)));
    }
    if ids.len() >= MAX_IDS {
        return Some(Kept::Full);
    }
    // Leaked on purpose: at most MAX_IDS * MAX_LEN bytes for the process's life.
    ids.push(Box::leak(id.to_owned().into_boxed_str()));
    Some(Kept::Newer(NewerId((ids.len() - 1) as u16)))
}

/// An enum of the wire whose ids a newer version may add to.
pub(crate) trait WireId: Sized + Copy + 'static {
    /// What the enum is, for the error: "cause".
    const WHAT: &'static str;
    /// Every value this version knows.
    fn known() -> &'static [Self];
    fn id(self) -> &'static str;
    /// The value holding a newer id.
    fn newer(id: NewerId) -> Self;
    /// The value of an id past the table's bound.
    fn catch_all() -> Self;
}

/// Reads an id of `T`: a known one, a newer one kept, or the catch-all once the table is full.
pub(crate) fn deserialize<'de, D: Deserializer<'de>, T: WireId>(d: D) -> Result<T, D::Error> {
    let id = std::borrow::Cow::<'de, str>::deserialize(d)?;
    if let Some(known) = T::known().iter().find(|k| k.id() == id) {
        return Ok(*known);
    }
    match keep(&id) {
        Some(Kept::Newer(newer)) => Ok(T::newer(newer)),
        Some(Kept::Full) => Ok(T::catch_all()),
        None => Err(D::Error::custom(format!(
            "{} id {} is not allowed: ids are 1 to {MAX_LEN} of a-z, 0-9 and _ (known: {})",
            T::WHAT,
            crate::quoted(&id),
            T::known()
                .iter()
                .map(|k| k.id())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

pub(crate) fn serialize<S: Serializer, T: WireId>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    value.id().serialize(s)
}

/// Makes `$enum` (with `ALL`, `id()` and a `Newer(NewerId)` variant) a [`WireId`] whose ids a
/// newer version may add to, serialized as its id: `wire_id!(Cause, "cause", Unknown)`, the
/// last being the value of an id past the table's bound.
macro_rules! wire_id {
    ($enum:ident, $what:literal, $catch_all:ident) => {
        impl $crate::newer::WireId for $enum {
            const WHAT: &'static str = $what;
            fn known() -> &'static [$enum] {
                &$enum::ALL
            }
            fn id(self) -> &'static str {
                $enum::id(self)
            }
            fn newer(id: $crate::newer::NewerId) -> $enum {
                $enum::Newer(id)
            }
            fn catch_all() -> $enum {
                $enum::$catch_all
            }
        }

        impl serde::Serialize for $enum {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                $crate::newer::serialize(self, s)
            }
        }

        /// A known id, or one of a newer version kept as it came (see [`crate::newer`]).
        impl<'de> serde::Deserialize<'de> for $enum {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$enum, D::Error> {
                $crate::newer::deserialize(d)
            }
        }
    };
}
pub(crate) use wire_id;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_kept_once_and_only_snake_case() {
        let Some(Kept::Newer(a)) = keep("tls_future_thing") else {
            panic!("not kept")
        };
        let Some(Kept::Newer(b)) = keep("tls_future_thing") else {
            panic!("not kept")
        };
        assert_eq!(a, b);
        assert_eq!(a.id(), "tls_future_thing");
        assert!(keep("<script>").is_none());
        assert!(keep("").is_none());
        assert!(keep(&"a".repeat(MAX_LEN + 1)).is_none());
    }
}
