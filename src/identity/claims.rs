//! [`Claims`]: what a verified credential says about its user, kept for policy patterns, roles
//! and forwarded claims.

use serde_json::{Map, Value};

/// A verified credential's claims in the order they came, looked up by name; of a name given
/// twice the last one counts, as it did when the claims were read into a `Map`.
///
/// A list, not a map: a credential carries a dozen claims and a request looks up a few of them,
/// and building the map (an index plus SipHash of every name) was the larger share of reading an
/// app token's claims (BENCHMARKS.md, "Negotiate against the floor"). Lookups scan; a token is at
/// most 8 KiB, so the scan is bounded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claims(Vec<(String, Value)>);

impl Claims {
    /// The value of claim `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }
}

impl From<Map<String, Value>> for Claims {
    fn from(map: Map<String, Value>) -> Self {
        Self(map.into_iter().collect())
    }
}

impl<'de> serde::Deserialize<'de> for Claims {
    /// A JSON object's members as they come; anything but an object is an error.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Claims;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a JSON object of claims")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Claims, A::Error> {
                let mut claims = Vec::with_capacity(map.size_hint().unwrap_or(12).min(64));
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    claims.push(entry);
                }
                Ok(Claims(claims))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Any JSON object read as `Claims` answers every lookup as the same object read as a
        /// `Map` did, repeated names included; anything else is refused by both.
        #[test]
        fn lookups_agree_with_a_map(
            members in proptest::collection::vec(("[a-c]{1,2}", 0u8..4), 0..12),
            probe in "[a-c]{1,2}",
        ) {
            let text = format!(
                "{{{}}}",
                members
                    .iter()
                    .map(|(name, value)| format!("\"{name}\":{value}"))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let map: Map<String, Value> = serde_json::from_str(&text).expect("an object");
            let claims: Claims = serde_json::from_str(&text).expect("an object");
            proptest::prop_assert_eq!(claims.get(&probe), map.get(&probe));
            let converted = Claims::from(map.clone());
            proptest::prop_assert_eq!(converted.get(&probe), map.get(&probe));
        }
    }

    #[test]
    fn only_objects_are_claims() {
        for text in [
            "[]",
            "[[\"sub\",\"a\"]]",
            "\"sub\"",
            "1",
            "null",
            "{\"sub\":1",
        ] {
            assert!(serde_json::from_str::<Claims>(text).is_err(), "{text}");
        }
        assert!(serde_json::from_str::<Claims>("{}").is_ok());
    }
}
