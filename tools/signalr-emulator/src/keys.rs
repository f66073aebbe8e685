//! Temporary access keys (`docs/protocol/signalr-identity-2026.md` §2.3): what an app server with
//! no access key gets from `GET /api/v1/auth/accessKey` and signs client tokens with, `kid` = the
//! `KeyId`.
//!
//! Every request issues a fresh key; earlier ones stay valid until they expire (the SDK's 120
//! minutes by default, `--temporary-key-lifetime-seconds` to change it), so an SDK refreshing every
//! 55 minutes never holds a dead key. `POST /emulator/temporary-keys/expire` (emulator only, not a
//! service route) expires all of them at once so tests can watch a rotation.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::DecodingKey;
use parking_lot::Mutex;
use serde_json::json;
use tokio::time::Instant;

use crate::app::AppState;
use crate::entra::{Permission, entra_principal};
use crate::error::ApiError;

/// Every temporary `KeyId` starts with this (the SDK's live test asserts it); a `kid` with this
/// prefix is looked up here and never falls back to the access keys.
pub(crate) const TEMPORARY_KEY_ID_PREFIX: &str = "t-";

/// The SDK treats a key as unusable 120 minutes after it was fetched
/// (docs/protocol/signalr-identity-2026.md §2.3).
pub const DEFAULT_TEMPORARY_KEY_LIFETIME: Duration = Duration::from_secs(120 * 60);

/// Live keys kept at most; beyond it the oldest goes, so a caller looping on the route cannot
/// grow memory without bound.
const MAX_LIVE_KEYS: usize = 1024;

const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const A_TO_L: &[u8] = b"ABCDEFGHIJKL";

struct IssuedKey {
    decoding_key: DecodingKey,
    expires_at: Instant,
    /// Issue order, to find the oldest even when two keys share an instant.
    sequence: u64,
}

/// The temporary keys issued and not yet expired, by `KeyId`.
pub(crate) struct TemporaryKeys {
    lifetime: Duration,
    keys: Mutex<HashMap<String, IssuedKey>>,
    issued: AtomicU64,
}

impl TemporaryKeys {
    /// An empty store whose keys live `lifetime` (zero: expired as soon as issued, for tests).
    pub(crate) fn new(lifetime: Duration) -> Self {
        Self {
            lifetime,
            keys: Mutex::new(HashMap::new()),
            issued: AtomicU64::new(0),
        }
    }

    /// Issues a key: `(KeyId, AccessKey)`. The key is returned once and kept only as an HMAC key.
    pub(crate) fn issue(&self) -> (String, String) {
        let key_id = format!("{TEMPORARY_KEY_ID_PREFIX}{}", random_hex(16));
        let access_key = annotated_key();
        let now = Instant::now();
        let mut keys = self.keys.lock();
        keys.retain(|_, key| key.expires_at > now);
        if keys.len() >= MAX_LIVE_KEYS
            && let Some(oldest) = keys
                .iter()
                .min_by_key(|(_, key)| key.sequence)
                .map(|(id, _)| id.clone())
        {
            keys.remove(&oldest);
        }
        keys.insert(
            key_id.clone(),
            IssuedKey {
                decoding_key: DecodingKey::from_secret(access_key.as_bytes()),
                expires_at: now + self.lifetime,
                sequence: self.issued.fetch_add(1, Ordering::Relaxed),
            },
        );
        (key_id, access_key)
    }

    /// The HMAC key of a live `KeyId`; `None` when unknown or expired.
    pub(crate) fn decoding_key(&self, key_id: &str) -> Option<DecodingKey> {
        let keys = self.keys.lock();
        let key = keys.get(key_id)?;
        (key.expires_at > Instant::now()).then(|| key.decoding_key.clone())
    }

    /// Expires every key; returns how many were live.
    pub(crate) fn expire_all(&self) -> usize {
        let now = Instant::now();
        let mut keys = self.keys.lock();
        let live = keys.values().filter(|key| key.expires_at > now).count();
        keys.clear();
        live
    }
}

/// Uniform random bytes from `alphabet` (rejection sampling, so no character is favoured).
fn random_chars(alphabet: &[u8], count: usize) -> String {
    let limit = 256 - 256 % alphabet.len();
    let mut text = String::with_capacity(count);
    let mut buffer = [0_u8; 64];
    while text.len() < count {
        getrandom::fill(&mut buffer).expect("the operating system's random source is available");
        for byte in buffer {
            if text.len() == count {
                break;
            }
            if usize::from(byte) < limit {
                text.push(char::from(alphabet[usize::from(byte) % alphabet.len()]));
            }
        }
    }
    text
}

