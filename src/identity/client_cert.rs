//! Client certificates, checked against an allow-list of SHA-1 thumbprints.
//!
//! App Service ends TLS at its front end and forwards the client certificate in `X-ARR-ClientCert`
//! (base64 DER), doing nothing else with it (docs/protocol/webpubsub.md §4); Web PubSub reports it
//! in the connect
//! event's `clientCertificates` (`thumbprint` and, usually, PEM `content`,
//! docs/protocol/webpubsub.md §5). Either way
//! the app must check it: parse it, check its validity dates, compute the SHA-1 thumbprint over
//! the DER bytes and accept only a thumbprint on `CLIENT_CERT_THUMBPRINTS`, which may list several
//! so old and new certificates overlap during rotation. The chain and revocation are not
//! checked: the allow-list pins exact certificates.

use sha1::{Digest, Sha1};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::identity::{IdentitySource, VerifiedUser};
use crate::invocation::HttpRequestData;
use crate::names::UserId;
use crate::settings::{ConfigError, Env, comma_list};

/// The header App Service forwards the certificate in.
pub const CLIENT_CERT_HEADER: &str = "X-ARR-ClientCert";
/// Longest accepted certificate (base64 or PEM text). Leaf certificates are 1-2 KB.
const MAX_CERTIFICATE_CHARS: usize = 16 * 1024;

/// Why a certificate was refused. Messages name thumbprints (public), never certificate bodies.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertificateError {
    /// No certificate was presented where one is required.
    #[error("no client certificate was presented")]
    Missing,
    /// More than one header value.
    #[error("more than one X-ARR-ClientCert header")]
    Ambiguous,
    /// The certificate text is larger than any legitimate one.
    #[error("the certificate is too large")]
    TooLarge,
    /// Not base64 / PEM, or not a DER X.509 certificate (or bytes after it).
    #[error("not a well-formed X.509 certificate ({0})")]
    Malformed(&'static str),
    /// The reported thumbprint is not 40 hex digits.
    #[error("the reported thumbprint is not a SHA-1 thumbprint")]
    BadThumbprint,
    /// The reported thumbprint does not match the reported certificate content.
    #[error("the reported thumbprint {reported} does not match the certificate's {actual}")]
    ThumbprintMismatch {
        /// What the request claimed.
        reported: String,
        /// What the certificate hashes to.
        actual: String,
    },
    /// The thumbprint is not on the allow-list.
    #[error("thumbprint {0} is not on CLIENT_CERT_THUMBPRINTS")]
    NotAllowed(String),
    /// Before `notBefore`.
    #[error("certificate {0} is not valid yet")]
    NotYetValid(String),
    /// After `notAfter`.
    #[error("certificate {0} has expired")]
    Expired(String),
    /// `CLIENT_CERT_USER_ID_FROM=subject-cn`, but no single usable common name.
    #[error("certificate {0} has no single usable subject common name for the user id")]
    NoCommonName(String),
    /// The user id mapped to an allowed thumbprint breaks the name rules (configuration checks
    /// this at start; refused here too rather than trusted).
    #[error("the user id mapped to certificate {0} breaks the name rules")]
    UnusableUserId(String),
    /// The user id derived from the certificate is in the anonymous namespace.
    #[error("the certificate's user id starts with `anon:`, which is reserved")]
    ReservedUserId,
    /// No allow-list is configured.
    #[error("no client-certificate allow-list is configured (CLIENT_CERT_THUMBPRINTS)")]
    NoAllowList,
}

/// True when the request carries `X-ARR-ClientCert`: the source then decides.
pub fn presented(request: &HttpRequestData) -> bool {
    !request.header_values(CLIENT_CERT_HEADER).is_empty()
}

/// Upper-case hex without separators, or `None` when `text` is not a SHA-1 thumbprint.
pub fn normalize_thumbprint(text: &str) -> Option<String> {
    let hex: String = text
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    (hex.len() == 40 && hex.chars().all(|c| c.is_ascii_hexdigit())).then_some(hex)
}

/// The SHA-1 thumbprint of DER bytes, upper-case hex (the form App Service and .NET show).
pub fn thumbprint(der: &[u8]) -> String {
    Sha1::digest(der)
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect()
}

/// Checks certificates against the allow-list.
pub struct CertificateVerifier {
    allowed: Vec<(String, Option<String>)>,
    user_id_from: CertUserId,
}

