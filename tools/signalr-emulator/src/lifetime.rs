//! Close on authentication expiration and the index of live connections (docs/protocol/signalr-identity-2026.md §1.1, §1.3).
//!
//! A client token may carry `asrs.s.coae = "true"` with `asrs.s.aeo = "<unix seconds>"`: the service then
//! closes the connection, in a way that allows reconnect, once that moment has passed, scanning every second.
//! Each connection keeps its claims and deadline in a [`ConnectionAuth`], which `:refreshAuth` replaces and
//! the upstream reads; [`LiveConnections`] finds them by connection token and runs the scan.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::auth::TokenError;
use crate::hub::Peer;
use crate::names::{HubName, UserId};

/// The error text of the close message sent when a connection's `asrs.s.aeo` has passed.
///
/// The service's own wording is not documented (docs/protocol/signalr-identity-2026.md §1.1 marks it unverified), so clients must not
/// depend on it; what matters is `allowReconnect: true`, which makes the JS client reconnect through negotiate.
pub const AUTH_EXPIRED_CLOSE_REASON: &str = "Connection closed because its authentication expired.";

/// `"true"` asks the service to close the connection at `asrs.s.aeo`.
pub(crate) const CLOSE_ON_AUTH_EXPIRATION: &str = "asrs.s.coae";
/// The authentication deadline in unix seconds, as a decimal string.
pub(crate) const AUTH_EXPIRES_ON: &str = "asrs.s.aeo";

/// The user id claim types, in the order the service reads them (docs/protocol/signalr-service.md §2.2).
const USER_ID_CLAIMS: [&str; 3] = ["asrs.s.uid", "nameid", "sub"];

/// One claim as the 2026-07-01 REST API carries it: `{"type": …, "value": …}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Claim {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) value: String,
}

impl Claim {
    pub(crate) fn new(kind: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            value: value.into(),
        }
    }
}

/// A connection's claims and authentication deadline, shared by its socket task, refresh and the upstream.
pub(crate) struct ConnectionAuth {
    state: Mutex<AuthState>,
}

#[derive(Clone)]
struct AuthState {
    claims: Vec<Claim>,
    /// Unix seconds after which the connection is closed; `None` when the token did not ask for it.
    deadline: Option<i64>,
}

impl ConnectionAuth {
    /// Reads a verified token's payload: every claim as text (arrays become one claim per element, as
    /// JwtBearer does) and the deadline from `asrs.s.coae` / `asrs.s.aeo`.
    pub(crate) fn from_token(payload: &Map<String, Value>) -> Result<Self, TokenError> {
        let coae = token_claim_text(payload, CLOSE_ON_AUTH_EXPIRATION)?;
        let aeo = token_claim_text(payload, AUTH_EXPIRES_ON)?;
        let deadline =
            parse_expiry(coae, aeo).map_err(|_invalid| TokenError::MalformedAuthExpiry)?;
        let mut claims = Vec::new();
        for (kind, value) in payload {
            match value {
                Value::Null => {}
                Value::Array(values) => {
                    claims.extend(
                        values
                            .iter()
                            .map(|value| Claim::new(kind, claim_text(value))),
                    );
                }
                other => claims.push(Claim::new(kind, claim_text(other))),
            }
        }
        Ok(Self {
            state: Mutex::new(AuthState { claims, deadline }),
        })
    }

    /// The current claims (after any refresh).
    pub(crate) fn claims(&self) -> Vec<Claim> {
        self.state.lock().claims.clone()
    }

    fn deadline(&self) -> Option<i64> {
        self.state.lock().deadline
    }
}

/// A JSON claim value as text: strings as they are, anything else as its JSON.
fn claim_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The value of a close-on-expiry claim in a token, which must be a single string when present.
fn token_claim_text<'a>(
    payload: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, TokenError> {
    match payload.get(name) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        // The SDK writes both as strings; a number or an array is a minting bug the service may not accept.
        Some(_) => Err(TokenError::MalformedAuthExpiry),
    }
}

/// The claims are not in the SDK's shape.
#[derive(Debug)]
pub(crate) struct InvalidExpiry;

