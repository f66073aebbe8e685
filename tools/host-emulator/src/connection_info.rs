//! The `signalRConnectionInfo` input binding, resolved as the SignalR extension resolves it
//! (docs/protocol/functions-host.md §2, §6): binding expressions for `hubName`, `userId` and
//! `idToken` are evaluated against
//! the trigger's binding data, `idToken` is read **without verification**, and the client token
//! is minted with the AccessKey of the connection string. The emulator is faithful on purpose,
//! including the parts that make these values spoofable, so that tests show why the handler
//! must not rely on them.

use serde_json::{Map, Value, json};

use crate::app::SignalRInputBinding;
use crate::binding_data::BindingData;
use crate::connection_string::ServiceEndpoint;
use crate::jwt::{process_kid, read_unverified_claims, sign_hs256, unix_now};

/// Lifetime of minted client tokens: `NegotiationOptions.TokenLifetime` defaults to 1 hour.
pub const CLIENT_TOKEN_LIFETIME_SECONDS: u64 = 3600;

/// Claim types the SDK renames to `asrs.u.<type>` when they come from user claims.
const RESERVED_CLAIMS: &[&str] = &[
    "aud", "exp", "iat", "nbf", "iss", "actort", "acr", "azp", "c_hash", "jti", "nonce",
];

/// Resolves the binding to the string the extension hands the host: `JObject.ToString()` of
/// `{"url","accessToken"}`, i.e. indented JSON. (The invocation encodes it once more.)
pub fn resolve(
    binding: &SignalRInputBinding,
    data: &BindingData,
    settings: &dyn Fn(&str) -> Option<String>,
    connection_string: Option<&str>,
) -> Result<String, String> {
    let connection_string = connection_string.ok_or_else(|| {
        format!(
            "The SignalR Service connection string must be set either via an 'AzureSignalRConnectionString' \
             app setting or via the '{}' binding property (app setting `{}` is not set)",
            binding.connection_string_setting, binding.connection_string_setting
        )
    })?;
    let endpoint = ServiceEndpoint::parse(connection_string).map_err(|error| {
        format!(
            "app setting `{}`: {error}",
            binding.connection_string_setting
        )
    })?;
    let Some(key) = endpoint.signing_key() else {
        return Err(format!(
            "app setting `{}` names a managed identity: the binding's temporary-key flow is not emulated; \
             mint tokens in the function instead",
            binding.connection_string_setting
        ));
    };
    let hub = data
        .resolve(&binding.hub_name, settings)
        .map_err(|error| format!("hubName: {error}"))?
        .to_lowercase();
    let user_id = binding
        .user_id
        .as_deref()
        .map(|expression| data.resolve(expression, settings))
        .transpose()
        .map_err(|error| format!("userId: {error}"))?;
    let mut custom_claims = Vec::new();
    if let Some(expression) = binding.id_token.as_deref()
        && !binding.claim_type_list.is_empty()
    {
        let id_token = data
            .resolve(expression, settings)
            .map_err(|error| format!("idToken: {error}"))?;
        let claims =
            read_unverified_claims(&id_token).map_err(|error| format!("idToken: {error}"))?;
        for (claim_type, value) in claims {
            if binding.claim_type_list.contains(&claim_type) {
                custom_claims.push((claim_type, value));
            }
        }
    }
    let token = mint_client_token(
        &endpoint,
        key,
        &hub,
        user_id.as_deref(),
        custom_claims,
        unix_now(),
    );
    let info = json!({
        "url": format!("{}/client/?hub={hub}", endpoint.client_endpoint),
        "accessToken": token,
    });
    Ok(serde_json::to_string_pretty(&info).unwrap_or_default())
}

