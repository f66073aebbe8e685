//! App Service Authentication ("EasyAuth"): the `X-MS-CLIENT-PRINCIPAL` header.
//!
//! The header is trustworthy only when the platform wrote it: App Service documents that
//! external requests cannot set it *when authentication is on*, and nothing says it is stripped
//! when authentication is off (docs/protocol/webpubsub.md §3.3). So this source exists only when
//! the operator lists
//! `appservice` in `AUTH_SOURCES` **and** the platform sets `WEBSITE_AUTH_ENABLED=true`;
//! [`crate::identity::Authenticator::new`] leaves it out otherwise.
//!
//! Two shapes share the header name (docs/protocol/webpubsub.md §3.2): App Service / Functions
//! (`auth_typ`, `claims[{typ,val}]`, `name_typ`, `role_typ`) and Static Web Apps
//! (`identityProvider`, `userId`, `userDetails`, `userRoles`). The operator says which one the
//! app sits behind, and the other is refused, as is anything that mixes them.
//! `X-MS-CLIENT-PRINCIPAL-ID` alone is never trusted.

use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::identity::{IdentityError, IdentitySource, VerifiedUser};
use crate::invocation::HttpRequestData;
use crate::names::UserId;
use crate::settings::{ConfigError, Env};

/// The principal header.
pub const PRINCIPAL_HEADER: &str = "X-MS-CLIENT-PRINCIPAL";
/// The id header, which is never trusted on its own.
pub const PRINCIPAL_ID_HEADER: &str = "X-MS-CLIENT-PRINCIPAL-ID";
/// Longest accepted header value. Principals with many group claims reach a few KB.
const MAX_PRINCIPAL_BYTES: usize = 32 * 1024;
/// Most claims accepted in one principal.
const MAX_CLAIMS: usize = 512;

/// True when the request carries either principal header: the source then decides.
pub fn presented(request: &HttpRequestData) -> bool {
    !request.header_values(PRINCIPAL_HEADER).is_empty()
        || !request.header_values(PRINCIPAL_ID_HEADER).is_empty()
}

/// Reads the principal header into a [`VerifiedUser`].
pub struct PrincipalVerifier {
    format: PrincipalFormat,
    user_id_claim: String,
    role_claim: Option<String>,
}

#[derive(Deserialize)]
struct AppServicePrincipal {
    auth_typ: String,
    claims: Vec<Claim>,
    #[serde(default)]
    role_typ: Option<String>,
}

#[derive(Deserialize)]
struct StaticWebAppsPrincipal {
    #[serde(rename = "identityProvider")]
    identity_provider: String,
    #[serde(rename = "userId")]
    user_id: String,
    #[serde(rename = "userDetails", default)]
    user_details: Option<String>,
    #[serde(rename = "userRoles")]
    user_roles: Vec<String>,
}

/// A claim; `val` must be a string (a number or an object is refused, docs/protocol/webpubsub.md
/// §3.2).
#[derive(Deserialize)]
struct Claim {
    typ: String,
    val: String,
}

impl PrincipalVerifier {
    /// A verifier for the configured shape and claim types.
    pub fn new(settings: &AppServiceSettings) -> Self {
        Self {
            format: settings.format,
            user_id_claim: settings.user_id_claim.clone(),
            role_claim: settings.role_claim.clone(),
        }
    }

    /// Verifies the principal of `request`.
    pub fn verify(&self, request: &HttpRequestData) -> Result<VerifiedUser, IdentityError> {
        let value = match request.header_values(PRINCIPAL_HEADER).as_slice() {
            [] => {
                return Err(IdentityError::Principal(
                    "X-MS-CLIENT-PRINCIPAL-ID came without X-MS-CLIENT-PRINCIPAL; the id alone is never trusted",
                ));
            }
            [value] => value.trim(),
            _ => return Err(IdentityError::Principal("more than one header")),
        };
        if value.len() > MAX_PRINCIPAL_BYTES {
            return Err(IdentityError::Principal("the header is too large"));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value)
            .map_err(|_| IdentityError::Principal("not base64"))?;
        let json: Value =
            serde_json::from_slice(&bytes).map_err(|_| IdentityError::Principal("not JSON"))?;
        self.parse(json)
    }