/// The deadline named by `coae` and `aeo`: both or neither; `coae` is `"true"` or `"false"` (any case, as
/// .NET reads booleans); `aeo` is 1–19 ASCII digits.
pub(crate) fn parse_expiry(
    coae: Option<&str>,
    aeo: Option<&str>,
) -> Result<Option<i64>, InvalidExpiry> {
    match (coae, aeo) {
        (None, None) => Ok(None),
        (Some(coae), Some(aeo)) => {
            let close = if coae.eq_ignore_ascii_case("true") {
                true
            } else if coae.eq_ignore_ascii_case("false") {
                false
            } else {
                return Err(InvalidExpiry);
            };
            let seconds = parse_unix_seconds(aeo).ok_or(InvalidExpiry)?;
            Ok(close.then_some(seconds))
        }
        _ => Err(InvalidExpiry),
    }
}

fn parse_unix_seconds(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The single value of `kind` among `claims`; two different values are ambiguous.
fn single_value<'a>(claims: &'a [Claim], kind: &str) -> Result<Option<&'a str>, String> {
    let mut values = claims
        .iter()
        .filter(|claim| claim.kind == kind)
        .map(|claim| claim.value.as_str());
    let first = values.next();
    if let Some(first) = first
        && values.any(|other| other != first)
    {
        return Err(format!("The claim '{kind}' has more than one value."));
    }
    Ok(first)
}

/// The user a claim set names, by the precedence of docs/protocol/signalr-service.md §2.2; empty values do not count, as in tokens.
fn user_of(claims: &[Claim]) -> Result<Option<&str>, String> {
    for kind in USER_ID_CLAIMS {
        if let Some(user) = single_value(claims, kind)?
            && !user.is_empty()
        {
            return Ok(Some(user));
        }
    }
    Ok(None)
}

/// What a refresh asks for the deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NewExpiry {
    /// `expireTime` was `DateTimeOffset.MaxValue`: keep the current deadline (docs/protocol/signalr-identity-2026.md §1.3).
    Keep,
    /// `expireTime` in unix seconds.
    At(i64),
}

/// Why a refresh was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RefreshError {
    /// No live connection has that token in that hub (never connected, disconnected, or negotiate v0).
    NotFound,
    /// The new claims name another user than the connection's (`ConnectionUserMismatch`).
    UserMismatch,
    /// The request is well-formed JSON but asks for something invalid.
    Invalid(String),
}

/// One live connection in the index.
struct Entry {
    hub: HubName,
    user: Option<UserId>,
    connection_token: Option<String>,
    auth: Arc<ConnectionAuth>,
    peer: Arc<Peer>,
}

#[derive(Default)]
struct Index {
    by_id: HashMap<Arc<str>, Entry>,
    /// Connection token (negotiate v1) → connection id.
    by_token: HashMap<String, Arc<str>>,
}

/// Every live (handshaken) connection, by id and by connection token.
#[derive(Default)]
pub(crate) struct LiveConnections {
    index: Mutex<Index>,
}

/// Removes its connection from the index when dropped, i.e. when the socket task ends.
pub(crate) struct LiveRegistration {
    live: Arc<LiveConnections>,
    connection_id: Arc<str>,
}

impl Drop for LiveRegistration {
    fn drop(&mut self) {
        let mut index = self.live.index.lock();
        if let Some(entry) = index.by_id.remove(&self.connection_id)
            && let Some(token) = entry.connection_token
        {
            index.by_token.remove(&token);
        }
    }
}

/// What the socket task registers once the handshake is done.
pub(crate) struct Registration {
    pub(crate) hub: HubName,
    pub(crate) user: Option<UserId>,
    /// The negotiate v1 connection token; `None` for negotiate v0 and skipped negotiation, which cannot refresh.
    pub(crate) connection_token: Option<String>,
    pub(crate) auth: Arc<ConnectionAuth>,
    pub(crate) peer: Arc<Peer>,
}