fn random_hex(bytes: usize) -> String {
    random_chars(b"0123456789abcdef", bytes * 2)
}

/// A key in the shape of the service's "common annotated key" (the SDK's live test matches
/// `[A-Za-z0-9]{52}JQQJ9(9|D)[A-Za-z0-9][A-L][A-Za-z0-9]{16}[A-Za-z][A-Za-z0-9]{7}`), so code
/// that checks the shape accepts it; 78 of its 84 characters are random.
fn annotated_key() -> String {
    [
        random_chars(ALPHANUMERIC, 52),
        "JQQJ99".to_owned(),
        random_chars(ALPHANUMERIC, 1),
        random_chars(A_TO_L, 1),
        random_chars(ALPHANUMERIC, 16),
        random_chars(LETTERS, 1),
        random_chars(ALPHANUMERIC, 7),
    ]
    .concat()
}

/// `GET /api/v1/auth/accessKey` (and `/api/auth/accessKey?api-version=…`): a fresh temporary key
/// for an Entra identity holding "SignalR App Server" or "SignalR Service Owner"; 401 without a
/// valid token, 403 without the role.
pub(crate) async fn access_key(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let principal = entra_principal(&app, &headers).await?;
    principal.require(Permission::TemporaryKey)?;
    let (key_id, access_key) = app.temporary_keys.issue();
    // The KeyId names the key without revealing it; the key itself is never logged.
    tracing::info!(key_id, object_id = ?principal.object_id, "issued a temporary access key");
    Ok(Json(json!({"KeyId": key_id, "AccessKey": access_key})).into_response())
}

/// `POST /emulator/temporary-keys/expire`: emulator only. Expires every temporary key, as if
/// their lifetime had passed; needs an Entra token with "SignalR Service Owner".
pub(crate) async fn expire_all(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let principal = entra_principal(&app, &headers).await?;
    principal.require(Permission::ExpireTemporaryKeys)?;
    let expired = app.temporary_keys.expire_all();
    tracing::info!(expired, object_id = ?principal.object_id, "expired every temporary access key");
    Ok(Json(json!({"expired": expired})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_keys_have_the_service_shape_and_differ() {
        let store = TemporaryKeys::new(DEFAULT_TEMPORARY_KEY_LIFETIME);
        let (first_id, first_key) = store.issue();
        let (second_id, second_key) = store.issue();
        assert!(
            first_id.starts_with("t-") && first_id.len() == 34,
            "{first_id}"
        );
        assert_ne!(first_id, second_id);
        assert_ne!(first_key, second_key);
        assert_eq!(first_key.len(), 84);
        assert_eq!(&first_key[52..58], "JQQJ99");
        assert!(first_key.bytes().all(|byte| byte.is_ascii_alphanumeric()));
        assert!(A_TO_L.contains(&first_key.as_bytes()[59]));
        assert!(store.decoding_key(&first_id).is_some());
        assert!(store.decoding_key("t-unknown").is_none());
    }

    #[test]
    fn keys_expire_by_lifetime_and_all_at_once() {
        let expired_at_once = TemporaryKeys::new(Duration::ZERO);
        let (key_id, _) = expired_at_once.issue();
        assert!(expired_at_once.decoding_key(&key_id).is_none());

        let store = TemporaryKeys::new(DEFAULT_TEMPORARY_KEY_LIFETIME);
        let (first, _) = store.issue();
        let (second, _) = store.issue();
        assert_eq!(store.expire_all(), 2);
        assert!(store.decoding_key(&first).is_none());
        assert!(store.decoding_key(&second).is_none());
    }

    #[test]
    fn the_store_keeps_a_bounded_number_of_keys() {
        let store = TemporaryKeys::new(DEFAULT_TEMPORARY_KEY_LIFETIME);
        let (first, _) = store.issue();
        for _ in 0..MAX_LIVE_KEYS {
            store.issue();
        }
        assert_eq!(store.keys.lock().len(), MAX_LIVE_KEYS);
        assert!(store.decoding_key(&first).is_none(), "the oldest went");
    }
}
