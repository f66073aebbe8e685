//! Fan-out benchmark: 1,000 WebSocket clients on loopback, deliveries per second for REST broadcast and
//! REST send-to-group, set beside Azure SignalR Unit 1 (1,000 connections, 2,000 outbound messages/s).
//!
//! Run with `scripts/bench-emulator` (release build). It runs the emulator in-process on 127.0.0.1:0,
//! connects Rust clients (tokio-tungstenite, so the clients are not the bottleneck), and stops by itself:
//! each phase sends a fixed number of messages and waits at most `PHASE_LIMIT` for them to arrive.
//!
//! Flags: `--payload-bytes N` (default 128), `--broadcasts N` (default 1000), `--group-sends N`
//! (default 10000), `--clients N` (default 1000), `--senders N` concurrent REST callers (default 64).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use signalr_emulator::{AccessKey, Config, Emulator, INSECURE_DEV_ACCESS_KEY};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const HUB: &str = "bench";
const GROUPS: usize = 10;
const CONNECT_CONCURRENCY: usize = 50;
const CLIENT_PING_INTERVAL: Duration = Duration::from_secs(15);
const PHASE_LIMIT: Duration = Duration::from_secs(120);
const UNIT1_OUTBOUND_PER_SECOND: f64 = 2_000.0;

struct Settings {
    clients: usize,
    payload_bytes: usize,
    broadcasts: usize,
    group_sends: usize,
    senders: usize,
}

fn parse_settings() -> anyhow::Result<Settings> {
    let mut settings = Settings {
        clients: 1000,
        payload_bytes: 128,
        broadcasts: 1000,
        group_sends: 10_000,
        senders: 64,
    };
    let mut arguments = std::env::args().skip(1);
    while let Some(flag) = arguments.next() {
        // cargo bench passes --bench to every bench binary.
        if flag == "--bench" {
            continue;
        }
        let value: usize = arguments
            .next()
            .with_context(|| format!("{flag} needs a value"))?
            .parse()
            .with_context(|| format!("{flag} needs a number"))?;
        match flag.as_str() {
            "--clients" => settings.clients = value,
            "--payload-bytes" => settings.payload_bytes = value,
            "--broadcasts" => settings.broadcasts = value,
            "--group-sends" => settings.group_sends = value,
            "--senders" => settings.senders = value.max(1),
            other => bail!("unknown flag {other}"),
        }
    }
    if settings.clients < GROUPS {
        bail!("--clients must be at least {GROUPS}");
    }
    Ok(settings)
}

fn mint(claims: &Value) -> anyhow::Result<String> {
    Ok(jsonwebtoken::encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(INSECURE_DEV_ACCESS_KEY.as_bytes()),
    )?)
}

fn expiry() -> anyhow::Result<u64> {
    Ok(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 3600)
}

fn rest_token(path: &str) -> anyhow::Result<String> {
    mint(&json!({"aud": format!("http://localhost{path}"), "exp": expiry()?}))
}

/// Negotiates, connects, handshakes, then counts invocations until the socket closes.
async fn connect_client(
    port: u16,
    http: reqwest::Client,
    received: Arc<AtomicU64>,
) -> anyhow::Result<String> {
    let token =
        mint(&json!({"aud": format!("http://localhost/client/?hub={HUB}"), "exp": expiry()?}))?;
    let negotiated: Value = http
        .post(format!(
            "http://127.0.0.1:{port}/client/negotiate?hub={HUB}&negotiateVersion=1"
        ))
        .bearer_auth(&token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = negotiated["connectionToken"]
        .as_str()
        .context("no connectionToken")?;
    let connection_id = negotiated["connectionId"]
        .as_str()
        .context("no connectionId")?
        .to_owned();
    let mut request =
        format!("ws://127.0.0.1:{port}/client/?hub={HUB}&id={id}").into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    // tungstenite zero-fills its whole read buffer on every read; 128 KiB (the default) per small message
    // would make the clients, not the emulator, the bottleneck.
    let config = WebSocketConfig::default().read_buffer_size(16 * 1024);
    let (socket, _) =
        tokio_tungstenite::connect_async_with_config(request, Some(config), true).await?;
    let (mut sink, mut stream) = socket.split();
    sink.send(Message::text("{\"protocol\":\"json\",\"version\":1}\u{1e}"))
        .await?;
    match stream.next().await {
        Some(Ok(Message::Text(text))) if text.as_str() == "{}\u{1e}" => {}
        other => bail!("unexpected handshake reply {other:?}"),
    }
    // Pings every 15 s, as real clients do, or the emulator would close the connection after 30 s.
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(CLIENT_PING_INTERVAL);
        loop {
            interval.tick().await;
            if sink
                .send(Message::text("{\"type\":6}\u{1e}"))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            if let Message::Text(text) = message {
                let invocations = text
                    .as_str()
                    .split('\u{1e}')
                    .filter(|record| record.starts_with("{\"type\":1,"))
                    .count();
                received.fetch_add(invocations as u64, Ordering::Relaxed);
            }
        }
    });
    Ok(connection_id)
}