    /// Parses the decoded principal JSON.
    fn parse(&self, json: Value) -> Result<VerifiedUser, IdentityError> {
        let Value::Object(object) = &json else {
            return Err(IdentityError::Principal("not a JSON object"));
        };
        let app_service = ["auth_typ", "name_typ", "role_typ"]
            .iter()
            .any(|key| object.contains_key(*key));
        let static_web_apps = ["identityProvider", "userId", "userDetails", "userRoles"]
            .iter()
            .any(|key| object.contains_key(*key));
        match (app_service, static_web_apps, self.format) {
            (true, true, _) => Err(IdentityError::Principal(
                "mixes the App Service and Static Web Apps shapes",
            )),
            (true, false, PrincipalFormat::AppService) => self.parse_app_service(json),
            (false, true, PrincipalFormat::StaticWebApps) => parse_static_web_apps(json),
            (false, true, PrincipalFormat::AppService) => Err(IdentityError::Principal(
                "has the Static Web Apps shape, but AUTH_APPSERVICE_FORMAT is appservice",
            )),
            (true, false, PrincipalFormat::StaticWebApps) => Err(IdentityError::Principal(
                "has the App Service shape, but AUTH_APPSERVICE_FORMAT is staticwebapps",
            )),
            (false, false, _) => Err(IdentityError::Principal(
                "has neither the App Service nor the Static Web Apps shape",
            )),
        }
    }

    fn parse_app_service(&self, json: Value) -> Result<VerifiedUser, IdentityError> {
        let principal: AppServicePrincipal = serde_json::from_value(json).map_err(|_| {
            IdentityError::Principal(
                "malformed: `auth_typ` and `claims[{typ,val}]` with string values are required",
            )
        })?;
        if principal.auth_typ.trim().is_empty() {
            return Err(IdentityError::Principal("`auth_typ` is empty"));
        }
        if principal.claims.len() > MAX_CLAIMS {
            return Err(IdentityError::Principal("too many claims"));
        }
        let values = |typ: &str| -> Vec<&str> {
            principal
                .claims
                .iter()
                .filter(|claim| claim.typ == typ)
                .map(|claim| claim.val.as_str())
                .collect()
        };
        let user_id = match values(&self.user_id_claim).as_slice() {
            [id] => UserId::parse(id).map_err(|_| {
                IdentityError::Principal(
                    "the user id claim (AUTH_APPSERVICE_USER_ID_CLAIM) is missing, empty or malformed",
                )
            })?,
            [_, _, ..] => {
                return Err(IdentityError::Principal(
                    "the user id claim appears more than once",
                ));
            }
            _ => {
                return Err(IdentityError::Principal(
                    "the user id claim (AUTH_APPSERVICE_USER_ID_CLAIM) is missing, empty or malformed",
                ));
            }
        };
        let role_claim = self.role_claim.as_deref().or(principal.role_typ.as_deref());
        let roles: Vec<Value> = role_claim
            .map(|typ| values(typ).into_iter().map(Value::from).collect())
            .unwrap_or_default();

        let mut claims = Map::new();
        for claim in &principal.claims {
            match claims.get_mut(&claim.typ) {
                None => {
                    claims.insert(claim.typ.clone(), Value::from(claim.val.as_str()));
                }
                Some(Value::Array(items)) => items.push(Value::from(claim.val.as_str())),
                Some(existing) => {
                    let first = existing.take();
                    *existing = Value::Array(vec![first, Value::from(claim.val.as_str())]);
                }
            }
        }
        claims.insert("idp".into(), Value::from(principal.auth_typ));
        claims.insert("roles".into(), Value::Array(roles));
        // The platform manages the session; the SignalR token's own lifetime bounds the grant.
        Ok(VerifiedUser::new(
            user_id,
            claims,
            u64::MAX,
            IdentitySource::AppService,
        ))
    }
}

