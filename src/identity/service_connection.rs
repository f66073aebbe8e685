//! The user of a SignalR connection, as the service names it on an upstream request.
//!
//! Trusted because of what precedes it: the upstream request was authenticated as coming from
//! the SignalR Service (`X-ASRS-Signature`, an HMAC of the connection id with the access key, in
//! `signalr::upstream`), and the service sets `X-ASRS-User-Id` from the `asrs.s.uid` claim of
//! the token the connection presented, a token only a holder of that access key can sign: our
//! negotiate, after verifying the caller (docs/protocol/signalr-identity-2026.md §3.3).
//!
//! Claims come from `X-ASRS-User-Claims`, which echoes the connection token's claims as
//! `type: value` pairs joined with `, ` (docs/protocol/signalr-service.md §6). That format is
//! ambiguous in general (a value containing `, roles: admin` reads as a second claim), so only
//! this much is read ([`ConnectionClaims::parse`]):
//!
//! - only types in `AUTH_FORWARD_CLAIMS` that negotiate writes under their own name (reserved
//!   names are renamed `asrs.u.<name>` and not read back); `asrs.*`, `aud`, `exp`, anything
//!   else is ignored. Those types are operator-set and contain no `,`, `:` or whitespace
//!   (start-up refuses them), so a pair's type is exactly what precedes its first `: `.
//! - negotiate and refresh put a forwarded claim in a token only when every value is a string
//!   that [`carries_unambiguously`] (no `,`, no control character, not empty, no surrounding
//!   whitespace; `signalr::access_token`). So no forwarded value can contain the `, `
//!   separator, and every `, ` in the header separates two claims the token really carried.
//! - a header that does not split into `type: value` items, or whose forwarded item has a value
//!   negotiate would never have signed, is not what our token carried: it is untrusted as a
//!   whole and the connection is read with no claims (fail closed: a requirement is unmet).
//!
//! The residual: another issuer of client tokens for the same hub (a server SDK holding the
//! access key) can put any claim in a token, including a forwarded type with a comma in its
//! value; the handler cannot tell such a connection from one of its own.

use serde_json::{Map, Value};

use crate::identity::{IdentityError, IdentitySource, VerifiedUser};
use crate::names::UserId;

/// Why an upstream request's `X-ASRS-User-Claims` is not trusted at all (the connection is then
/// read with no claims, and the reason logged). Never carries a claim value, only positions and
/// operator-set claim types.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UntrustedClaims {
    /// More than one `X-ASRS-User-Claims` header.
    #[error("the header is repeated")]
    Repeated,
    /// The connection's user id has a comma, so its own `asrs.s.uid: <id>` item could read as
    /// several claims.
    #[error(
        "the connection's user id contains a comma, which the header cannot carry unambiguously"
    )]
    UserIdWithComma,
    /// A `, `-separated item that is not `type: value`.
    #[error("item {0} is not `type: value`")]
    NotAPair(usize),
    /// A forwarded type whose value negotiate never puts in a token (empty, surrounding
    /// whitespace, `,` or a control character): the header is not what our token carried.
    #[error("item {index} (forwarded claim {claim_type:?}) has a value negotiate never forwards")]
    UnforwardableValue {
        /// The item's position.
        index: usize,
        /// Its claim type, one of `AUTH_FORWARD_CLAIMS`.
        claim_type: String,
    },
}

/// Whether a claim value survives `X-ASRS-User-Claims` exactly: not empty, no surrounding
/// whitespace (a header's ends are trimmed), no `,` (the pair separator) and no control
/// character (which cannot travel in a header). Negotiate forwards only such values, and the
/// upstream reads only such values back.
pub fn carries_unambiguously(value: &str) -> bool {
    !value.is_empty() && value.trim() == value && !value.chars().any(|c| c == ',' || c.is_control())
}

/// Claims read from an upstream request's `X-ASRS-User-Claims`: only forwarded types, each a
/// value our negotiate could have signed. Built only by [`ConnectionClaims::parse`].
#[derive(Debug, Default)]
pub struct ConnectionClaims(Map<String, Value>);

impl ConnectionClaims {
    /// No claims: the header is absent, or was not trusted.
    pub fn none() -> Self {
        Self::default()
    }

