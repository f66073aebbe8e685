//! Measuring kit for `scripts/bench-negotiate` (BENCHMARKS.md, "Negotiate against the floor").
//!
//! - `floor`: an actix-web server with the handler's HTTP shape and no work: `POST /{function}` reads
//!   the body and answers a fixed ≈700-byte envelope. It prints `floor listening on http://127.0.0.1:PORT`.
//! - `bodies FIXTURE RSA_KEY SCENARIO COUNT`: host-shaped negotiate invocations, one compact JSON per
//!   line on stdout, each with its own app token valid for two hours (`hs256`, `rs256`, or `refused`:
//!   HS256 signed with the wrong secret).
//! - `jwks RSA_KEY`: the public JWKS for `rs256` bodies, on stdout.
//! - `rate URL BODIES RATE SECONDS`: an open-loop load generator at a fixed request rate (what wrk2 or
//!   `oha -q` do). Latency runs from each request's scheduled time, so a server that falls behind is
//!   charged for the queue it causes.
//!
//! Issuer, audience, HS256 secret and binding access key come from the same environment variables
//! the handler reads (`AUTH_ISSUER`, `AUTH_AUDIENCE`, `AUTH_HS256_SECRET`) plus `BENCH_ACCESS_KEY`.
//! All of them are the insecure test values of `tests/api/helpers`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::{Context, bail};
use futures_util::StreamExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// Size of the floor's answer, about what the handler's negotiate envelope weighs.
const ENVELOPE_BYTES: usize = 700;
/// The handler's body cap (`handler::startup::MAX_INVOCATION_BYTES`), so the floor reads the same way.
const MAX_INVOCATION_BYTES: usize = 4 * 1024 * 1024;
/// Requests in flight at most in `rate`: more are queued, and the queue counts in their latency.
const RATE_CONNECTIONS: usize = 64;
/// How long `rate` waits after its schedule ends for answers still owed.
const RATE_GRACE: Duration = Duration::from_secs(5);
const USAGE: &str = "usage: negotiate-bench floor | bodies FIXTURE RSA_KEY hs256|rs256|refused COUNT | jwks RSA_KEY | rate URL BODIES RATE SECONDS";

fn main() -> anyhow::Result<()> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
    match arguments.as_slice() {
        ["floor"] => actix_web::rt::System::new().block_on(floor()),
        ["bodies", fixture, key, scenario, count] => bodies(fixture, key, scenario, count.parse()?),
        ["jwks", key] => {
            let key = rsa_key(key)?;
            let mut jwk = serde_json::to_value(jsonwebtoken::jwk::Jwk::from_encoding_key(
                &key,
                Algorithm::RS256,
            )?)?;
            jwk["kid"] = json!("rsa-a");
            jwk["use"] = json!("sig");
            println!("{}", json!({ "keys": [jwk] }));
            Ok(())
        }
        ["rate", url, bodies, rate, seconds] => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(fixed_rate(
                url,
                bodies,
                rate.parse()?,
                Duration::from_secs_f64(seconds.parse()?),
            )),
        _ => bail!(USAGE),
    }
}

/// Serves like `handler::startup::Application`: same actix-web, default worker count, the same
/// routes and body reading, but the answer is a constant.
async fn floor() -> anyhow::Result<()> {
    let envelope = web::Data::new(fixed_envelope());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(envelope.clone())
            .route("/", web::get().to(health))
            .route("/{function}", web::post().to(invoke))
    })
    .bind(("127.0.0.1", 0))?
    .shutdown_timeout(10);
    let port = server.addrs()[0].port();
    println!("floor listening on http://127.0.0.1:{port}");
    server.run().await?;
    Ok(())
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

async fn invoke(
    envelope: web::Data<String>,
    _function: web::Path<String>,
    mut payload: web::Payload,
) -> HttpResponse {
    let mut body = Vec::new();
    while let Some(Ok(chunk)) = payload.next().await {
        if body.len() + chunk.len() <= MAX_INVOCATION_BYTES {
            body.extend_from_slice(&chunk);
        }
    }
    HttpResponse::Ok()
        .content_type("application/json")
        .body(envelope.get_ref().clone())
}

/// A negotiate answer's shape, its access token padded so the whole is [`ENVELOPE_BYTES`].
fn fixed_envelope() -> String {
    let with_token = |token: &str| {
        json!({
            "Outputs": {"res": {
                "statusCode": 200,
                "headers": {"Content-Type": "application/json", "Cache-Control": "no-store"},
                "body": json!({"url": "http://localhost:8888/client/?hub=chat", "accessToken": token}).to_string(),
            }},
            "Logs": [],
            "ReturnValue": null,
        })
        .to_string()
    };
    let bare = with_token("").len();
    with_token(&"A".repeat(ENVELOPE_BYTES.saturating_sub(bare)))
}

