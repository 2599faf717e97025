//! Deserializing `kind:`-tagged components without losing error locations.
//!
//! serde's derived internally-tagged enums buffer the whole entry before
//! looking at the tag, and errors raised from the buffer carry no line. We
//! instead require `kind` to be the entry's first key, read it, and hand the
//! rest of the live map to the kind's config struct, so an unknown key or a
//! wrong type is reported at its own line.

use serde::de::{Error, MapAccess};

/// Read the leading `kind: <name>` of a component entry.
pub fn read_kind<'de, A: MapAccess<'de>>(
    map: &mut A,
    what: &str,
    kinds: &'static [&'static str],
) -> Result<String, A::Error> {
    match map.next_key::<String>()? {
        Some(key) if key == "kind" => {
            let kind: String = map.next_value()?;
            if kinds.contains(&kind.as_str()) {
                Ok(kind)
            } else {
                Err(A::Error::unknown_variant(&kind, kinds))
            }
        }
        Some(other) => Err(A::Error::custom(format!(
            "`kind` must be the first key of a {what} (found `{other}` first); kinds: {}",
            kinds.join(", ")
        ))),
        None => Err(A::Error::missing_field("kind")),
    }
}

/// Implements `Deserialize` for a component enum whose variants each wrap a
/// config struct, dispatching on the leading `kind` key.
#[macro_export]
macro_rules! kind_tagged_deserialize {
    ($enum:ident, $what:literal, { $($kind:literal => $variant:ident($config:ty)),+ $(,)? }) => {
        impl<'de> serde::Deserialize<'de> for $enum {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                const KINDS: &[&str] = &[$($kind),+];
                struct KindVisitor;
                impl<'de> serde::de::Visitor<'de> for KindVisitor {
                    type Value = $enum;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        write!(f, "a {} (a mapping starting with `kind`)", $what)
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<$enum, A::Error> {
                        let kind = $crate::common::read_kind(&mut map, $what, KINDS)?;
                        let rest = serde::de::value::MapAccessDeserializer::new(map);
                        match kind.as_str() {
                            $($kind => <$config as serde::Deserialize>::deserialize(rest).map($enum::$variant),)+
                            other => Err(serde::de::Error::unknown_variant(other, KINDS)),
                        }
                    }
                }
                deserializer.deserialize_map(KindVisitor)
            }
        }
    };
}
