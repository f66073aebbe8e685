//! The signature checks behind `jsonwebtoken::decode`: RSA (RS256/384/512, PS256/384/512),
//! ECDSA (ES256/384) and EdDSA (Ed25519) with `ring`; HMAC with jsonwebtoken's RustCrypto backend.
//!
//! Why: with RustCrypto's `rsa` 0.9 one RSA-2048 check took 181 µs and with `p256` one ES256
//! check 231 µs, so an RS256 app token (the form Entra ID, Auth0 and every OIDC provider issue)
//! held negotiate at 8 % of the HTTP server's rate, against 46 % for HS256 (BENCHMARKS.md,
//! "Negotiate against the floor"); ring takes 21 and 52 µs. `ring` is already in the handler for
//! TLS (rustls), so this adds no crate; it is the library jsonwebtoken's own `aws_lc_rs` backend
//! mirrors, and this module follows that backend's mapping of keys and algorithms. Nothing else
//! changes: jsonwebtoken still parses the token, picks the verifier by the header's algorithm
//! only after checking it against the configured ones, and does every claim check. Ed25519 is
//! ring's too because RustCrypto's verifier panics on a key shorter than 32 bytes.
//!
//! ring accepts RSA keys of 2048 to 8192 bits. RustCrypto accepted 1024 to 4096: a key under
//! 2048 bits is now refused (its tokens fail as a bad signature), and keys of 4097 to 8192 bits,
//! which no provider here uses, are now accepted. A JWK modulus or exponent sent with leading
//! zero bytes (RFC 7518 §6.3.1.1 forbids them, some providers add one) is read as the same
//! number.

use jsonwebtoken::crypto::{CryptoProvider, JwkUtils, JwtVerifier, rust_crypto};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind};
use ring::signature::{self as ring_signature, RsaPublicKeyComponents, UnparsedPublicKey};

/// jsonwebtoken's RustCrypto provider with RSA, ECDSA and EdDSA verification done by ring.
/// Signing (only the tests sign with jsonwebtoken) and JWK helpers stay RustCrypto's.
static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: rust_crypto::DEFAULT_PROVIDER.signer_factory,
    verifier_factory: new_verifier,
    jwk_utils: JwkUtils {
        extract_rsa_public_key_components: rust_crypto::DEFAULT_PROVIDER
            .jwk_utils
            .extract_rsa_public_key_components,
        extract_ec_public_key_coordinates: rust_crypto::DEFAULT_PROVIDER
            .jwk_utils
            .extract_ec_public_key_coordinates,
        compute_digest: rust_crypto::DEFAULT_PROVIDER.jwk_utils.compute_digest,
    },
};

/// Makes [`PROVIDER`] jsonwebtoken's provider for this process; true when it is. jsonwebtoken
/// keeps the first provider it is given, or its own default once it has signed or verified
/// anything, so start-up calls this before any token is checked and refuses to run when it
/// returns false. The first attempt decides for the whole process (jsonwebtoken's refusal hands
/// back the provider offered, not the one installed, so a later call could not tell).
pub fn install() -> bool {
    static INSTALLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *INSTALLED.get_or_init(|| PROVIDER.install_default().is_ok())
}

fn new_verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    let check = match algorithm {
        Algorithm::RS256 => Check::Rsa(&ring_signature::RSA_PKCS1_2048_8192_SHA256),
        Algorithm::RS384 => Check::Rsa(&ring_signature::RSA_PKCS1_2048_8192_SHA384),
        Algorithm::RS512 => Check::Rsa(&ring_signature::RSA_PKCS1_2048_8192_SHA512),
        Algorithm::PS256 => Check::Rsa(&ring_signature::RSA_PSS_2048_8192_SHA256),
        Algorithm::PS384 => Check::Rsa(&ring_signature::RSA_PSS_2048_8192_SHA384),
        Algorithm::PS512 => Check::Rsa(&ring_signature::RSA_PSS_2048_8192_SHA512),
        Algorithm::ES256 => Check::Ecdsa(&ring_signature::ECDSA_P256_SHA256_FIXED),
        Algorithm::ES384 => Check::Ecdsa(&ring_signature::ECDSA_P384_SHA384_FIXED),
        Algorithm::EdDSA => Check::Ed25519,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            return (rust_crypto::DEFAULT_PROVIDER.verifier_factory)(algorithm, key);
        }
    };
    let family = match check {
        Check::Rsa(_) => AlgorithmFamily::Rsa,
        Check::Ecdsa(_) => AlgorithmFamily::Ec,
        Check::Ed25519 => AlgorithmFamily::Ed,
    };
    // As every backend does: a key of another family is a wrong key, not a failed signature.
    if key.family() != family {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    Ok(Box::new(RingVerifier {
        algorithm: *algorithm,
        check,
        key: key.clone(),
    }))
}