fn bodies(fixture: &str, key: &str, scenario: &str, count: usize) -> anyhow::Result<()> {
    let issuer = env("AUTH_ISSUER")?;
    let audience = env("AUTH_AUDIENCE")?;
    let (header, key) = match scenario {
        "hs256" => (
            Header::new(Algorithm::HS256),
            EncodingKey::from_secret(env("AUTH_HS256_SECRET")?.as_bytes()),
        ),
        "rs256" => {
            let mut header = Header::new(Algorithm::RS256);
            header.kid = Some("rsa-a".into());
            (header, rsa_key(key)?)
        }
        "refused" => (
            Header::new(Algorithm::HS256),
            EncodingKey::from_secret(b"insecure-bench-not-the-configured-secret-0123456789"),
        ),
        _ => bail!(USAGE),
    };
    let template =
        std::fs::read_to_string(fixture).with_context(|| format!("reading {fixture}"))?;
    let now = unix_now();
    let binding = binding_token(now, &env("BENCH_ACCESS_KEY")?)?;
    let mut out = String::new();
    for index in 0..count {
        let user = format!("bench-user-{index}");
        let claims = json!({
            "iss": issuer, "aud": audience, "sub": user,
            "iat": now, "nbf": now - 5, "exp": now + 7200,
            "name": format!("User {user}"), "email": format!("{user}@contoso.example"),
        });
        let token = jsonwebtoken::encode(&header, &claims, &key)?;
        let text = template
            .replace("{{APP_TOKEN}}", &token)
            .replace("{{BINDING_TOKEN}}", &binding);
        let body: Value = serde_json::from_str(&text).context("the fixture is JSON")?;
        out.push_str(&body.to_string());
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}

/// The binding token the SignalR extension would put in `connectionInfo`, as `tests/api/helpers` mints it.
fn binding_token(now: u64, access_key: &str) -> anyhow::Result<String> {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("-1419827734".into());
    let claims = json!({
        "asrs.s.uid": "spoofed-by-binding-expression",
        "name": "unverified claim from idToken",
        "nbf": now, "exp": now + 7200, "iat": now,
        "aud": "http://localhost/client/?hub=chat",
    });
    Ok(jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(access_key.as_bytes()),
    )?)
}

async fn fixed_rate(url: &str, bodies: &str, rate: f64, window: Duration) -> anyhow::Result<()> {
    let bodies: Arc<Vec<String>> = Arc::new(
        std::fs::read_to_string(bodies)?
            .lines()
            .map(str::to_owned)
            .collect(),
    );
    if bodies.is_empty() || rate <= 0.0 {
        bail!(USAGE);
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(RATE_CONNECTIONS)
        .build()?;
    let slots = Arc::new(tokio::sync::Semaphore::new(RATE_CONNECTIONS));
    let total = (rate * window.as_secs_f64()) as usize;
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let deadline = start + window + RATE_GRACE;
    let mut requests = Vec::with_capacity(total);
    for index in 0..total {
        let scheduled = start + Duration::from_secs_f64(index as f64 / rate);
        tokio::time::sleep_until(scheduled).await;
        let (client, slots, bodies, url) = (
            client.clone(),
            slots.clone(),
            bodies.clone(),
            url.to_owned(),
        );
        requests.push(tokio::spawn(async move {
            let answered = tokio::time::timeout_at(deadline, async {
                // The semaphore is never closed, so acquiring only waits.
                let _slot = slots.acquire().await.ok()?;
                let response = client
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .body(bodies[index % bodies.len()].clone())
                    .send()
                    .await
                    .ok()?;
                let ok = response.status().is_success();
                response.bytes().await.ok()?;
                ok.then_some(())
            })
            .await;
            match answered {
                Ok(Some(())) => Outcome::Answered(scheduled.elapsed()),
                Ok(None) => Outcome::Failed,
                Err(_) => Outcome::Late,
            }
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let (mut failed, mut late) = (0usize, 0usize);
    for request in requests {
        match request.await? {
            Outcome::Answered(latency) => latencies.push(latency),
            Outcome::Failed => failed += 1,
            Outcome::Late => late += 1,
        }
    }
    latencies.sort();
    // Late requests sort above every answered one: they waited at least the whole grace period.
    let ranked = latencies.len() + late;
    let percentile = |p: f64| -> String {
        let rank = ((ranked as f64 - 1.0) * p).round() as usize;
        match latencies.get(rank) {
            Some(latency) => format!("{:.2}", latency.as_secs_f64() * 1e3),
            None => format!(">{}", RATE_GRACE.as_millis()),
        }
    };
    println!(
        "rate={rate:.0} sent={total} answered={} failed={failed} late={late} p50_ms={} p99_ms={}",
        latencies.len(),
        percentile(0.50),
        percentile(0.99),
    );
    Ok(())
}

enum Outcome {
    Answered(Duration),
    Failed,
    Late,
}

fn rsa_key(path: &str) -> anyhow::Result<EncodingKey> {
    let pem = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    Ok(EncodingKey::from_rsa_pem(&pem)?)
}

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set"))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or(0)
}