/// Sends `count` messages from `senders` concurrent REST callers; the i-th send goes to
/// `paths[i % paths.len()]`.
/// Returns the elapsed time until `expected` deliveries were counted by the clients.
#[expect(
    clippy::too_many_arguments,
    reason = "a benchmark phase is one call with its whole setup"
)]
async fn run_phase(
    port: u16,
    http: &reqwest::Client,
    received: &AtomicU64,
    count: usize,
    senders: usize,
    expected: u64,
    body: &Value,
    paths: &[(String, String)],
) -> anyhow::Result<Duration> {
    received.store(0, Ordering::Relaxed);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for sender in 0..senders {
        let http = http.clone();
        let body = body.clone();
        let paths = paths.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut index = sender;
            while index < count {
                let (path, token) = &paths[index % paths.len()];
                let status = http
                    .post(format!("http://127.0.0.1:{port}{path}"))
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await?
                    .status();
                if status != reqwest::StatusCode::ACCEPTED {
                    bail!("REST send answered {status}");
                }
                index += senders;
            }
            Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    while received.load(Ordering::Relaxed) < expected {
        if start.elapsed() > PHASE_LIMIT {
            bail!(
                "only {} of {expected} deliveries arrived within {PHASE_LIMIT:?}",
                received.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(start.elapsed())
}

fn report(name: &str, messages: usize, deliveries: u64, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    let per_second = deliveries as f64 / seconds;
    println!(
        "{name:<14} {messages:>7} REST sends {deliveries:>9} deliveries in {seconds:>6.2} s: \
         {per_second:>10.0} deliveries/s ({:>5.0}x Unit 1), {:>7.0} REST sends/s",
        per_second / UNIT1_OUTBOUND_PER_SECOND,
        messages as f64 / seconds,
    );
}

fn main() -> anyhow::Result<()> {
    let settings = parse_settings()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench(settings))
}

async fn bench(settings: Settings) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let mut config = Config::new(AccessKey::insecure_dev());
    config.max_connections = settings.clients + 10;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let emulator = Emulator::start(listener, config, async {
        let _ = stopped.await;
    })?;
    let port = emulator.port();
    let http = reqwest::Client::new();
    let received = Arc::new(AtomicU64::new(0));

    let connect_start = Instant::now();
    let connection_ids: Vec<String> = futures_util::stream::iter(0..settings.clients)
        .map(|_| connect_client(port, http.clone(), Arc::clone(&received)))
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    println!(
        "connected {} WebSocket clients in {:.2} s; payload {} bytes; {} concurrent REST senders; {} cores",
        connection_ids.len(),
        connect_start.elapsed().as_secs_f64(),
        settings.payload_bytes,
        settings.senders,
        std::thread::available_parallelism().map_or(1, usize::from),
    );

    for (index, connection_id) in connection_ids.iter().enumerate() {
        let path = format!(
            "/api/v1/hubs/{HUB}/groups/g{}/connections/{connection_id}",
            index % GROUPS
        );
        let status = http
            .put(format!("http://127.0.0.1:{port}{path}"))
            .bearer_auth(rest_token(&path)?)
            .send()
            .await?
            .status();
        if status != reqwest::StatusCode::OK {
            bail!("adding a connection to a group answered {status}");
        }
    }

    let body = json!({"target": "bench", "arguments": ["x".repeat(settings.payload_bytes)]});
    let clients = settings.clients as u64;

    let broadcast_path = format!("/api/v1/hubs/{HUB}");
    let broadcast_paths = vec![(broadcast_path.clone(), rest_token(&broadcast_path)?)];
    let expected = settings.broadcasts as u64 * clients;
    let elapsed = run_phase(
        port,
        &http,
        &received,
        settings.broadcasts,
        settings.senders,
        expected,
        &body,
        &broadcast_paths,
    )
    .await?;
    report("broadcast", settings.broadcasts, expected, elapsed);

    let group_paths = (0..GROUPS)
        .map(|group| {
            let path = format!("/api/v1/hubs/{HUB}/groups/g{group}");
            rest_token(&path).map(|token| (path, token))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Round-robin over equal groups: every group gets the same number of sends.
    let group_sends = settings.group_sends / GROUPS * GROUPS;
    let members: u64 = (0..group_sends)
        .map(|index| (settings.clients - index % GROUPS).div_ceil(GROUPS) as u64)
        .sum();
    let elapsed = run_phase(
        port,
        &http,
        &received,
        group_sends,
        settings.senders,
        members,
        &body,
        &group_paths,
    )
    .await?;
    report("send-to-group", group_sends, members, elapsed);
    println!("Azure SignalR Unit 1 for comparison: 1,000 connections, 2,000 outbound messages/s");

    let _ = stop.send(());
    emulator.wait().await?;
    Ok(())
}
