//! Soak: the release `handler` under a sustained mixed load over loopback (RELIABILITY.md).
//!
//! `scripts/soak [--seconds N]` runs `cargo bench --bench soak`, whose `CARGO_BIN_EXE_handler` is
//! the release binary (the bench profile is the release profile). It first measures the peak
//! (closed loop, `PEAK_CONCURRENCY` in flight, `--peak-seconds`), then sends the same mix open
//! loop at `--load-percent` (default 80) of that peak for `--seconds` (default 60), sampling the
//! handler's RSS and open descriptors from `/proc` every second. It prints what it measured and
//! a pass/fail line per target; it asserts nothing about time.
//!
//! The mix: valid negotiates, refused tokens (expired, bad signature), group joins allowed and
//! denied by the policy, malformed envelopes, and oversized envelopes (over the 4 MiB cap). A
//! host-facing answer other than 200 (or no answer) is an error; refusals inside `Outputs.res`
//! are expected and are checked against the status each kind should get.

#[path = "../tests/api/helpers/mod.rs"]
#[expect(
    dead_code,
    unused_imports,
    reason = "the soak uses part of the shared test harness, not its stand-ins"
)]
mod helpers;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use helpers::*;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

/// In flight while the peak is measured.
const PEAK_CONCURRENCY: usize = 32;
/// Most requests in flight during the soak: a handler that falls behind shows up as a lower
/// achieved rate and higher latency, never as unbounded memory in this process.
const MAX_IN_FLIGHT: usize = 256;
/// Longest soak accepted, so a typo cannot start a run that never ends.
const MAX_SECONDS: u64 = 4 * 3600;
/// The first part of the soak, at its own rate, after which RSS is taken as the baseline: the
/// allocator's high-water mark depends on how many requests are in flight, which the closed-loop
/// peak does not reproduce.
fn warm_up(seconds: u64) -> Duration {
    Duration::from_secs((seconds / 4).clamp(1, 15))
}

/// Bodies prepared per kind; the load cycles through them.
const POOL: usize = 500;
/// The client gives up on one request after this; a give-up counts as a host-facing error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    ValidNegotiate,
    ExpiredToken,
    BadSignature,
    GroupAllowed,
    GroupDenied,
    Malformed,
    Oversized,
}

impl Kind {
    /// The mix, by weight out of 100: mostly legitimate traffic, a steady share of refusals.
    const MIX: [(Kind, u32); 7] = [
        (Kind::ValidNegotiate, 40),
        (Kind::ExpiredToken, 10),
        (Kind::BadSignature, 10),
        (Kind::GroupAllowed, 20),
        (Kind::GroupDenied, 12),
        (Kind::Malformed, 7),
        (Kind::Oversized, 1),
    ];

    /// The status the caller must get inside `Outputs.res`.
    fn expected_inner_status(self) -> u64 {
        match self {
            Kind::ValidNegotiate => 200,
            // The join is handed to the host as an output binding: accepted, not yet done.
            Kind::GroupAllowed => 202,
            Kind::ExpiredToken | Kind::BadSignature => 401,
            Kind::GroupDenied => 403,
            Kind::Malformed => 400,
            Kind::Oversized => 413,
        }
    }

    fn function(self) -> &'static str {
        match self {
            Kind::ValidNegotiate | Kind::ExpiredToken | Kind::BadSignature => "negotiate",
            Kind::GroupAllowed | Kind::GroupDenied | Kind::Malformed | Kind::Oversized => {
                "addToGroup"
            }
        }
    }

    /// Kind number `n` of the repeating mix.
    fn nth(n: u64) -> Kind {
        let mut slot = (n % 100) as u32;
        for (kind, weight) in Kind::MIX {
            if slot < weight {
                return kind;
            }
            slot -= weight;
        }
        Kind::ValidNegotiate
    }
}

struct Options {
    seconds: u64,
    peak_seconds: u64,
    load_percent: u64,
}

impl Options {
    /// `--seconds N`, `--peak-seconds N`, `--load-percent N`; anything else (cargo adds
    /// `--bench`) is ignored.
    fn from_args() -> Self {
        let args: Vec<String> = std::env::args().collect();
        let value = |name: &str, default: u64| {
            args.iter()
                .position(|arg| arg == name)
                .and_then(|at| args.get(at + 1))
                .and_then(|text| text.parse().ok())
                .unwrap_or(default)
        };
        Self {
            seconds: value("--seconds", 60).clamp(1, MAX_SECONDS),
            peak_seconds: value("--peak-seconds", 10).clamp(1, 300),
            load_percent: value("--load-percent", 80).clamp(1, 100),
        }
    }
}

