//! HS256 JSON Web Tokens written the way the SignalR Management SDK writes them: header
//! `{"alg","typ","kid"}` in that order, claims in the caller's order, unpadded base64url, HMAC
//! over the UTF-8 bytes of the AccessKey (`docs/protocol/signalr-service.md` §2.1).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;

/// Signs `claims` (kept in insertion order) with HS256.
pub fn sign_hs256(claims: &Map<String, Value>, key: &[u8], kid: &str) -> String {
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": kid});
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(Value::Object(claims.clone()).to_string())
    );
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// The `kid` for this process. The SDK uses the key string's .NET `GetHashCode()`, which is
/// randomized per process, so a random signed 32-bit number per process is faithful.
pub fn process_kid() -> &'static str {
    static KID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KID.get_or_init(|| {
        let mut bytes = [0u8; 4];
        // Without an OS random source nothing else works either; fall back to a fixed kid.
        if getrandom::fill(&mut bytes).is_err() {
            return "0".to_owned();
        }
        i32::from_le_bytes(bytes).to_string()
    })
}

/// Reads a JWT's payload **without verifying it**, as the SignalR extension reads `idToken`
/// (`JwtSecurityTokenHandler().ReadJwtToken`). Only for copying claims into a token the service
/// will sign; never for deciding who a caller is.
pub fn read_unverified_claims(token: &str) -> Result<Map<String, Value>, String> {
    let mut parts = token.trim().split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("IDX12709: the idToken is not a well formed JWT (three parts expected)".into());
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| "IDX12729: the idToken payload is not base64url".to_owned())?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(claims)) => Ok(claims),
        _ => Err("IDX12723: the idToken payload is not a JSON object".into()),
    }
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_claims_keep_their_order_and_the_signature_checks_out() {
        let mut claims = Map::new();
        claims.insert("asrs.s.uid".into(), json!("alice"));
        claims.insert("nbf".into(), json!(1));
        claims.insert("aud".into(), json!("http://localhost/client/?hub=chat"));
        let token = sign_hs256(&claims, b"key", "-42");
        let parts: Vec<&str> = token.split('.').collect();
        let header = URL_SAFE_NO_PAD.decode(parts[0]).expect("base64url");
        assert_eq!(header, br#"{"alg":"HS256","typ":"JWT","kid":"-42"}"#);
        let payload = URL_SAFE_NO_PAD.decode(parts[1]).expect("base64url");
        assert_eq!(
            payload,
            br#"{"asrs.s.uid":"alice","nbf":1,"aud":"http://localhost/client/?hub=chat"}"#
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(b"key").expect("any length");
        mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).expect("base64url");
        assert!(mac.verify_slice(&signature).is_ok());
    }

    #[test]
    fn unverified_claims_are_read_and_garbage_is_refused() {
        let token = format!(
            "e30.{}.c2ln",
            URL_SAFE_NO_PAD.encode(br#"{"name":"Mallory","role":["admin"]}"#)
        );
        let claims = read_unverified_claims(&token).expect("readable");
        assert_eq!(claims["name"], json!("Mallory"));
        assert!(read_unverified_claims("Bearer x").is_err());
        assert!(read_unverified_claims("a.!!!.c").is_err());
    }
}
