//! Settings tables for the SignalR-facing features: the upstream's authentication and claims, and
//! the connection string read as the extension reads it (keyless included).

use super::*;

#[test]
fn upstream_policy_sections_may_read_only_forwarded_claims() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, policy: serde_json::Value| {
        let path = dir.path().join(name);
        std::fs::write(&path, policy.to_string()).expect("write policy");
        path.to_string_lossy().into_owned()
    };
    let on_connect = write(
        "on-connect.json",
        serde_json::json!({"rules": [], "onConnect": {"groups": ["team.{claim:team}"]}}),
    );
    let invoke_roles = write(
        "invoke-roles.json",
        serde_json::json!({"rolesClaim": "groups", "rules": [],
            "invoke": [{"targets": ["x"], "require": {"roles": ["admin"]}}]}),
    );
    let invoke_claims = write(
        "invoke-claims.json",
        serde_json::json!({"rules": [],
            "invoke": [{"targets": ["x"], "require": {"claims": [{"claim": "nonce", "equals": "n"}]}}]}),
    );
    let refused = |policy: &str, forward: Option<&str>, expected: &[&str]| {
        let error = settings(&[
            ("POLICY_FILE", Some(policy)),
            ("AUTH_FORWARD_CLAIMS", forward),
        ])
        .expect_err(policy);
        assert_eq!(error.setting(), "AUTH_FORWARD_CLAIMS", "{error}");
        let text = error.to_string();
        for part in expected {
            assert!(text.contains(part), "{part:?} in {text}");
        }
    };
    refused(
        &on_connect,
        None,
        &[
            "on-connect.json",
            "\"team\"",
            "onConnect.groups",
            "add `team` to AUTH_FORWARD_CLAIMS",
        ],
    );
    refused(
        &invoke_roles,
        Some("roles"),
        &["\"groups\"", "invoke[0].require.roles", "rolesClaim"],
    );
    refused(&invoke_claims, Some("nonce"), &["asrs.u.nonce"]);
    for (policy, forward) in [(&on_connect, "team"), (&invoke_roles, "groups, team")] {
        settings(&[
            ("POLICY_FILE", Some(policy)),
            ("AUTH_FORWARD_CLAIMS", Some(forward)),
        ])
        .unwrap_or_else(|error| panic!("{policy} with {forward}: {error}"));
    }
    // Without the upstream the sections are never read, so nothing to forward.
    settings(&[
        ("POLICY_FILE", Some(&on_connect)),
        ("SIGNALR_UPSTREAM_AUTH", Some("off")),
    ])
    .expect("valid with the upstream off");
}

#[test]
fn the_upstream_authenticates_with_the_access_key_unless_turned_off() {
    let on = settings(&[]).expect("valid");
    assert!(matches!(
        on.upstream.as_ref().map(|upstream| &upstream.auth),
        Some(crate::signalr::upstream::ServiceAuth::Signature {
            secondary: None,
            ..
        })
    ));
    let off = settings(&[("SIGNALR_UPSTREAM_AUTH", Some("off"))]).expect("valid");
    assert!(off.upstream.is_none());
    // The service's managed-identity token works with a key too (the service supports it).
    let identity = settings(&[
        ("SIGNALR_UPSTREAM_AUTH", Some("managedIdentity")),
        (
            "SIGNALR_UPSTREAM_TENANT_ID",
            Some("11111111-1111-4111-8111-111111111111"),
        ),
        ("SIGNALR_UPSTREAM_AUDIENCE", Some("api://upstream")),
        ("SIGNALR_UPSTREAM_IDENTITY", Some("client-id")),
    ])
    .expect("valid");
    let Some(crate::signalr::upstream::ServiceAuth::ManagedIdentity(identity)) =
        identity.upstream.as_ref().map(|upstream| &upstream.auth)
    else {
        panic!("managed identity mode");
    };
    assert_eq!(
        identity.jwt.issuers,
        ["https://sts.windows.net/11111111-1111-4111-8111-111111111111/"]
    );
    type Overrides<'a> = &'a [(&'a str, Option<&'a str>)];
    let cases: [(Overrides, &str); 5] = [
        (
            &[("SIGNALR_UPSTREAM_AUTH", Some("managedIdentity"))],
            "SIGNALR_UPSTREAM_TENANT_ID",
        ),
        (
            &[("SIGNALR_UPSTREAM_IDENTITY", Some("client-id"))],
            "SIGNALR_UPSTREAM_IDENTITY",
        ),
        (
            &[
                ("SIGNALR_UPSTREAM_AUTH", Some("managedIdentity")),
                ("SIGNALR_SECONDARY_ACCESS_KEY", Some("INSECURE-TEST-SECOND")),
            ],
            "SIGNALR_SECONDARY_ACCESS_KEY",
        ),
        (
            &[("SIGNALR_UPSTREAM_AUTH", Some("none"))],
            "SIGNALR_UPSTREAM_AUTH",
        ),
        (
            &[
                ("SIGNALR_UPSTREAM_AUTH", Some("off")),
                ("SIGNALR_SECONDARY_ACCESS_KEY", Some("INSECURE-TEST-SECOND")),
            ],
            "SIGNALR_SECONDARY_ACCESS_KEY",
        ),
    ];
    for (overrides, setting) in cases {
        assert_eq!(error_setting(overrides), setting, "{overrides:?}");
    }
}

#[test]
fn the_connection_string_is_read_where_the_extension_reads_it_first() {
    const BAD: &str = "Endpoint=http://localhost;Version=1.0;";
    // Each entry wins over every one after it; the plain setting is BAD, so a success proves
    // the earlier entry was read.
    for name in [
        "ConnectionStrings:AzureSignalRConnectionString",
        "ConnectionStrings__AzureSignalRConnectionString",
        "CUSTOMCONNSTR_AzureSignalRConnectionString",
    ] {
        let settings = settings(&[
            ("AzureSignalRConnectionString", Some(BAD)),
            (name, Some(CONNECTION_STRING)),
        ])
        .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(settings.signalr_setting, name);
        assert!(settings.managed_identity.is_none());
    }
    assert_eq!(
        error_setting(&[("AzureSignalRConnectionString", Some(BAD))]),
        "AzureSignalRConnectionString"
    );
}

#[test]
fn keyless_settings_need_the_platform_identity_and_a_minting_negotiate() {
    let uri = (
        "AzureSignalRConnectionString__serviceUri",
        Some("https://x.service.signalr.net"),
    );
    let unset = ("AzureSignalRConnectionString", None);
    assert_eq!(error_setting(&[unset, uri]), "IDENTITY_ENDPOINT");
    let identity = [
        ("IDENTITY_ENDPOINT", Some("http://localhost:9/msi/token")),
        ("IDENTITY_HEADER", Some("insecure-test-header")),
    ];
    // The repository's negotiate has a signalRConnectionInfo input: refused, naming the setting.
    assert_eq!(
        error_setting(&[unset, uri, identity[0], identity[1]]),
        "AzureSignalRConnectionString__serviceUri"
    );
    assert_eq!(
        error_setting(&[
            unset,
            uri,
            (
                "AzureSignalRConnectionString__credential",
                Some("clientsecret")
            ),
        ]),
        "AzureSignalRConnectionString__credential"
    );
    assert_eq!(
        error_setting(&[(
            "AzureSignalRConnectionString",
            Some("Endpoint=https://x.net;AuthType=azure.app;Version=1.0;")
        )]),
        "AzureSignalRConnectionString"
    );
}