/// What one request ended as.
struct Sample {
    kind: Kind,
    latency: Duration,
    host_error: Option<String>,
    inner_status: Option<u64>,
}

#[derive(Default)]
struct Tally {
    requests: u64,
    by_kind: BTreeMap<String, u64>,
    host_errors: BTreeMap<String, u64>,
    unexpected_inner: BTreeMap<String, u64>,
    latencies: Vec<Duration>,
}

impl Tally {
    fn add(&mut self, sample: Sample) {
        self.requests += 1;
        *self
            .by_kind
            .entry(format!("{:?}", sample.kind))
            .or_default() += 1;
        self.latencies.push(sample.latency);
        if let Some(error) = sample.host_error {
            *self.host_errors.entry(error).or_default() += 1;
            return;
        }
        let expected = sample.kind.expected_inner_status();
        if sample.inner_status != Some(expected) {
            let key = format!(
                "{:?}: got {:?}, expected {expected}",
                sample.kind, sample.inner_status
            );
            *self.unexpected_inner.entry(key).or_default() += 1;
        }
    }

    fn percentile(&mut self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        self.latencies.sort_unstable();
        self.latencies[((self.latencies.len() as f64 - 1.0) * p) as usize]
    }
}

/// One `/proc` sample of the handler.
#[derive(Clone, Copy)]
struct Resources {
    rss_kib: u64,
    open_fds: u64,
}

/// Resources once the handler has closed the connections of a dropped client: polled until the
/// descriptor count holds still (bounded), so keep-alive sockets are not counted as growth.
async fn settled_resources(pid: u32) -> Option<Resources> {
    let mut last = resources(pid)?;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = resources(pid)?;
        if now.open_fds == last.open_fds {
            return Some(now);
        }
        last = now;
    }
    Some(last)
}

fn resources(pid: u32) -> Option<Resources> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let open_fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(Resources { rss_kib, open_fds })
}

/// Prepared request bodies, `POOL` per kind.
struct Bodies(BTreeMap<Kind, Vec<Arc<Vec<u8>>>>);

impl Bodies {
    fn prepare(valid_for: u64) -> Self {
        let now = now();
        let binding = binding_token(now, now + valid_for);
        let valid = |user: &str| {
            let mut claims = claims(user);
            claims.insert("exp".into(), json!(now + valid_for));
            hs256_token(&claims)
        };
        let mut bodies = BTreeMap::new();
        for (kind, _) in Kind::MIX {
            let pool: Vec<Arc<Vec<u8>>> = (0..POOL)
                .map(|i| {
                    let user = format!("soak-user-{i}");
                    let negotiate = |token: &str| {
                        payload(
                            "negotiate-binding.json",
                            &[("APP_TOKEN", token), ("BINDING_TOKEN", &binding)],
                        )
                    };
                    let body: Vec<u8> = match kind {
                        Kind::ValidNegotiate => to_vec(&negotiate(&valid(&user))),
                        Kind::ExpiredToken => {
                            let mut claims = claims(&user);
                            claims.insert("exp".into(), json!(now - 3600));
                            claims.insert("nbf".into(), json!(now - 7200));
                            to_vec(&negotiate(&hs256_token(&claims)))
                        }
                        Kind::BadSignature => {
                            let token = valid(&user);
                            let (signed, _) = token.rsplit_once('.').expect("three segments");
                            to_vec(&negotiate(&format!("{signed}.AAAA")))
                        }
                        Kind::GroupAllowed => to_vec(&function_payload(
                            "addToGroup",
                            Some(&valid(&user)),
                            &json!({"group": format!("room-{i}")}),
                        )),
                        Kind::GroupDenied => to_vec(&function_payload(
                            "addToGroup",
                            Some(&valid(&user)),
                            &json!({"group": format!("secret-{i}")}),
                        )),
                        Kind::Malformed => {
                            if i % 2 == 0 {
                                format!("{{\"Data\": {{\"req\": {i}").into_bytes()
                            } else {
                                br#"{"Data": {"req": {"Method": "POST", "Headers": "not json"}}}"#
                                    .to_vec()
                            }
                        }
                        // Only a few distinct ones: each is 4 MiB.
                        Kind::Oversized => vec![b' '; 4 * 1024 * 1024 + 1 + (i % 4)],
                    };
                    Arc::new(body)
                })
                .take(if kind == Kind::Oversized { 4 } else { POOL })
                .collect();
            bodies.insert(kind, pool);
        }
        Self(bodies)
    }