impl CertificateVerifier {
    /// A verifier for the configured allow-list.
    pub fn new(settings: &ClientCertSettings) -> Self {
        Self {
            allowed: settings.allowed.clone(),
            user_id_from: settings.user_id_from.clone(),
        }
    }

    /// Verifies the `X-ARR-ClientCert` header at `now` (unix seconds).
    pub fn verify_header(
        &self,
        request: &HttpRequestData,
        now: i64,
    ) -> Result<VerifiedUser, CertificateError> {
        let value = match request.header_values(CLIENT_CERT_HEADER).as_slice() {
            [] => return Err(CertificateError::Missing),
            [value] => value.trim(),
            _ => return Err(CertificateError::Ambiguous),
        };
        if value.is_empty() {
            return Err(CertificateError::Missing);
        }
        if value.len() > MAX_CERTIFICATE_CHARS {
            return Err(CertificateError::TooLarge);
        }
        use base64::Engine;
        let der = base64::engine::general_purpose::STANDARD
            .decode(value)
            .map_err(|_| CertificateError::Malformed("not base64"))?;
        self.verify_der(&der, now)
    }

    /// Verifies a certificate reported by thumbprint and optional PEM content (Web PubSub).
    /// Without content only the allow-list can be checked; with it, the content must hash to
    /// the reported thumbprint and be within its dates.
    pub fn verify_reported(
        &self,
        reported: &str,
        pem: Option<&str>,
        now: i64,
    ) -> Result<VerifiedUser, CertificateError> {
        let reported = normalize_thumbprint(reported).ok_or(CertificateError::BadThumbprint)?;
        let Some(pem) = pem.filter(|pem| !pem.trim().is_empty()) else {
            let user_id = self
                .allowed_user(&reported)?
                .ok_or_else(|| CertificateError::NoCommonName(reported.clone()))?;
            return Ok(certificate_user(user_id, &reported, u64::MAX));
        };
        if pem.len() > MAX_CERTIFICATE_CHARS {
            return Err(CertificateError::TooLarge);
        }
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .map_err(|_| CertificateError::Malformed("not PEM"))?;
        if block.label != "CERTIFICATE" {
            return Err(CertificateError::Malformed(
                "the PEM block is not a certificate",
            ));
        }
        let actual = thumbprint(&block.contents);
        if actual != reported {
            return Err(CertificateError::ThumbprintMismatch { reported, actual });
        }
        self.verify_der(&block.contents, now)
    }

    /// Verifies DER bytes: well-formed, on the allow-list, within its dates, with a user id.
    pub fn verify_der(&self, der: &[u8], now: i64) -> Result<VerifiedUser, CertificateError> {
        let (rest, certificate) = X509Certificate::from_der(der)
            .map_err(|_| CertificateError::Malformed("not a DER X.509 certificate"))?;
        if !rest.is_empty() {
            return Err(CertificateError::Malformed("bytes after the certificate"));
        }
        let thumbprint = thumbprint(der);
        let mapped = self.allowed_user(&thumbprint)?;
        let validity = certificate.validity();
        if now < validity.not_before.timestamp() {
            return Err(CertificateError::NotYetValid(thumbprint));
        }
        let not_after = validity.not_after.timestamp();
        if now > not_after {
            return Err(CertificateError::Expired(thumbprint));
        }
        let user_id = match mapped {
            Some(user_id) => user_id,
            None => single_common_name(&certificate)
                .ok_or_else(|| CertificateError::NoCommonName(thumbprint.clone()))?,
        };
        Ok(certificate_user(
            user_id,
            &thumbprint,
            u64::try_from(not_after).unwrap_or(0),
        ))
    }

    /// The mapped user id of an allowed thumbprint (`None` when ids come from the subject CN).
    fn allowed_user(&self, thumbprint: &str) -> Result<Option<UserId>, CertificateError> {
        let (_, user_id) = self
            .allowed
            .iter()
            .find(|(allowed, _)| allowed == thumbprint)
            .ok_or_else(|| CertificateError::NotAllowed(thumbprint.to_owned()))?;
        match self.user_id_from {
            CertUserId::Mapped => user_id
                .as_deref()
                .map(|id| {
                    UserId::parse(id)
                        .map_err(|_| CertificateError::UnusableUserId(thumbprint.to_owned()))
                })
                .transpose(),
            CertUserId::SubjectCommonName => Ok(None),
        }
    }
}