impl LiveConnections {
    /// Adds a connection; it stays until the returned registration is dropped.
    pub(crate) fn register(self: &Arc<Self>, registration: Registration) -> LiveRegistration {
        let connection_id = Arc::clone(&registration.peer.id);
        let mut index = self.index.lock();
        if let Some(token) = &registration.connection_token {
            index
                .by_token
                .insert(token.clone(), Arc::clone(&connection_id));
        }
        index.by_id.insert(
            Arc::clone(&connection_id),
            Entry {
                hub: registration.hub,
                user: registration.user,
                connection_token: registration.connection_token,
                auth: registration.auth,
                peer: registration.peer,
            },
        );
        LiveRegistration {
            live: Arc::clone(self),
            connection_id,
        }
    }

    /// The connection holding `connection_token` in `hub`.
    fn find(
        &self,
        hub: &HubName,
        connection_token: &str,
    ) -> Option<(Option<UserId>, Arc<ConnectionAuth>)> {
        let index = self.index.lock();
        let id = index.by_token.get(connection_token)?;
        let entry = index.by_id.get(id)?;
        (&entry.hub == hub).then(|| (entry.user.clone(), Arc::clone(&entry.auth)))
    }

    /// The current claims of the connection holding `connection_token` (`…/connections/claims`): what a
    /// host reads to compare the previous user with a refreshed one before it calls `:refreshAuth`.
    pub(crate) fn claims(
        &self,
        hub: &HubName,
        connection_token: &str,
    ) -> Result<Vec<Claim>, RefreshError> {
        let (_, auth) = self
            .find(hub, connection_token)
            .ok_or(RefreshError::NotFound)?;
        Ok(auth.claims())
    }

    /// Applies a refresh (docs/protocol/signalr-identity-2026.md §1.3) and returns the claims after it.
    ///
    /// New claims must name the connection's user (the same precedence as tokens, so no claims naming a
    /// user means an anonymous connection). The deadline comes from the new claims' `asrs.s.coae` /
    /// `asrs.s.aeo` when they carry them, else from `expire`; it must be in the future. The returned claims
    /// then carry `asrs.s.coae = "true"` and `asrs.s.aeo` = the deadline, so a token minted from them closes
    /// at the same moment; without a deadline they carry neither.
    pub(crate) fn refresh(
        &self,
        hub: &HubName,
        connection_token: &str,
        new_claims: Option<Vec<Claim>>,
        expire: NewExpiry,
        now: i64,
    ) -> Result<Vec<Claim>, RefreshError> {
        let (user, auth) = self
            .find(hub, connection_token)
            .ok_or(RefreshError::NotFound)?;
        let mut claims_deadline = None;
        if let Some(new_claims) = &new_claims {
            let new_user = user_of(new_claims).map_err(RefreshError::Invalid)?;
            if new_user != user.as_ref().map(UserId::as_str) {
                return Err(RefreshError::UserMismatch);
            }
            let coae = single_value(new_claims, CLOSE_ON_AUTH_EXPIRATION)
                .map_err(RefreshError::Invalid)?;
            let aeo = single_value(new_claims, AUTH_EXPIRES_ON).map_err(RefreshError::Invalid)?;
            if coae.is_some() || aeo.is_some() {
                claims_deadline = Some(parse_expiry(coae, aeo).map_err(|_invalid| {
                    RefreshError::Invalid(format!(
                        "'{CLOSE_ON_AUTH_EXPIRATION}' and '{AUTH_EXPIRES_ON}' must come together, \
                         as \"true\" and unix seconds in a decimal string."
                    ))
                })?);
            }
        }
        let mut state = auth.state.lock();
        let deadline = match (claims_deadline, expire) {
            (Some(from_claims), _) => from_claims,
            (None, NewExpiry::At(seconds)) => Some(seconds),
            (None, NewExpiry::Keep) => state.deadline,
        };
        if let Some(deadline) = deadline
            && deadline <= now
            && Some(deadline) != state.deadline
        {
            return Err(RefreshError::Invalid(
                "The new authentication expiry is not in the future.".to_owned(),
            ));
        }
        let mut claims = new_claims.unwrap_or_else(|| state.claims.clone());
        claims.retain(|claim| {
            claim.kind != CLOSE_ON_AUTH_EXPIRATION && claim.kind != AUTH_EXPIRES_ON
        });
        if let Some(deadline) = deadline {
            claims.push(Claim::new(CLOSE_ON_AUTH_EXPIRATION, "true"));
            claims.push(Claim::new(AUTH_EXPIRES_ON, deadline.to_string()));
        }
        state.claims = claims.clone();
        state.deadline = deadline;
        Ok(claims)
    }