    /// [`ConnectionClaims::parse`] for the connection of `user_id`. The header also carries the
    /// user id itself (`asrs.s.uid: <id>`), and nothing stops an identity provider's user id
    /// from containing `, ` — an id `mallory, roles: admin` would read back as a `roles` claim.
    /// So a connection whose id has a comma is read with no claims at all (fail closed).
    pub fn parse_for(
        user_id: &str,
        values: &[&str],
        readable: &[String],
    ) -> Result<Self, UntrustedClaims> {
        if user_id.contains(',') && !values.is_empty() {
            return Err(UntrustedClaims::UserIdWithComma);
        }
        Self::parse(values, readable)
    }

    /// The claims of `readable` types in the header's `values` (all of the request's
    /// `X-ASRS-User-Claims` headers; more than one is untrusted). Split on `, `, each item on
    /// its first `: `; a type given more than once becomes an array, in header order.
    fn parse(values: &[&str], readable: &[String]) -> Result<Self, UntrustedClaims> {
        let header = match values {
            [] => return Ok(Self::none()),
            [header] => *header,
            _ => return Err(UntrustedClaims::Repeated),
        };
        let mut claims = Map::new();
        if header.trim().is_empty() {
            return Ok(Self(claims));
        }
        for (index, item) in header.split(", ").enumerate() {
            let Some((claim_type, value)) = item.split_once(": ") else {
                return Err(UntrustedClaims::NotAPair(index));
            };
            if claim_type.is_empty() || claim_type.trim() != claim_type {
                return Err(UntrustedClaims::NotAPair(index));
            }
            if !readable.iter().any(|name| name == claim_type) {
                continue;
            }
            if !carries_unambiguously(value) {
                return Err(UntrustedClaims::UnforwardableValue {
                    index,
                    claim_type: claim_type.to_owned(),
                });
            }
            let value = Value::String(value.to_owned());
            match claims.get_mut(claim_type) {
                None => {
                    claims.insert(claim_type.to_owned(), value);
                }
                Some(Value::Array(items)) => items.push(value),
                Some(first) => {
                    let first = first.take();
                    *claims
                        .get_mut(claim_type)
                        .expect("the claim was just found") = Value::Array(vec![first, value]);
                }
            }
        }
        Ok(Self(claims))
    }
}

