//! The configuration table tests: each missing or bad setting is named.

use std::collections::HashMap;
use std::path::PathBuf;

use jsonwebtoken::Algorithm;

use super::*;
use crate::function::Function;
use crate::identity::jwt::KeySource;
use crate::identity::sources::SourceKind;
use crate::webpubsub::ConnectJwt;

/// The settings of the SignalR-facing features: the upstream, keyless connection strings.
mod services;

const SECRET: &str = "insecure-test-secret-that-is-long-enough-0123";
const CONNECTION_STRING: &str = "Endpoint=http://localhost;Port=8888;AccessKey=INSECURE-TEST-ACCESS-KEY-0123456789ABCDEFGH;Version=1.0;";
const WEBPUBSUB: &str = "Endpoint=https://insecure-test.webpubsub.azure.com;AccessKey=INSECURE-TEST-WPS-KEY-0123456789ABCDEFGH;Version=1.0;";
const THUMBPRINT: &str = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01";
const VISITOR_SECRET: &str = "insecure-test-visitor-secret-0123456789-abcdef";

fn app_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn settings(overrides: &[(&str, Option<&str>)]) -> Result<Settings, ConfigError> {
    let mut values: HashMap<String, String> = [
        ("FUNCTIONS_CUSTOMHANDLER_PORT", "0"),
        ("AzureSignalRConnectionString", CONNECTION_STRING),
        ("AUTH_ISSUER", "https://issuer.example.com/"),
        ("AUTH_AUDIENCE", "api://chat"),
        ("AUTH_HS256_SECRET", SECRET),
        ("WEBPUBSUB_CONNECTION_STRING", WEBPUBSUB),
        ("WEBPUBSUB_REQUIRE_CLIENT_CERT", "false"),
        ("WEBPUBSUB_CONNECT_JWT", "required"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (name, value) in overrides {
        match value {
            Some(value) => values.insert((*name).to_owned(), (*value).to_owned()),
            None => values.remove(*name),
        };
    }
    let lookup = move |name: &str| values.get(name).cloned();
    Settings::from_lookup(&lookup, Some(&app_root()))
}

fn error_setting(overrides: &[(&str, Option<&str>)]) -> String {
    settings(overrides)
        .expect_err("should be refused")
        .setting()
        .to_owned()
}

#[test]
fn issuer_and_audience_are_comma_lists_trimmed_and_deduplicated() {
    let settings = settings(&[
        (
            "AUTH_ISSUER",
            Some("https://sts.windows.net/t/, https://login.microsoftonline.com/t/v2.0"),
        ),
        (
            "AUTH_AUDIENCE",
            Some("api://chat , 11111111-2222-3333-4444-555555555555,api://chat"),
        ),
    ])
    .expect("valid");
    let jwt = settings.auth.jwt.expect("jwt source");
    assert_eq!(
        jwt.issuers,
        [
            "https://sts.windows.net/t/",
            "https://login.microsoftonline.com/t/v2.0"
        ]
    );
    assert_eq!(
        jwt.audiences,
        ["api://chat", "11111111-2222-3333-4444-555555555555"]
    );
}

#[test]
fn allowed_origins_are_exact_origins_normalized_as_browsers_send_them() {
    let settings = settings(&[
        ("AUTH_SOURCES", Some("appservice,jwt")),
        (
            "AUTH_ALLOWED_ORIGINS",
            Some("https://App.Example.com, http://localhost:4280,https://a.example:443"),
        ),
    ])
    .expect("valid");
    assert_eq!(
        settings.auth.allowed_origins,
        vec![
            "https://app.example.com",
            "http://localhost:4280",
            "https://a.example"
        ]
    );
    for bad in [
        "*",
        "null",
        "app.example.com",
        "https://app.example.com/",
        "https://app.example.com/path",
        "https://*.example.com",
        "ftp://app.example.com",
        "https://user@app.example.com",
        "https://app.example.com?x=1",
        "http://app.example.com",
    ] {
        let error = settings_error(&[
            ("AUTH_SOURCES", Some("appservice")),
            ("AUTH_ALLOWED_ORIGINS", Some(bad)),
        ]);
        assert_eq!(error.setting(), "AUTH_ALLOWED_ORIGINS", "{bad}");
        assert!(
            error.to_string().contains("https://app.example.com"),
            "{error}"
        );
    }
    assert_eq!(
        error_setting(&[("AUTH_ALLOWED_ORIGINS", Some("https://app.example.com"))]),
        "AUTH_ALLOWED_ORIGINS",
        "jwt only: nothing would read the list"
    );
}

fn settings_error(overrides: &[(&str, Option<&str>)]) -> ConfigError {
    settings(overrides).expect_err("should be refused")
}

#[test]
fn the_repository_app_is_valid_with_defaults() {
    let settings = settings(&[]).expect("valid");
    assert_eq!(
        settings.auth.jwt.as_ref().expect("jwt").algorithms,
        vec![Algorithm::HS256]
    );
    assert_eq!(
        settings.auth.jwt.as_ref().expect("jwt").user_id_claim,
        "sub"
    );
    assert!(settings.function(Function::Negotiate).is_some());
}

#[test]
fn each_missing_or_bad_setting_is_named() {
    type Overrides<'a> = &'a [(&'a str, Option<&'a str>)];
    let cases: &[(Overrides, &str)] = &[
        (
            &[("FUNCTIONS_CUSTOMHANDLER_PORT", None)],
            "FUNCTIONS_CUSTOMHANDLER_PORT",
        ),
        (
            &[("FUNCTIONS_CUSTOMHANDLER_PORT", Some("http"))],
            "FUNCTIONS_CUSTOMHANDLER_PORT",
        ),
        (
            &[("AzureSignalRConnectionString", None)],
            "AzureSignalRConnectionString",
        ),
        (
            &[("AzureSignalRConnectionString", Some("Endpoint=x"))],
            "AzureSignalRConnectionString",
        ),
        (&[("AUTH_ISSUER", None)], "AUTH_ISSUER"),
        (&[("AUTH_AUDIENCE", None)], "AUTH_AUDIENCE"),
        (
            &[("AUTH_AUDIENCE", Some("http://localhost/client/?hub=chat"))],
            "AUTH_AUDIENCE",
        ),
        (
            &[(
                "AUTH_AUDIENCE",
                Some("api://chat, http://localhost/client/?hub=chat"),
            )],
            "AUTH_AUDIENCE",
        ),
        (&[("AUTH_AUDIENCE", Some(" , "))], "AUTH_AUDIENCE"),
        (
            &[
                ("AUTH_HS256_SECRET", None),
                (
                    "AUTH_ISSUER",
                    Some("https://sts.windows.net/t/,https://login.microsoftonline.com/t/v2.0"),
                ),
            ],
            "AUTH_ISSUER",
        ),
        (&[("AUTH_HS256_SECRET", Some("short"))], "AUTH_HS256_SECRET"),
        (
            &[(
                "AUTH_HS256_SECRET",
                Some("INSECURE-TEST-ACCESS-KEY-0123456789ABCDEFGH"),
            )],
            "AUTH_HS256_SECRET",
        ),
        (
            &[("AUTH_JWKS_URL", Some("https://idp.example.com/keys"))],
            "AUTH_HS256_SECRET",
        ),
        (
            &[
                ("AUTH_HS256_SECRET", None),
                ("AUTH_JWKS_URL", Some("http://idp.example.com/keys")),
            ],
            "AUTH_JWKS_URL",
        ),
        (
            &[
                ("AUTH_HS256_SECRET", None),
                ("AUTH_ISSUER", Some("not a url")),
            ],
            "AUTH_ISSUER",
        ),
        (&[("AUTH_ALGORITHMS", Some("RS256"))], "AUTH_ALGORITHMS"),
        (&[("AUTH_ALGORITHMS", Some("none"))], "AUTH_ALGORITHMS"),
        (
            &[
                ("AUTH_HS256_SECRET", None),
                ("AUTH_JWKS_URL", Some("https://idp.example.com/k")),
                ("AUTH_ALGORITHMS", Some("RS256,HS256")),
            ],
            "AUTH_ALGORITHMS",
        ),
        (
            &[("AUTH_FORWARD_CLAIMS", Some("name,asrs.s.uid"))],
            "AUTH_FORWARD_CLAIMS",
        ),
        (
            &[("AUTH_FORWARD_CLAIMS", Some("name,ASRS.S.UID"))],
            "AUTH_FORWARD_CLAIMS",
        ),
        (
            &[("AUTH_FORWARD_CLAIMS", Some("Asrs.s.authn"))],
            "AUTH_FORWARD_CLAIMS",
        ),
        (
            &[("AUTH_FORWARD_CLAIMS", Some("team,a:b"))],
            "AUTH_FORWARD_CLAIMS",
        ),
        (
            &[("AUTH_FORWARD_CLAIMS", Some("team lead"))],
            "AUTH_FORWARD_CLAIMS",
        ),
        (
            &[("AUTH_FORWARD_CLAIMS", Some("team\u{7}"))],
            "AUTH_FORWARD_CLAIMS",
        ),
        (
            &[(
                "AUTH_HS256_SECRET",
                Some("INSECURE-TEST-WPS-KEY-0123456789ABCDEFGH"),
            )],
            "AUTH_HS256_SECRET",
        ),
        (
            &[
                ("AUTH_HS256_SECRET", Some(VISITOR_SECRET)),
                ("WEBPUBSUB_SECONDARY_ACCESS_KEY", Some(VISITOR_SECRET)),
            ],
            "AUTH_HS256_SECRET",
        ),
        (
            &[("MESSAGE_SENDER_STAMP", Some("off"))],
            "MESSAGE_SENDER_STAMP",
        ),
        (&[("DEMO_PAGE_ENABLED", Some("yes"))], "DEMO_PAGE_ENABLED"),
        (
            &[("SIGNALR_CLOSE_ON_AUTH_EXPIRY", Some("maybe"))],
            "SIGNALR_CLOSE_ON_AUTH_EXPIRY",
        ),
        (
            &[("SIGNALR_SESSION_LIFETIME_SECONDS", Some("0"))],
            "SIGNALR_SESSION_LIFETIME_SECONDS",
        ),
        (
            &[
                ("SIGNALR_CLOSE_ON_AUTH_EXPIRY", Some("false")),
                ("SIGNALR_SESSION_LIFETIME_SECONDS", Some("600")),
            ],
            "SIGNALR_SESSION_LIFETIME_SECONDS",
        ),
        (
            &[("AUTH_CLOCK_SKEW_SECONDS", Some("-1"))],
            "AUTH_CLOCK_SKEW_SECONDS",
        ),
        (
            &[("AUTH_CLOCK_SKEW_SECONDS", Some("3600"))],
            "AUTH_CLOCK_SKEW_SECONDS",
        ),
        (
            &[("POLICY_FILE", Some("no-such-policy.json"))],
            "POLICY_FILE",
        ),
        (&[("POLICY_FILE", Some("host.json"))], "POLICY_FILE"),
        (
            &[
                ("AUTH_HS256_SECRET", None),
                ("AUTH_JWKS_URL", Some("https://idp.example.com/k")),
                ("AUTH_JWKS_REFRESH_SECONDS", Some("0")),
            ],
            "AUTH_JWKS_REFRESH_SECONDS",
        ),
    ];
    for (overrides, expected) in cases {
        assert_eq!(&error_setting(overrides), expected, "{overrides:?}");
    }
}

#[test]
fn identity_sources_are_ordered_and_each_needs_its_settings() {
    let all = settings(&[
        ("AUTH_SOURCES", Some("clientcert, appservice,anonymous,jwt")),
        (
            "CLIENT_CERT_THUMBPRINTS",
            Some(&format!("{THUMBPRINT}=device-1")),
        ),
        ("AUTH_ANONYMOUS_SECRET", Some(VISITOR_SECRET)),
        ("AUTH_ANONYMOUS_ISSUER", Some("cdp.test")),
        ("WEBSITE_AUTH_ENABLED", Some("True")),
    ])
    .expect("valid");
    assert_eq!(
        all.auth.sources,
        vec![
            SourceKind::ClientCert,
            SourceKind::AppService,
            SourceKind::Anonymous,
            SourceKind::Jwt
        ]
    );
    let certs = all.auth.client_cert.expect("certs");
    assert_eq!(certs.allowed[0].0, THUMBPRINT.replace(':', ""));
    assert!(all.auth.app_service.expect("app service").platform_enabled);

    // Without the platform variable the source is configured but not trusted.
    let off = settings(&[("AUTH_SOURCES", Some("appservice,jwt"))]).expect("valid");
    assert!(!off.auth.app_service.expect("app service").platform_enabled);

    // Without `jwt` among the sources nor at connect, the JWT settings are not needed.
    let no_jwt = settings(&[
        ("AUTH_SOURCES", Some("anonymous")),
        ("AUTH_ANONYMOUS_SECRET", Some(VISITOR_SECRET)),
        ("AUTH_ANONYMOUS_ISSUER", Some("cdp.test")),
        ("AUTH_ISSUER", None),
        ("AUTH_AUDIENCE", None),
        ("AUTH_HS256_SECRET", None),
        ("WEBPUBSUB_CONNECT_JWT", Some("off")),
        ("WEBPUBSUB_REQUIRE_CLIENT_CERT", Some("true")),
        (
            "CLIENT_CERT_THUMBPRINTS",
            Some(&format!("{THUMBPRINT}=device-1")),
        ),
    ])
    .expect("valid");
    assert!(no_jwt.auth.jwt.is_none());
    let web_pubsub = no_jwt.web_pubsub.expect("connect is configured");
    assert_eq!(web_pubsub.jwt, ConnectJwt::Off);
    assert!(web_pubsub.require_client_cert);
}

#[test]
fn each_bad_identity_source_setting_is_named() {
    let thumbprint_with_user = format!("{THUMBPRINT}=device-1");
    type Overrides<'a> = &'a [(&'a str, Option<&'a str>)];
    let cases: &[(Overrides, &str)] = &[
        (&[("AUTH_SOURCES", Some("jwt,ldap"))], "AUTH_SOURCES"),
        (&[("AUTH_SOURCES", Some("jwt,jwt"))], "AUTH_SOURCES"),
        (&[("AUTH_SOURCES", Some(" , "))], "AUTH_SOURCES"),
        (
            &[("AUTH_SOURCES", Some("clientcert"))],
            "CLIENT_CERT_THUMBPRINTS",
        ),
        (
            &[
                ("AUTH_SOURCES", Some("clientcert")),
                ("CLIENT_CERT_THUMBPRINTS", Some(THUMBPRINT)),
            ],
            "CLIENT_CERT_THUMBPRINTS",
        ),
        (
            &[
                ("AUTH_SOURCES", Some("clientcert")),
                ("CLIENT_CERT_THUMBPRINTS", Some("ABC=device")),
            ],
            "CLIENT_CERT_THUMBPRINTS",
        ),
        (
            &[
                ("AUTH_SOURCES", Some("clientcert")),
                (
                    "CLIENT_CERT_THUMBPRINTS",
                    Some(&format!("{THUMBPRINT}=anon:device")),
                ),
            ],
            "CLIENT_CERT_THUMBPRINTS",
        ),
        (
            &[
                ("AUTH_SOURCES", Some("clientcert")),
                ("CLIENT_CERT_THUMBPRINTS", Some(&format!("{THUMBPRINT}=.."))),
            ],
            "CLIENT_CERT_THUMBPRINTS",
        ),
        (
            &[
                ("AUTH_SOURCES", Some("clientcert")),
                ("CLIENT_CERT_THUMBPRINTS", Some(&thumbprint_with_user)),
                ("CLIENT_CERT_USER_ID_FROM", Some("subject-cn")),
            ],
            "CLIENT_CERT_THUMBPRINTS",
        ),
        (
            &[
                ("AUTH_SOURCES", Some("clientcert")),
                ("CLIENT_CERT_THUMBPRINTS", Some(&thumbprint_with_user)),
                ("CLIENT_CERT_USER_ID_FROM", Some("email")),
            ],
            "CLIENT_CERT_USER_ID_FROM",
        ),
        (
            &[("AUTH_SOURCES", Some("anonymous"))],
            "AUTH_ANONYMOUS_SECRET",
        ),
        (
            &[
                ("AUTH_SOURCES", Some("jwt,anonymous")),
                ("AUTH_ANONYMOUS_SECRET", Some(SECRET)),
                ("AUTH_ANONYMOUS_ISSUER", Some("cdp.test")),
            ],
            "AUTH_ANONYMOUS_SECRET",
        ),
        (
            &[
                ("AUTH_SOURCES", Some("anonymous")),
                ("AUTH_ANONYMOUS_SECRET", Some("short")),
            ],
            "AUTH_ANONYMOUS_SECRET",
        ),
        (
            &[
                ("AUTH_SOURCES", Some("anonymous")),
                ("AUTH_ANONYMOUS_SECRET", Some(VISITOR_SECRET)),
            ],
            "AUTH_ANONYMOUS_ISSUER",
        ),
        (
            &[
                ("AUTH_SOURCES", Some("appservice")),
                ("AUTH_APPSERVICE_FORMAT", Some("swa")),
            ],
            "AUTH_APPSERVICE_FORMAT",
        ),
        (
            // Without the connection string the handler is off, so its other settings are stray.
            &[("WEBPUBSUB_CONNECTION_STRING", None)],
            "WEBPUBSUB_REQUIRE_CLIENT_CERT",
        ),
        (
            &[("WEBPUBSUB_CONNECTION_STRING", Some(CONNECTION_STRING))],
            "WEBPUBSUB_CONNECTION_STRING",
        ),
        (
            &[("WEBPUBSUB_CONNECT_JWT", Some("optional"))],
            "WEBPUBSUB_REQUIRE_CLIENT_CERT",
        ),
        (
            &[("WEBPUBSUB_CONNECT_JWT", Some("sometimes"))],
            "WEBPUBSUB_CONNECT_JWT",
        ),
        (
            &[("WEBPUBSUB_REQUIRE_CLIENT_CERT", Some("yes"))],
            "WEBPUBSUB_REQUIRE_CLIENT_CERT",
        ),
        (
            &[("WEBPUBSUB_REQUIRE_CLIENT_CERT", Some("true"))],
            "CLIENT_CERT_THUMBPRINTS",
        ),
    ];
    for (overrides, expected) in cases {
        assert_eq!(&error_setting(overrides), expected, "{overrides:?}");
    }
}

#[test]
fn jwks_and_discovery_default_to_rs256() {
    let jwks = settings(&[
        ("AUTH_HS256_SECRET", None),
        ("AUTH_JWKS_URL", Some("http://127.0.0.1:9/keys")),
    ])
    .expect("valid");
    assert!(matches!(
        jwks.auth.jwt.as_ref().expect("jwt").key_source,
        KeySource::Jwks(_)
    ));
    assert_eq!(
        jwks.auth.jwt.as_ref().expect("jwt").algorithms,
        vec![Algorithm::RS256]
    );
    let discovery = settings(&[
        ("AUTH_HS256_SECRET", None),
        ("AUTH_ALGORITHMS", Some("ES256, EdDSA")),
    ])
    .expect("valid");
    assert!(matches!(
        discovery.auth.jwt.as_ref().expect("jwt").key_source,
        KeySource::OidcDiscovery(_)
    ));
    assert_eq!(
        discovery.auth.jwt.as_ref().expect("jwt").algorithms,
        vec![Algorithm::ES256, Algorithm::EdDSA]
    );
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let settings = settings(&[]).expect("valid");
    let debug = format!("{settings:?}");
    assert!(!debug.contains(SECRET));
    assert!(!debug.contains("INSECURE-TEST-ACCESS-KEY"));
}
