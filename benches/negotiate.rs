//! Negotiate throughput and latency of the real `handler` binary over loopback.
//!
//! `cargo bench --bench negotiate` (or `scripts/bench-handler`). Spawns the handler exactly as the
//! integration tests do, then keeps `CONCURRENCY` host-shaped negotiate invocations in flight for
//! `REQUESTS` requests per scenario: HS256 (shared secret) and RS256 (keys from a local JWKS
//! server). Each request carries a fresh app token, so verification is never cached. Prints
//! requests/s and latency percentiles; asserts nothing about time.

#[path = "../tests/api/helpers/mod.rs"]
#[expect(dead_code, reason = "the bench uses part of the shared test harness")]
mod helpers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use helpers::*;
use jsonwebtoken::Algorithm;
use serde_json::json;

const REQUESTS: usize = 20_000;
const CONCURRENCY: usize = 32;

#[tokio::main]
async fn main() {
    let requests = std::env::var("BENCH_REQUESTS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(REQUESTS);

    let app = spawn_app(AppConfig::hs256()).await;
    let tokens: Vec<String> = (0..requests)
        .map(|i| hs256_token(&claims(&format!("user-{i}"))))
        .collect();
    run("HS256 app token", &app, tokens).await;
    drop(app);

    let idp = IdentityProvider::start(
        json!({"keys": [TestKeys::jwk(&TestKeys::rsa_a(), Algorithm::RS256, "rsa-a")]}),
    )
    .await;
    let app = spawn_app(AppConfig::jwks(&idp.jwks_url(), "RS256")).await;
    let key = TestKeys::rsa_a();
    let tokens: Vec<String> = (0..requests)
        .map(|i| {
            sign(
                header_with_kid(Algorithm::RS256, "rsa-a"),
                &claims(&format!("user-{i}")),
                &key,
            )
        })
        .collect();
    run("RS256 app token (JWKS)", &app, tokens).await;
}

async fn run(name: &str, app: &TestApp, tokens: Vec<String>) {
    let binding = binding_token(now(), now() + 3600);
    let bodies: Vec<Vec<u8>> = tokens
        .iter()
        .map(|token| {
            serde_json::to_vec(&payload(
                "negotiate-binding.json",
                &[("APP_TOKEN", token), ("BINDING_TOKEN", &binding)],
            ))
            .expect("json")
        })
        .collect();
    // Warm up connections and the JWKS cache.
    for body in bodies.iter().take(CONCURRENCY) {
        assert_eq!(app.post_raw("negotiate", body.clone()).await.status(), 200);
    }
    let queue = Arc::new(std::sync::Mutex::new(bodies));
    let url = app.url("/negotiate");
    let client = app.http.clone();
    let started = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let queue = queue.clone();
            let client = client.clone();
            let url = url.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let Some(body) = queue.lock().expect("lock").pop() else {
                        return latencies;
                    };
                    let sent = Instant::now();
                    let response = client
                        .post(&url)
                        .header("Content-Type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .expect("answer");
                    let envelope: serde_json::Value = response.json().await.expect("json");
                    assert_eq!(envelope["Outputs"]["res"]["statusCode"], 200, "{envelope}");
                    latencies.push(sent.elapsed());
                }
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.expect("worker"));
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let percentile = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize];
    println!(
        "{name}: {} negotiate invocations in {:.2} s = {:.0}/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({CONCURRENCY} in flight)",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(0.50).as_secs_f64() * 1e3,
        percentile(0.99).as_secs_f64() * 1e3,
        percentile(1.0).as_secs_f64() * 1e3,
    );
}