fn single_common_name(certificate: &X509Certificate<'_>) -> Option<UserId> {
    let mut names = certificate.subject().iter_common_name();
    let first = names.next()?.as_str().ok()?;
    if names.next().is_some() {
        return None;
    }
    UserId::parse(first).ok()
}

fn certificate_user(user_id: UserId, thumbprint: &str, expires_at: u64) -> VerifiedUser {
    let mut claims = serde_json::Map::new();
    claims.insert("thumbprint".into(), thumbprint.into());
    VerifiedUser::new(
        user_id,
        claims,
        expires_at,
        IdentitySource::ClientCertificate,
    )
}

/// Most thumbprints on the client-certificate allow-list.
const MAX_THUMBPRINTS: usize = 64;

/// How a certificate's user id is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertUserId {
    /// From the `THUMBPRINT=user-id` entries of `CLIENT_CERT_THUMBPRINTS`.
    Mapped,
    /// The certificate subject's common name.
    SubjectCommonName,
}

/// The client-certificate allow-list.
#[derive(Debug, Clone)]
pub struct ClientCertSettings {
    /// Allowed SHA-1 thumbprints (40 upper-case hex digits), each with its mapped user id.
    pub allowed: Vec<(String, Option<String>)>,
    /// Where the user id comes from.
    pub user_id_from: CertUserId,
}

impl ClientCertSettings {
    /// `CLIENT_CERT_THUMBPRINTS` (`THUMBPRINT[=user-id]` entries, comma separated) and
    /// `CLIENT_CERT_USER_ID_FROM`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        const SETTING: &str = "CLIENT_CERT_THUMBPRINTS";
        let value = env.require(
            SETTING,
            "list the SHA-1 thumbprints of the allowed client certificates, `THUMBPRINT=user-id,…` (several for rotation)",
        )?;
        let user_id_from = match env.get("CLIENT_CERT_USER_ID_FROM").as_deref() {
            None | Some("map") => CertUserId::Mapped,
            Some("subject-cn") => CertUserId::SubjectCommonName,
            Some(other) => {
                return Err(ConfigError::new(
                    "CLIENT_CERT_USER_ID_FROM",
                    format!(
                        "`{other}` is not a user id source; use map (THUMBPRINT=user-id entries) or subject-cn"
                    ),
                ));
            }
        };
        let mut allowed: Vec<(String, Option<String>)> = Vec::new();
        for entry in comma_list(&value) {
            let (thumbprint, user_id) = match entry.split_once('=') {
                Some((thumbprint, user_id)) => (thumbprint, Some(user_id.trim().to_owned())),
                None => (entry, None),
            };
            let thumbprint = normalize_thumbprint(thumbprint).ok_or_else(|| {
                ConfigError::new(
                    SETTING,
                    format!("`{thumbprint}` is not a SHA-1 thumbprint (40 hex digits)"),
                )
            })?;
            match (&user_id_from, &user_id) {
                (CertUserId::Mapped, None) => {
                    return Err(ConfigError::new(
                        SETTING,
                        format!(
                            "`{thumbprint}` has no user id; write `{thumbprint}=<user-id>`, or set CLIENT_CERT_USER_ID_FROM=subject-cn"
                        ),
                    ));
                }
                (CertUserId::Mapped, Some(id)) => match UserId::parse(id) {
                    Err(error) => {
                        return Err(ConfigError::new(
                            SETTING,
                            format!(
                                "the user id of `{thumbprint}`: {error} (see README, Name rules)"
                            ),
                        ));
                    }
                    Ok(id) if id.is_anonymous() => {
                        return Err(ConfigError::new(
                            SETTING,
                            format!(
                                "the user id of `{thumbprint}` starts with `anon:`, which is reserved for anonymous visitors"
                            ),
                        ));
                    }
                    Ok(_) => {}
                },
                (CertUserId::SubjectCommonName, Some(_)) => {
                    return Err(ConfigError::new(
                        SETTING,
                        format!(
                            "`{thumbprint}` maps a user id, but CLIENT_CERT_USER_ID_FROM=subject-cn; use one or the other"
                        ),
                    ));
                }
                _ => {}
            }
            if allowed.iter().any(|(known, _)| *known == thumbprint) {
                return Err(ConfigError::new(
                    SETTING,
                    format!("lists `{thumbprint}` twice"),
                ));
            }
            allowed.push((thumbprint, user_id));
        }
        if allowed.is_empty() || allowed.len() > MAX_THUMBPRINTS {
            return Err(ConfigError::new(
                SETTING,
                format!("must list from 1 to {MAX_THUMBPRINTS} thumbprints"),
            ));
        }
        Ok(Self {
            allowed,
            user_id_from,
        })
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