#[derive(Clone, Copy)]
enum Check {
    Rsa(&'static ring_signature::RsaParameters),
    Ecdsa(&'static ring_signature::EcdsaVerificationAlgorithm),
    Ed25519,
}

struct RingVerifier {
    algorithm: Algorithm,
    check: Check,
    key: DecodingKey,
}

impl jsonwebtoken::signature::Verifier<Vec<u8>> for RingVerifier {
    fn verify(
        &self,
        message: &[u8],
        signature: &Vec<u8>,
    ) -> Result<(), jsonwebtoken::signature::Error> {
        let checked = match (self.check, self.key.kind()) {
            (Check::Rsa(parameters), DecodingKeyKind::RsaModulusExponent { n, e }) => {
                RsaPublicKeyComponents {
                    n: without_leading_zeros(n),
                    e: without_leading_zeros(e),
                }
                .verify(parameters, message, signature)
            }
            // A PEM or DER key: jsonwebtoken keeps it as PKCS#1 `RSAPublicKey`, the form ring reads.
            (Check::Rsa(parameters), DecodingKeyKind::SecretOrDer(der)) => {
                UnparsedPublicKey::new(parameters, der).verify(message, signature)
            }
            // jsonwebtoken keeps an EC key as its uncompressed point, the form ring reads.
            (Check::Ecdsa(algorithm), DecodingKeyKind::SecretOrDer(point)) => {
                UnparsedPublicKey::new(algorithm, point).verify(message, signature)
            }
            // jsonwebtoken keeps an Ed25519 key as its 32 bytes; any other length fails here.
            (Check::Ed25519, DecodingKeyKind::SecretOrDer(key)) => {
                UnparsedPublicKey::new(&ring_signature::ED25519, key).verify(message, signature)
            }
            (Check::Ecdsa(_) | Check::Ed25519, DecodingKeyKind::RsaModulusExponent { .. }) => {
                return Err(jsonwebtoken::signature::Error::new());
            }
        };
        checked.map_err(|_| jsonwebtoken::signature::Error::new())
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// The same unsigned big-endian number without its leading zero bytes, which ring refuses.
fn without_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&byte| byte != 0)
        .unwrap_or(bytes.len());
    &bytes[start..]
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use jsonwebtoken::EncodingKey;
    use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};

    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture")
    }

    /// A signature by RustCrypto's signer (the backend the handler used before), as bytes.
    fn signature(message: &[u8], key: &EncodingKey, algorithm: Algorithm) -> Vec<u8> {
        let encoded = jsonwebtoken::crypto::sign(message, key, algorithm).expect("signs");
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .expect("base64url")
    }

    /// The public key as a JWK's components would give it (what the JWKS cache builds).
    fn from_jwk(key: &EncodingKey, algorithm: Algorithm) -> DecodingKey {
        DecodingKey::from_jwk(&Jwk::from_encoding_key(key, algorithm).expect("jwk")).expect("key")
    }