fn parse_static_web_apps(json: Value) -> Result<VerifiedUser, IdentityError> {
    let principal: StaticWebAppsPrincipal = serde_json::from_value(json).map_err(|_| {
        IdentityError::Principal(
            "malformed: `identityProvider`, `userId` and `userRoles` (strings) are required",
        )
    })?;
    // Static Web Apps gives every visitor the `anonymous` role; only `authenticated` means a
    // sign-in happened.
    if !principal
        .user_roles
        .iter()
        .any(|role| role == "authenticated")
    {
        return Err(IdentityError::Principal(
            "the Static Web Apps principal lacks the `authenticated` role",
        ));
    }
    let user_id = UserId::parse(&principal.user_id)
        .map_err(|_| IdentityError::Principal("`userId` is empty or malformed"))?;
    if principal.identity_provider.trim().is_empty() {
        return Err(IdentityError::Principal("`identityProvider` is empty"));
    }
    let mut claims = Map::new();
    claims.insert("idp".into(), Value::from(principal.identity_provider));
    if let Some(details) = principal.user_details {
        claims.insert("userDetails".into(), Value::from(details));
    }
    claims.insert(
        "roles".into(),
        Value::Array(principal.user_roles.into_iter().map(Value::from).collect()),
    );
    Ok(VerifiedUser::new(
        user_id,
        claims,
        u64::MAX,
        IdentitySource::StaticWebApps,
    ))
}

/// Which of the two shapes of `X-MS-CLIENT-PRINCIPAL` the app expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalFormat {
    /// App Service / Functions: `auth_typ`, `claims[{typ,val}]`, `name_typ`, `role_typ`.
    AppService,
    /// Static Web Apps: `identityProvider`, `userId`, `userDetails`, `userRoles`.
    StaticWebApps,
}

/// App Service Authentication ("EasyAuth").
#[derive(Debug, Clone)]
pub struct AppServiceSettings {
    /// False when `appservice` is listed but `WEBSITE_AUTH_ENABLED` is not `true`: the header is
    /// then client input and is ignored (a warning is logged once at start-up).
    pub platform_enabled: bool,
    /// The expected principal shape.
    pub format: PrincipalFormat,
    /// Claim type holding the user id (App Service shape).
    pub user_id_claim: String,
    /// Claim type holding roles; `None` uses the principal's own `role_typ`.
    pub role_claim: Option<String>,
}