    use super::*;

    const DAY: i64 = 86_400;

    fn now() -> i64 {
        i64::try_from(jsonwebtoken::get_current_timestamp()).expect("fits")
    }

    /// A self-signed test certificate valid from `from` to `to` (unix seconds).
    fn certificate(cn: &str, from: i64, to: i64) -> (Vec<u8>, String) {
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, cn);
        params.distinguished_name = name;
        params.not_before = time::OffsetDateTime::from_unix_timestamp(from).expect("time");
        params.not_after = time::OffsetDateTime::from_unix_timestamp(to).expect("time");
        let key = KeyPair::generate().expect("key");
        let certificate = params.self_signed(&key).expect("signs");
        (certificate.der().to_vec(), certificate.pem())
    }

    fn verifier(allowed: &[(&str, Option<&str>)], user_id_from: CertUserId) -> CertificateVerifier {
        CertificateVerifier {
            allowed: allowed
                .iter()
                .map(|(t, u)| ((*t).to_owned(), u.map(str::to_owned)))
                .collect(),
            user_id_from,
        }
    }

    #[test]
    fn thumbprints_are_normalised() {
        let colons = "ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01";
        assert_eq!(
            normalize_thumbprint(colons).as_deref(),
            Some("ABCDEF0123456789ABCDEF0123456789ABCDEF01")
        );
        assert_eq!(normalize_thumbprint("abc"), None);
        assert_eq!(normalize_thumbprint(&"G".repeat(40)), None);
    }

    #[test]
    fn accepts_a_listed_certificate_and_maps_its_user() {
        let (der, pem) = certificate("device-7", now() - DAY, now() + DAY);
        let print = thumbprint(&der);
        let mapped = verifier(&[(&print, Some("device:7"))], CertUserId::Mapped);
        let user = mapped.verify_der(&der, now()).expect("accepted");
        assert_eq!(user.user_id(), "device:7");
        assert_eq!(user.source(), IdentitySource::ClientCertificate);
        let by_cn = verifier(&[(&print, None)], CertUserId::SubjectCommonName);
        assert_eq!(
            by_cn.verify_der(&der, now()).expect("accepted").user_id(),
            "device-7"
        );
        let reported = by_cn
            .verify_reported(&print.to_ascii_lowercase(), Some(&pem), now())
            .expect("accepted");
        assert_eq!(reported.user_id(), "device-7");
    }

    #[test]
    fn refuses_unlisted_expired_not_yet_valid_and_mismatched_certificates() {
        let (good, _) = certificate("good", now() - DAY, now() + DAY);
        let (expired, _) = certificate("old", now() - 2 * DAY, now() - DAY);
        let (future, _) = certificate("new", now() + DAY, now() + 2 * DAY);
        let (_, other_pem) = certificate("other", now() - DAY, now() + DAY);
        let list = [
            (thumbprint(&good), Some("good")),
            (thumbprint(&expired), Some("old")),
            (thumbprint(&future), Some("new")),
        ];
        let list: Vec<(&str, Option<&str>)> = list.iter().map(|(t, u)| (t.as_str(), *u)).collect();
        let verifier = verifier(&list, CertUserId::Mapped);
        let (unlisted, _) = certificate("stranger", now() - DAY, now() + DAY);
        assert!(matches!(
            verifier.verify_der(&unlisted, now()),
            Err(CertificateError::NotAllowed(_))
        ));
        assert!(matches!(
            verifier.verify_der(&expired, now()),
            Err(CertificateError::Expired(_))
        ));
        assert!(matches!(
            verifier.verify_der(&future, now()),
            Err(CertificateError::NotYetValid(_))
        ));
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(matches!(
            verifier.verify_der(&trailing, now()),
            Err(CertificateError::Malformed(_))
        ));
        assert!(matches!(
            verifier.verify_reported(&thumbprint(&good), Some(&other_pem), now()),
            Err(CertificateError::ThumbprintMismatch { .. })
        ));
        assert!(matches!(
            verifier.verify_reported("not-a-thumbprint", None, now()),
            Err(CertificateError::BadThumbprint)
        ));
    }
}
