//! The issuer's RS256 key: generated at start, kept in memory only.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Map, Value, json};

/// Key size: the smallest that identity providers use for RS256.
const KEY_BITS: usize = 2048;

/// An RSA key made for this process. "Insecure" because the issuer signs whatever it is asked
/// to; the key itself is fresh and never leaves memory.
pub struct InsecureDevSigningKey {
    kid: String,
    encoding_key: EncodingKey,
    jwk: Value,
}

impl InsecureDevSigningKey {
    /// Generates a 2048-bit key and a random `kid`.
    pub fn generate() -> anyhow::Result<Self> {
        let private_key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, KEY_BITS)?;
        let der = private_key.to_pkcs1_der()?;
        let encoding_key = EncodingKey::from_rsa_der(der.as_bytes());
        let mut kid_bytes = [0u8; 8];
        getrandom::fill(&mut kid_bytes)
            .map_err(|error| anyhow::anyhow!("no OS randomness: {error}"))?;
        let kid = format!(
            "dev-{}",
            kid_bytes
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect::<String>()
        );
        let jwk = json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(private_key.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(private_key.e().to_bytes_be()),
        });
        Ok(Self {
            kid,
            encoding_key,
            jwk,
        })
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// Signs `claims` with RS256 and this key's `kid`.
    pub fn sign(&self, claims: &Map<String, Value>) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding_key)?)
    }
}