    /// ring accepts what RustCrypto signed, for every algorithm it takes over and every key
    /// form the handler builds (JWK components, PEM), and refuses a changed message or
    /// signature.
    #[test]
    fn ring_checks_what_rustcrypto_signed() {
        let rsa = EncodingKey::from_rsa_pem(&fixture("insecure-test-rsa-a.pem")).expect("rsa");
        let rsa_pem =
            DecodingKey::from_rsa_pem(&fixture("insecure-test-rsa-a.pub.pem")).expect("rsa public");
        let ec = EncodingKey::from_ec_pem(&fixture("insecure-test-ec-p256.pem")).expect("ec");
        let p384 = EncodingKey::from_ec_pem(&fixture("insecure-test-ec-p384.pem")).expect("p384");
        let ed = EncodingKey::from_ed_pem(&fixture("insecure-test-ed25519.pem")).expect("ed25519");
        let ed_pem = DecodingKey::from_ed_pem(&fixture("insecure-test-ed25519.pub.pem"))
            .expect("ed25519 public");
        let message = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9";
        let mut cases = Vec::new();
        for algorithm in [
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ] {
            cases.push((algorithm, &rsa, from_jwk(&rsa, algorithm)));
            cases.push((algorithm, &rsa, rsa_pem.clone()));
        }
        cases.push((Algorithm::ES256, &ec, from_jwk(&ec, Algorithm::ES256)));
        cases.push((Algorithm::ES384, &p384, from_jwk(&p384, Algorithm::ES384)));
        // jsonwebtoken cannot derive an Ed25519 JWK; its `x` is the SPKI's last 32 bytes.
        let spki = String::from_utf8(fixture("insecure-test-ed25519.pub.pem")).expect("text");
        let der = base64::engine::general_purpose::STANDARD
            .decode(
                spki.lines()
                    .filter(|line| !line.starts_with("-----"))
                    .collect::<String>(),
            )
            .expect("base64");
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der[der.len() - 32..]);
        let ed_jwk = DecodingKey::from_ed_components(&x).expect("x");
        cases.push((Algorithm::EdDSA, &ed, ed_jwk));
        cases.push((Algorithm::EdDSA, &ed, ed_pem));
        for (algorithm, signing, verifying) in cases {
            let verifier = new_verifier(&algorithm, &verifying).expect("a verifier");
            assert_eq!(verifier.algorithm(), algorithm);
            let good = signature(message, signing, algorithm);
            assert!(verifier.verify(message, &good).is_ok(), "{algorithm:?}");
            let mut forged = good.clone();
            forged[7] ^= 1;
            assert!(verifier.verify(message, &forged).is_err(), "{algorithm:?}");
            assert!(
                verifier.verify(b"eyJ9.changed", &good).is_err(),
                "{algorithm:?}"
            );
            assert!(
                verifier.verify(message, &good[1..].to_vec()).is_err(),
                "{algorithm:?}"
            );
            assert!(
                verifier.verify(message, &Vec::new()).is_err(),
                "{algorithm:?}"
            );
        }
    }

    /// A JWK modulus with a leading zero byte names the same key.
    #[test]
    fn a_modulus_with_a_leading_zero_is_the_same_key() {
        let rsa = EncodingKey::from_rsa_pem(&fixture("insecure-test-rsa-a.pem")).expect("rsa");
        let jwk = Jwk::from_encoding_key(&rsa, Algorithm::RS256).expect("jwk");
        let AlgorithmParameters::RSA(parameters) = &jwk.algorithm else {
            panic!("an RSA JWK");
        };
        let decode = |text: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(text)
                .expect("base64url")
        };
        let mut n = vec![0u8];
        n.extend(decode(&parameters.n));
        let mut e = vec![0u8, 0];
        e.extend(decode(&parameters.e));
        let key = DecodingKey::from_rsa_raw_components(&n, &e);
        let message = b"header.payload";
        let verifier = new_verifier(&Algorithm::RS256, &key).expect("a verifier");
        assert!(
            verifier
                .verify(message, &signature(message, &rsa, Algorithm::RS256))
                .is_ok()
        );
    }

    /// An RSA key shorter than 2048 bits is refused, though the signature is genuine (RustCrypto
    /// accepted it).
    #[test]
    fn a_1024_bit_rsa_key_is_refused() {
        let short = EncodingKey::from_rsa_pem(&fixture("insecure-test-rsa-1024.pem")).expect("rsa");
        let message = b"header.payload";
        let good = signature(message, &short, Algorithm::RS256);
        let public = from_jwk(&short, Algorithm::RS256);
        let rustcrypto =
            (rust_crypto::DEFAULT_PROVIDER.verifier_factory)(&Algorithm::RS256, &public)
                .expect("a verifier");
        assert!(
            rustcrypto.verify(message, &good).is_ok(),
            "the signature is genuine"
        );
        let verifier = new_verifier(&Algorithm::RS256, &public).expect("a verifier");
        assert!(verifier.verify(message, &good).is_err());
    }

    /// A key the curve does not fit is refused, never a panic: a P-384 key for ES256, an Ed25519
    /// key of the wrong length (RustCrypto's verifier panicked on one shorter than 32 bytes).
    #[test]
    fn a_key_of_the_wrong_size_is_refused() {
        let p384 = EncodingKey::from_ec_pem(&fixture("insecure-test-ec-p384.pem")).expect("p384");
        let ec = EncodingKey::from_ec_pem(&fixture("insecure-test-ec-p256.pem")).expect("ec");
        let message = b"header.payload";
        let verifier = new_verifier(&Algorithm::ES256, &from_jwk(&p384, Algorithm::ES384))
            .expect("a verifier");
        let good = signature(message, &ec, Algorithm::ES256);
        assert!(verifier.verify(message, &good).is_err());
        let ed = EncodingKey::from_ed_pem(&fixture("insecure-test-ed25519.pem")).expect("ed25519");
        let good = signature(message, &ed, Algorithm::EdDSA);
        for x in ["", "AAAA", &"A".repeat(44), &"A".repeat(48)] {
            let key = DecodingKey::from_ed_components(x).expect("base64url");
            let verifier = new_verifier(&Algorithm::EdDSA, &key).expect("a verifier");
            assert!(verifier.verify(message, &good).is_err(), "x = {x:?}");
        }
    }

    /// A key of another family is a wrong key (jsonwebtoken's `InvalidKeyFormat`), never a
    /// signature check: the HMAC secret cannot stand in for a public key, nor the reverse.
    #[test]
    fn a_key_of_another_family_is_refused() {
        let rsa = EncodingKey::from_rsa_pem(&fixture("insecure-test-rsa-a.pem")).expect("rsa");
        let ec = EncodingKey::from_ec_pem(&fixture("insecure-test-ec-p256.pem")).expect("ec");
        let secret = DecodingKey::from_secret(b"insecure-unit-test-secret-0123456789");
        let refused = |algorithm: Algorithm, key: &DecodingKey| {
            matches!(
                new_verifier(&algorithm, key)
                    .map(|_| ())
                    .map_err(Error::into_kind),
                Err(ErrorKind::InvalidKeyFormat)
            )
        };
        assert!(refused(Algorithm::RS256, &secret));
        assert!(refused(Algorithm::ES256, &secret));
        assert!(refused(Algorithm::RS256, &from_jwk(&ec, Algorithm::ES256)));
        assert!(refused(Algorithm::ES256, &from_jwk(&rsa, Algorithm::RS256)));
        assert!(refused(Algorithm::HS256, &from_jwk(&rsa, Algorithm::RS256)));
    }
}