/// Mints a client access token: `asrs.s.uid` (when a user id is given), custom claims, `nbf`,
/// `exp`, `iat`, `aud` in that order; `aud` = `{scheme}://{host}/client/?hub={hub}` without port.
pub fn mint_client_token(
    endpoint: &ServiceEndpoint,
    key: &[u8],
    hub: &str,
    user_id: Option<&str>,
    custom_claims: Vec<(String, Value)>,
    now: u64,
) -> String {
    let mut claims = Map::new();
    if let Some(user_id) = user_id {
        claims.insert("asrs.s.uid".into(), json!(user_id));
    }
    for (claim_type, value) in custom_claims {
        let name = if RESERVED_CLAIMS.contains(&claim_type.as_str()) {
            format!("asrs.u.{claim_type}")
        } else {
            claim_type
        };
        if name.starts_with("asrs.s.") {
            continue;
        }
        claims.insert(name, value);
    }
    claims.insert("nbf".into(), json!(now));
    claims.insert("exp".into(), json!(now + CLIENT_TOKEN_LIFETIME_SECONDS));
    claims.insert("iat".into(), json!(now));
    claims.insert(
        "aud".into(),
        json!(format!(
            "{}client/?hub={}",
            endpoint.audience_base,
            hub.to_lowercase()
        )),
    );
    sign_hs256(&claims, key, process_kid())
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    const CONNECTION_STRING: &str = "Endpoint=http://localhost;Port=8888;AccessKey=INSECURE-UNIT-TEST-KEY-0123456789;Version=1.0;";

    fn binding(
        user_id: Option<&str>,
        id_token: Option<&str>,
        claims: &[&str],
    ) -> SignalRInputBinding {
        SignalRInputBinding {
            name: "connectionInfo".into(),
            hub_name: "Chat".into(),
            connection_string_setting: "AzureSignalRConnectionString".into(),
            user_id: user_id.map(str::to_owned),
            id_token: id_token.map(str::to_owned),
            claim_type_list: claims.iter().map(|claim| (*claim).to_owned()).collect(),
        }
    }

    fn payload_of(info: &str) -> (Value, Map<String, Value>) {
        let info: Value = serde_json::from_str(info).expect("info is JSON");
        let token = info["accessToken"].as_str().expect("token").to_owned();
        let payload = token.split('.').nth(1).expect("payload");
        let claims =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json");
        (info, claims)
    }

    fn no_settings(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_info_is_indented_and_the_token_has_the_sdk_shape() {
        let mut data = BindingData::default();
        data.set("Headers", json!({"x-ms-client-principal-id": "alice"}));
        let info = resolve(
            &binding(Some("{headers.x-ms-client-principal-id}"), None, &[]),
            &data,
            &no_settings,
            Some(CONNECTION_STRING),
        )
        .expect("resolves");
        assert!(
            info.starts_with(
                "{\n  \"url\": \"http://localhost:8888/client/?hub=chat\",\n  \"accessToken\": \""
            ),
            "{info}"
        );
        let (_, claims) = payload_of(&info);
        let keys: Vec<&str> = claims.keys().map(String::as_str).collect();
        assert_eq!(keys, ["asrs.s.uid", "nbf", "exp", "iat", "aud"]);
        assert_eq!(claims["asrs.s.uid"], json!("alice"));
        assert_eq!(claims["aud"], json!("http://localhost/client/?hub=chat"));
        assert_eq!(
            claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat"),
            CLIENT_TOKEN_LIFETIME_SECONDS
        );
    }

    #[test]
    fn id_token_claims_are_copied_unverified_and_reserved_ones_renamed() {
        let forged = format!(
            "e30.{}.forged",
            URL_SAFE_NO_PAD.encode(br#"{"name":"Mallory","aud":"x","email":"m@example"}"#)
        );
        let mut data = BindingData::default();
        data.set("Headers", json!({"x-id-token": forged}));
        let info = resolve(
            &binding(None, Some("{headers.x-id-token}"), &["name", "aud"]),
            &data,
            &no_settings,
            Some(CONNECTION_STRING),
        )
        .expect("resolves");
        let (_, claims) = payload_of(&info);
        assert_eq!(claims["name"], json!("Mallory"));
        assert_eq!(claims["asrs.u.aud"], json!("x"));
        assert!(claims.get("email").is_none());
        assert!(claims.get("asrs.s.uid").is_none());
    }

    #[test]
    fn a_missing_header_or_connection_string_fails_the_binding() {
        let data = BindingData::default();
        assert!(
            resolve(
                &binding(Some("{headers.x}"), None, &[]),
                &data,
                &no_settings,
                Some(CONNECTION_STRING)
            )
            .is_err()
        );
        assert!(resolve(&binding(None, None, &[]), &data, &no_settings, None).is_err());
    }
}