impl VerifiedUser {
    /// The user of an authenticated upstream request, with the forwarded claims its
    /// connection's token carried. An id in the `anon:` namespace is an anonymous visitor
    /// (only the visitor source issues such ids, and negotiate refuses them from every
    /// signed-in source), so the policy treats it as one.
    pub fn of_service_connection(
        user_id: &str,
        claims: ConnectionClaims,
    ) -> Result<Self, IdentityError> {
        let id = UserId::parse(user_id).map_err(IdentityError::ConnectionUserId)?;
        let source = if id.is_anonymous() {
            IdentitySource::AnonymousVisitor
        } else {
            IdentitySource::ServiceConnection
        };
        // The connection's token expiry is not sent upstream. 0 makes anything that would mint a
        // token from this user mint an expired one: fail closed (nothing does today).
        Ok(Self::new(id, claims.0, 0, source))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn readable() -> Vec<String> {
        vec!["team".to_owned(), "roles".to_owned()]
    }

    fn parsed(header: &str) -> Result<Value, UntrustedClaims> {
        ConnectionClaims::parse(&[header], &readable()).map(|claims| Value::Object(claims.0))
    }

    #[test]
    fn a_connection_user_has_its_id_and_the_parsed_claims() {
        let claims = ConnectionClaims::parse(&["asrs.s.uid: alice, team: red"], &readable())
            .expect("trusted");
        let user = VerifiedUser::of_service_connection("alice", claims).expect("valid");
        assert_eq!(user.user_id(), "alice");
        assert!(user.is_signed_in());
        assert_eq!(user.claim("team"), Some(&json!("red")));
        assert!(user.claim("asrs.s.uid").is_none());
        assert_eq!(user.source().name(), "signalr-connection");
        let bare =
            VerifiedUser::of_service_connection("alice", ConnectionClaims::none()).expect("valid");
        assert!(bare.claim("roles").is_none());
    }

    #[test]
    fn only_forwarded_types_are_kept_and_duplicates_become_arrays() {
        assert_eq!(
            parsed(
                "asrs.s.uid: bob, roles: reader, aud: http://x/client/?hub=chat, team: red, \
                 http://schemas.xmlsoap.org/ws/2005/05/identity/claims/role: admin, \
                 exp: 1, asrs.u.nonce: n, roles: writer, roles: admin"
            ),
            Ok(json!({"roles": ["reader", "writer", "admin"], "team": "red"}))
        );
        assert_eq!(parsed(""), Ok(json!({})));
        assert_eq!(parsed("name: x"), Ok(json!({})));
        // A value may contain `: ` (the type ends at the first one).
        assert_eq!(parsed("team: a: b"), Ok(json!({"team": "a: b"})));
    }

    #[test]
    fn a_header_that_does_not_split_exactly_is_untrusted_as_a_whole() {
        let cases = [
            // A value with a comma without the space: never forwarded.
            (
                "roles: admin, team: red,roles: admin",
                UntrustedClaims::UnforwardableValue {
                    index: 1,
                    claim_type: "team".to_owned(),
                },
            ),
            // An injected `, roles` that leaves an item without `: `.
            (
                "team: red, roles, roles: admin",
                UntrustedClaims::NotAPair(1),
            ),
            ("roles: admin, x", UntrustedClaims::NotAPair(1)),
            ("roles:admin", UntrustedClaims::NotAPair(0)),
            (": admin", UntrustedClaims::NotAPair(0)),
            (
                "team: ",
                UntrustedClaims::UnforwardableValue {
                    index: 0,
                    claim_type: "team".to_owned(),
                },
            ),
            (
                "team:  red",
                UntrustedClaims::UnforwardableValue {
                    index: 0,
                    claim_type: "team".to_owned(),
                },
            ),
            (
                "team: r\u{7}d",
                UntrustedClaims::UnforwardableValue {
                    index: 0,
                    claim_type: "team".to_owned(),
                },
            ),
        ];
        for (header, expected) in cases {
            assert_eq!(parsed(header), Err(expected), "{header:?}");
        }
        assert_eq!(
            ConnectionClaims::parse(&["roles: a", "roles: b"], &readable()).map(|_| ()),
            Err(UntrustedClaims::Repeated)
        );
    }

    #[test]
    fn values_negotiate_forwards_are_exactly_the_ones_read_back() {
        for good in ["red", "a b", "a: b", "Ünïcode", "x=y;z"] {
            assert!(carries_unambiguously(good), "{good:?}");
        }
        for bad in [
            "",
            " red",
            "red ",
            "red, roles: admin",
            "a,b",
            "a\nb",
            "a\u{85}b",
        ] {
            assert!(!carries_unambiguously(bad), "{bad:?}");
        }
    }

    #[test]
    fn an_anon_id_is_an_anonymous_visitor() {
        let user = VerifiedUser::of_service_connection("anon:v1", ConnectionClaims::none())
            .expect("valid");
        assert!(!user.is_signed_in());
    }

    #[test]
    fn a_malformed_id_is_refused() {
        for bad in ["", "a/b", " x", ".."] {
            assert!(
                VerifiedUser::of_service_connection(bad, ConnectionClaims::none()).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_user_id_with_a_comma_cannot_smuggle_claims_through_its_own_item() {
        // An identity provider's id `mallory, roles: admin` is written by the service as
        // `asrs.s.uid: mallory, roles: admin`: read as pairs, that is a `roles` claim.
        let header = "asrs.s.uid: mallory, roles: admin, team: red";
        assert_eq!(
            ConnectionClaims::parse_for("mallory, roles: admin", &[header], &readable())
                .map(|_| ()),
            Err(UntrustedClaims::UserIdWithComma)
        );
        let fine =
            ConnectionClaims::parse_for("alice", &["asrs.s.uid: alice, team: red"], &readable())
                .expect("trusted");
        assert_eq!(fine.0.get("team"), Some(&json!("red")));
        // No header, no claims to smuggle: the id alone is still usable.
        assert!(ConnectionClaims::parse_for("a, b", &[], &readable()).is_ok());
    }
}
