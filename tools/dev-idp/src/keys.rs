//! The issuer's RS256 key: generated at start, and kept in a file when one is given, so a
//! restarted stack still verifies the tokens its browser tabs hold (no one is signed out by a
//! restart). The file is a development key in the repository's git-ignored `target/`, never
//! a secret anyone should reuse.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::traits::PublicKeyParts;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Key size: the smallest that identity providers use for RS256.
const KEY_BITS: usize = 2048;

/// An RSA key made for this issuer. "Insecure" because the issuer signs whatever it is asked
/// to; the key is fresh, or read back from the file an earlier run of the issuer wrote.
pub struct InsecureDevSigningKey {
    kid: String,
    encoding_key: EncodingKey,
    jwk: Value,
}

/// What the key file holds: the `kid` and the private key as PKCS#1 PEM.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    kid: String,
    private_key_pem: String,
}

impl InsecureDevSigningKey {
    /// Generates a 2048-bit key and a random `kid`.
    pub fn generate() -> anyhow::Result<Self> {
        let private_key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, KEY_BITS)?;
        Self::from_parts(random_kid()?, &private_key)
    }

    /// The key in `path`, or a new one written there (directories created, mode 0600 on Unix)
    /// when the file does not exist. A file that exists but cannot be read as a key is an
    /// error, not silently replaced: replacing it would sign every tab out without saying why.
    pub fn load_or_generate(path: &Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let file: KeyFile = serde_json::from_str(&text).with_context(|| {
                    format!(
                        "{} is not a dev-idp key file; delete it to start with a new key",
                        path.display()
                    )
                })?;
                let private_key = rsa::RsaPrivateKey::from_pkcs1_pem(&file.private_key_pem)
                    .with_context(|| {
                        format!(
                            "{} holds no RSA private key; delete it to start with a new key",
                            path.display()
                        )
                    })?;
                Self::from_parts(file.kid, &private_key)
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let private_key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, KEY_BITS)?;
                let kid = random_kid()?;
                let pem = private_key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)?;
                let file = KeyFile {
                    kid: kid.clone(),
                    private_key_pem: pem.to_string(),
                };
                match write_new(path, &serde_json::to_vec_pretty(&file)?) {
                    Ok(()) => Self::from_parts(kid, &private_key),
                    // Another issuer started at the same moment and wrote first: use its key,
                    // so both agree.
                    Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::load_or_generate(path)
                    }
                    Err(error) => {
                        Err(error).with_context(|| format!("cannot write {}", path.display()))
                    }
                }
            }
            Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    fn from_parts(kid: String, private_key: &rsa::RsaPrivateKey) -> anyhow::Result<Self> {
        let der = private_key.to_pkcs1_der()?;
        let encoding_key = EncodingKey::from_rsa_der(der.as_bytes());
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

    /// The key id tokens name in their header.
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

/// `dev-` and 16 random hex digits.
fn random_kid() -> anyhow::Result<String> {
    let mut kid_bytes = [0u8; 8];
    getrandom::fill(&mut kid_bytes)
        .map_err(|error| anyhow::anyhow!("no OS randomness: {error}"))?;
    Ok(format!(
        "dev-{}",
        kid_bytes
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect::<String>()
    ))
}

/// Writes `bytes` to `path`, which must not exist yet, readable by its owner only. The bytes go
/// to a temporary file first and are linked into place, so an issuer starting at the same
/// moment sees either no file or a whole one, and exactly one of two racing writers wins
/// (`AlreadyExists` for the other).
fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&temporary).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&temporary, path));
    let _ = std::fs::remove_file(&temporary);
    linked
}