    fn get(&self, kind: Kind, n: u64) -> Arc<Vec<u8>> {
        let pool = &self.0[&kind];
        pool[(n as usize / 100) % pool.len()].clone()
    }
}

fn to_vec(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("a payload serializes")
}

async fn send(client: &reqwest::Client, base: &str, kind: Kind, body: Arc<Vec<u8>>) -> Sample {
    let started = Instant::now();
    let outcome = client
        .post(format!("{base}/{}", kind.function()))
        .header("Content-Type", "application/json; charset=utf-8")
        .body(body.as_ref().clone())
        .send()
        .await;
    let (host_error, inner_status) = match outcome {
        Err(error) if error.is_timeout() => (Some("timeout".to_owned()), None),
        Err(_) => (Some("no answer (connection error)".to_owned()), None),
        Ok(response) if response.status() != 200 => (
            Some(format!("host status {}", response.status().as_u16())),
            None,
        ),
        Ok(response) => match response.json::<Value>().await {
            Ok(envelope) => (None, envelope["Outputs"]["res"]["statusCode"].as_u64()),
            Err(_) => (Some("200 without a JSON envelope".to_owned()), None),
        },
    };
    Sample {
        kind,
        latency: started.elapsed(),
        host_error,
        inner_status,
    }
}

#[tokio::main]
async fn main() {
    let options = Options::from_args();
    let mut config = AppConfig::hs256();
    // Refusals log at warn and every invocation at info; warn keeps this process's capture of
    // the handler's stdout from growing for hours, and is a production-like level.
    config.set("RUST_LOG", "warn");
    let app = spawn_app(config).await;
    let pid = app.pid();
    let base = app.url("");
    let new_client = || {
        reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(MAX_IN_FLIGHT)
            .build()
            .expect("a reqwest client")
    };
    let client = new_client();
    let bodies = Arc::new(Bodies::prepare(
        options.peak_seconds + options.seconds + 3600,
    ));
    let before = resources(pid).expect("the handler's /proc entry");

    // Peak: closed loop, also the warm-up.
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let peak_tally = Arc::new(Mutex::new(Tally::default()));
    let peak_end = Instant::now() + Duration::from_secs(options.peak_seconds);
    let peak_started = Instant::now();
    let workers: Vec<_> = (0..PEAK_CONCURRENCY)
        .map(|_| {
            let (client, base, bodies) = (client.clone(), base.clone(), bodies.clone());
            let (counter, tally) = (counter.clone(), peak_tally.clone());
            tokio::spawn(async move {
                while Instant::now() < peak_end {
                    let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let kind = Kind::nth(n);
                    let sample = send(&client, &base, kind, bodies.get(kind, n)).await;
                    tally.lock().expect("tally lock").add(sample);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("a peak worker");
    }
    let peak_elapsed = peak_started.elapsed().as_secs_f64();
    let mut peak = std::mem::take(&mut *peak_tally.lock().expect("tally lock"));
    let peak_rate = peak.requests as f64 / peak_elapsed;
    let (peak_p50, peak_p99) = (peak.percentile(0.5), peak.percentile(0.99));
    println!(
        "peak: {} requests in {peak_elapsed:.1} s = {peak_rate:.0}/s ({PEAK_CONCURRENCY} in flight), p50 {:.2} ms, p99 {:.2} ms, host-facing errors {:?}",
        peak.requests,
        peak_p50.as_secs_f64() * 1e3,
        peak_p99.as_secs_f64() * 1e3,
        peak.host_errors,
    );

    // Soak: open loop at the target rate, dispatched in 10 ms slices, on a fresh client whose
    // connections are closed before the last sample, as the peak client's are before the first.
    drop(client);
    let start = settled_resources(pid)
        .await
        .expect("the handler's /proc entry");
    let client = new_client();
    let target_rate = peak_rate * options.load_percent as f64 / 100.0;
    let soak_clock = Instant::now();
    let samples = Arc::new(Mutex::new(vec![(Duration::ZERO, start)]));
    let sampler = {
        let samples = samples.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                match resources(pid) {
                    Some(sample) => samples
                        .lock()
                        .expect("samples lock")
                        .push((soak_clock.elapsed(), sample)),
                    None => return,
                }
            }
        })
    };
    let tally = Arc::new(Mutex::new(Tally::default()));
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let soak_started = Instant::now();
    let soak_end = soak_started + Duration::from_secs(options.seconds);
    let mut slice = tokio::time::interval(Duration::from_millis(10));
    let mut due = 0.0_f64;
    let mut dispatched = 0_u64;
    let mut tasks = tokio::task::JoinSet::new();
    while Instant::now() < soak_end {
        slice.tick().await;
        due += target_rate / 100.0;
        while due >= 1.0 {
            due -= 1.0;
            let permit = in_flight
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let kind = Kind::nth(n);
            let (client, base, body) = (client.clone(), base.clone(), bodies.get(kind, n));
            let tally = tally.clone();
            tasks.spawn(async move {
                let sample = send(&client, &base, kind, body).await;
                tally.lock().expect("tally lock").add(sample);
                drop(permit);
            });
            dispatched += 1;
        }
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let soak_elapsed = soak_started.elapsed().as_secs_f64();
    sampler.abort();
    drop(client);
    let end = settled_resources(pid)
        .await
        .expect("the handler's /proc entry");
    let samples = samples.lock().expect("samples lock").clone();
    let warm_up = warm_up(options.seconds);
    let warm = samples
        .iter()
        .filter(|(at, _)| *at <= warm_up)
        .map(|(_, sample)| *sample)
        .next_back()
        .unwrap_or(start);
    // The last sample under load: `end` is taken after the client closed its connections.
    let last_loaded = samples.last().map_or(end, |(_, sample)| *sample);
    let max_rss = samples
        .iter()
        .map(|(_, sample)| sample.rss_kib)
        .max()
        .unwrap_or(end.rss_kib);
    let max_fds = samples
        .iter()
        .map(|(_, sample)| sample.open_fds)
        .max()
        .unwrap_or(end.open_fds);
    let mut tally = std::mem::take(&mut *tally.lock().expect("tally lock"));

    let host_errors: u64 = tally.host_errors.values().sum();
    let rss_growth = (last_loaded.rss_kib.max(end.rss_kib) as f64 - warm.rss_kib as f64)
        / warm.rss_kib as f64
        * 100.0;
    println!();
    println!(
        "soak: {} s at {}% of peak = target {target_rate:.0}/s, achieved {:.0}/s ({dispatched} dispatched, at most {MAX_IN_FLIGHT} in flight)",
        options.seconds,
        options.load_percent,
        tally.requests as f64 / soak_elapsed
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!("| requests | {} |", tally.requests);
    for (kind, count) in &tally.by_kind {
        println!("| requests: {kind} | {count} |");
    }
    println!("| host-facing errors | {host_errors} |");
    for (kind, count) in &tally.host_errors {
        println!("| host-facing error: {kind} | {count} |");
    }
    for (kind, count) in &tally.unexpected_inner {
        println!("| unexpected caller status: {kind} | {count} |");
    }
    println!(
        "| latency p50 / p99 / max | {:.2} / {:.2} / {:.2} ms |",
        tally.percentile(0.5).as_secs_f64() * 1e3,
        tally.percentile(0.99).as_secs_f64() * 1e3,
        tally.percentile(1.0).as_secs_f64() * 1e3,
    );
    println!(
        "| RSS before peak / soak start / after {} s warm-up / end / max | {} / {} / {} / {} / {} KiB |",
        warm_up.as_secs(),
        before.rss_kib,
        start.rss_kib,
        warm.rss_kib,
        last_loaded.rss_kib.max(end.rss_kib),
        max_rss
    );
    println!("| RSS growth after warm-up | {rss_growth:+.1} % |");
    println!(
        "| open fds soak start / end (idle) / max (under load) | {} / {} / {} |",
        start.open_fds, end.open_fds, max_fds
    );
    println!("| /proc samples | {} |", samples.len());
    println!();
    let verdict = |pass: bool| if pass { "PASS" } else { "FAIL" };
    println!(
        "{} soak: 0 host-facing errors (got {host_errors})",
        verdict(host_errors == 0)
    );
    println!(
        "{} soak: every caller status as expected (unexpected: {})",
        verdict(tally.unexpected_inner.is_empty()),
        tally.unexpected_inner.values().sum::<u64>()
    );
    println!(
        "{} soak: RSS growth after warm-up under 10 % (got {rss_growth:+.1} %)",
        verdict(rss_growth < 10.0)
    );
    println!(
        "{} soak: no descriptor growth (start {}, end {})",
        verdict(end.open_fds <= start.open_fds),
        start.open_fds,
        end.open_fds
    );
    let passed = host_errors == 0
        && tally.unexpected_inner.is_empty()
        && rss_growth < 10.0
        && end.open_fds <= start.open_fds;
    drop(app);
    std::process::exit(if passed { 0 } else { 1 });
}
