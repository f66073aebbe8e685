//! The user of a SignalR connection, as the service names it on an upstream request.
//!
//! Trusted because of what precedes it: the upstream request was authenticated as coming from
//! the SignalR Service (`X-ASRS-Signature`, an HMAC of the connection id with the access key, in
//! `signalr::upstream`), and the service sets `X-ASRS-User-Id` from the `asrs.s.uid` claim of
//! the token the connection presented, a token only a holder of that access key can sign: our
//! negotiate, after verifying the caller (docs/protocol/signalr-identity-2026.md §3.3).
//!
//! Only the id is taken. `X-ASRS-User-Claims` is not read: it joins `type: value` pairs with
//! `, `, so a forwarded claim whose value contains `, roles: admin` reads as a second claim
//! (docs/protocol/signalr-service.md §6), and which claims the real service lists is
//! unverified. The policy therefore sees an upstream caller with its user id and no claims:
//! `{userId}` templates fill, `{claim:…}` templates and `roles`/`claims` requirements do not.

use serde_json::Map;

use crate::identity::{IdentityError, IdentitySource, VerifiedUser};
use crate::names::UserId;

impl VerifiedUser {
    /// The user of an authenticated upstream request. An id in the `anon:` namespace is an
    /// anonymous visitor (only the visitor source issues such ids, and negotiate refuses them
    /// from every signed-in source), so the policy treats it as one.
    pub fn of_service_connection(user_id: &str) -> Result<Self, IdentityError> {
        let id = UserId::parse(user_id)
            .map_err(|_| IdentityError::BadUserId("X-ASRS-User-Id".to_owned()))?;
        let source = if id.is_anonymous() {
            IdentitySource::AnonymousVisitor
        } else {
            IdentitySource::ServiceConnection
        };
        // The connection's token expiry is not sent upstream. 0 makes anything that would mint a
        // token from this user mint an expired one: fail closed (nothing does today).
        Ok(Self::new(id, Map::new(), 0, source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_user_has_its_id_and_no_claims() {
        let user = VerifiedUser::of_service_connection("alice").expect("valid");
        assert_eq!(user.user_id(), "alice");
        assert!(user.is_signed_in());
        assert!(user.claim("roles").is_none());
        assert_eq!(user.source().name(), "signalr-connection");
    }

    #[test]
    fn an_anon_id_is_an_anonymous_visitor() {
        let user = VerifiedUser::of_service_connection("anon:v1").expect("valid");
        assert!(!user.is_signed_in());
    }

    #[test]
    fn a_malformed_id_is_refused() {
        for bad in ["", "a/b", " x", ".."] {
            assert!(VerifiedUser::of_service_connection(bad).is_err(), "{bad:?}");
        }
    }
}