    /// Closes, allowing reconnect, every connection whose deadline has passed at `now` (unix seconds).
    pub(crate) fn expire(&self, now: i64) {
        let expired: Vec<Arc<Peer>> = self
            .index
            .lock()
            .values_with_deadline()
            .filter(|(deadline, _)| *deadline <= now)
            .map(|(_, peer)| peer)
            .collect();
        for peer in expired {
            tracing::debug!(connection_id = %peer.id, "closing a connection whose authentication expired");
            peer.close(Some(AUTH_EXPIRED_CLOSE_REASON.to_owned()));
        }
    }
}

impl Index {
    fn values_with_deadline(&self) -> impl Iterator<Item = (i64, Arc<Peer>)> + '_ {
        self.by_id.values().filter_map(|entry| {
            entry
                .auth
                .deadline()
                .map(|deadline| (deadline, Arc::clone(&entry.peer)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn the_deadline_needs_both_claims_in_the_sdk_shape() {
        assert_eq!(parse_expiry(None, None).ok(), Some(None));
        assert_eq!(
            parse_expiry(Some("true"), Some("1700000000")).ok(),
            Some(Some(1_700_000_000))
        );
        assert_eq!(parse_expiry(Some("True"), Some("5")).ok(), Some(Some(5)));
        assert_eq!(parse_expiry(Some("false"), Some("5")).ok(), Some(None));
        for (coae, aeo) in [
            (Some("true"), None),
            (None, Some("5")),
            (Some("yes"), Some("5")),
            (Some("true"), Some("")),
            (Some("true"), Some("-5")),
            (Some("true"), Some("+5")),
            (Some("true"), Some("5.0")),
            (Some("true"), Some(" 5")),
            (Some("true"), Some("99999999999999999999")),
        ] {
            assert!(
                parse_expiry(coae, aeo).is_err(),
                "accepted {coae:?} {aeo:?}"
            );
        }
    }

    #[test]
    fn token_claims_must_be_strings_and_become_text_claims() {
        let refused =
            payload(serde_json::json!({"asrs.s.coae": "true", "asrs.s.aeo": 1_700_000_000}));
        assert!(matches!(
            ConnectionAuth::from_token(&refused),
            Err(TokenError::MalformedAuthExpiry)
        ));
        let auth = ConnectionAuth::from_token(&payload(serde_json::json!({
            "asrs.s.uid": "alice", "role": ["a", "b"], "exp": 5, "n": null,
            "asrs.s.coae": "true", "asrs.s.aeo": "7"
        })))
        .expect("a well-formed token");
        assert_eq!(auth.deadline(), Some(7));
        assert_eq!(
            auth.claims(),
            vec![
                Claim::new("asrs.s.uid", "alice"),
                Claim::new("role", "a"),
                Claim::new("role", "b"),
                Claim::new("exp", "5"),
                Claim::new("asrs.s.coae", "true"),
                Claim::new("asrs.s.aeo", "7"),
            ]
        );
    }

    #[test]
    fn a_user_named_twice_with_different_values_is_ambiguous() {
        let claims = [
            Claim::new("asrs.s.uid", "alice"),
            Claim::new("asrs.s.uid", "bob"),
        ];
        assert!(user_of(&claims).is_err());
        let same = [
            Claim::new("asrs.s.uid", "alice"),
            Claim::new("asrs.s.uid", "alice"),
        ];
        assert_eq!(user_of(&same), Ok(Some("alice")));
        let fallback = [Claim::new("asrs.s.uid", ""), Claim::new("sub", "carol")];
        assert_eq!(user_of(&fallback), Ok(Some("carol")));
    }
}