impl AppServiceSettings {
    /// `WEBSITE_AUTH_ENABLED`, `AUTH_APPSERVICE_FORMAT`, `AUTH_APPSERVICE_USER_ID_CLAIM`,
    /// `AUTH_APPSERVICE_ROLE_CLAIM`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        // Only the platform sets WEBSITE_AUTH_ENABLED; without it the principal header is
        // whatever the client sent (`docs/protocol/webpubsub.md` §3.3), so the
        // source stays off.
        let platform_enabled = env
            .get("WEBSITE_AUTH_ENABLED")
            .is_some_and(|value| value.eq_ignore_ascii_case("true"));
        let format = match env.get("AUTH_APPSERVICE_FORMAT").as_deref() {
            None | Some("appservice") => PrincipalFormat::AppService,
            Some("staticwebapps") => PrincipalFormat::StaticWebApps,
            Some(other) => {
                return Err(ConfigError::new(
                    "AUTH_APPSERVICE_FORMAT",
                    format!(
                        "`{other}` is not a principal format; use appservice (App Service / Functions) or staticwebapps"
                    ),
                ));
            }
        };
        let user_id_claim = env.get("AUTH_APPSERVICE_USER_ID_CLAIM").unwrap_or_else(|| {
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier".to_owned()
        });
        if format == PrincipalFormat::StaticWebApps
            && (env.get("AUTH_APPSERVICE_USER_ID_CLAIM").is_some()
                || env.get("AUTH_APPSERVICE_ROLE_CLAIM").is_some())
        {
            return Err(ConfigError::new(
                "AUTH_APPSERVICE_FORMAT",
                "is staticwebapps, whose principal has fixed `userId` and `userRoles` fields; remove AUTH_APPSERVICE_USER_ID_CLAIM and AUTH_APPSERVICE_ROLE_CLAIM",
            ));
        }
        Ok(Self {
            platform_enabled,
            format,
            user_id_claim,
            role_claim: env.get("AUTH_APPSERVICE_ROLE_CLAIM"),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NAME_ID: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier";
    const ROLE: &str = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role";

    fn verifier(format: PrincipalFormat) -> PrincipalVerifier {
        PrincipalVerifier {
            format,
            user_id_claim: NAME_ID.into(),
            role_claim: None,
        }
    }

    fn app_service_principal() -> Value {
        json!({"auth_typ": "aad",
               "claims": [{"typ": NAME_ID, "val": "user-1"}, {"typ": "name", "val": "Alice"},
                          {"typ": ROLE, "val": "admin"}, {"typ": ROLE, "val": "writer"}],
               "name_typ": "name", "role_typ": ROLE})
    }

    #[test]
    fn reads_the_app_service_shape_with_roles_from_role_typ() {
        let user = verifier(PrincipalFormat::AppService)
            .parse(app_service_principal())
            .expect("valid");
        assert_eq!(user.user_id(), "user-1");
        assert_eq!(user.claim_strings("roles"), vec!["admin", "writer"]);
        assert_eq!(user.claim_strings("idp"), vec!["aad"]);
        assert_eq!(user.source(), IdentitySource::AppService);
        assert!(user.is_signed_in());
    }

    #[test]
    fn reads_the_static_web_apps_shape() {
        let user = verifier(PrincipalFormat::StaticWebApps)
            .parse(json!({"identityProvider": "github", "userId": "abc123",
                          "userDetails": "alice", "userRoles": ["anonymous", "authenticated"]}))
            .expect("valid");
        assert_eq!(user.user_id(), "abc123");
        assert_eq!(user.source(), IdentitySource::StaticWebApps);
    }

    #[test]
    fn principals_whose_user_id_breaks_the_name_rules_are_refused() {
        for bad in ["..", ".", "a/b", " alice", "alice ", "\u{200b}", "50%"] {
            let mut app_service = app_service_principal();
            app_service["claims"][0]["val"] = json!(bad);
            assert!(
                verifier(PrincipalFormat::AppService)
                    .parse(app_service)
                    .is_err(),
                "App Service {bad:?}"
            );
            let static_web_apps = json!({"identityProvider": "github", "userId": bad,
                                         "userRoles": ["authenticated"]});
            assert!(
                verifier(PrincipalFormat::StaticWebApps)
                    .parse(static_web_apps)
                    .is_err(),
                "Static Web Apps {bad:?}"
            );
        }
    }

    #[test]
    fn refuses_tampered_and_mismatched_principals() {
        let mut two_ids = app_service_principal();
        two_ids["claims"]
            .as_array_mut()
            .expect("array")
            .push(json!({"typ": NAME_ID, "val": "user-2"}));
        let cases = [
            (PrincipalFormat::AppService, json!([1, 2]), "not an object"),
            (
                PrincipalFormat::AppService,
                json!({"auth_typ": "aad", "claims": [{"typ": NAME_ID, "val": 42}]}),
                "numeric val",
            ),
            (
                PrincipalFormat::AppService,
                json!({"auth_typ": "aad"}),
                "no claims",
            ),
            (
                PrincipalFormat::AppService,
                json!({"auth_typ": "aad", "claims": [{"typ": "name", "val": "Alice"}]}),
                "no user id claim",
            ),
            (PrincipalFormat::AppService, two_ids, "two user ids"),
            (
                PrincipalFormat::AppService,
                json!({"identityProvider": "github", "userId": "x", "userRoles": ["authenticated"]}),
                "SWA shape where App Service is expected",
            ),
            (
                PrincipalFormat::StaticWebApps,
                app_service_principal(),
                "App Service shape where SWA is expected",
            ),
            (
                PrincipalFormat::AppService,
                json!({"auth_typ": "aad", "claims": [{"typ": NAME_ID, "val": "u"}], "userId": "admin"}),
                "mixed shapes",
            ),
            (
                PrincipalFormat::StaticWebApps,
                json!({"identityProvider": "github", "userId": "x", "userRoles": ["anonymous"]}),
                "SWA visitor without the authenticated role",
            ),
            (PrincipalFormat::AppService, json!({}), "neither shape"),
        ];
        for (format, principal, description) in cases {
            assert!(verifier(format).parse(principal).is_err(), "{description}");
        }
    }

    #[test]
    fn the_id_header_alone_is_refused_and_garbage_is_not_decoded() {
        let request = |headers: Value| {
            HttpRequestData::from_value(&json!({"Method": "POST", "Headers": headers}))
                .expect("valid")
        };
        let only_id = request(json!({"X-MS-CLIENT-PRINCIPAL-ID": ["admin"]}));
        assert!(presented(&only_id));
        assert!(
            verifier(PrincipalFormat::AppService)
                .verify(&only_id)
                .is_err()
        );
        let garbage = request(json!({"x-ms-client-principal": ["%%%"]}));
        assert!(
            verifier(PrincipalFormat::AppService)
                .verify(&garbage)
                .is_err()
        );
        assert!(!presented(&request(json!({}))));
    }
}
