//! Real HTTP servers on loopback standing in for the identity provider (JWKS, OIDC discovery)
//! and the SignalR REST API's membership check.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// Reads an HTTP request's head (request line and headers) from a stand-in server's socket.
async fn read_request_head(socket: &mut tokio::net::TcpStream) -> Option<String> {
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|window| window == b"\r\n\r\n") {
        match socket.read(&mut buffer).await {
            Ok(0) | Err(_) => return None,
            Ok(read) => request.extend_from_slice(&buffer[..read]),
        }
    }
    Some(String::from_utf8_lossy(&request).into_owned())
}

/// A real HTTP server on loopback serving a JWKS and an OIDC discovery document, counting
/// requests, and able to go down.
pub struct IdentityProvider {
    pub base_url: String,
    state: Arc<Mutex<ProviderState>>,
    task: tokio::task::JoinHandle<()>,
}

struct ProviderState {
    jwks: Value,
    jwks_hits: usize,
    /// The discovery document's `jwks_uri`, when not this server's own `/keys`.
    discovered_jwks_uri: Option<String>,
}

impl IdentityProvider {
    pub async fn start(jwks: Value) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base_url = format!(
            "http://127.0.0.1:{}",
            listener.local_addr().expect("addr").port()
        );
        let state = Arc::new(Mutex::new(ProviderState {
            jwks,
            jwks_hits: 0,
            discovered_jwks_uri: None,
        }));
        let shared = state.clone();
        let issuer = base_url.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let shared = shared.clone();
                let issuer = issuer.clone();
                tokio::spawn(async move {
                    let Some(request) = read_request_head(&mut socket).await else {
                        return;
                    };
                    let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let (status, body) = match path.as_str() {
                        "/keys" => {
                            let mut state = shared.lock().expect("lock");
                            state.jwks_hits += 1;
                            ("200 OK", state.jwks.to_string())
                        }
                        "/.well-known/openid-configuration" => {
                            let jwks_uri = shared
                                .lock()
                                .expect("lock")
                                .discovered_jwks_uri
                                .clone()
                                .unwrap_or_else(|| format!("{issuer}/keys"));
                            (
                                "200 OK",
                                json!({"issuer": issuer, "jwks_uri": jwks_uri}).to_string(),
                            )
                        }
                        _ => ("404 Not Found", "{}".to_owned()),
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self {
            base_url,
            state,
            task,
        }
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/keys", self.base_url)
    }

    pub fn jwks_hits(&self) -> usize {
        self.state.lock().expect("lock").jwks_hits
    }

    /// Makes the discovery document name `jwks_uri` instead of this server's `/keys`.
    pub fn set_discovered_jwks_uri(&self, jwks_uri: &str) {
        self.state.lock().expect("lock").discovered_jwks_uri = Some(jwks_uri.to_owned());
    }

    pub fn set_jwks(&self, jwks: Value) {
        self.state.lock().expect("lock").jwks = jwks;
    }

    /// Stops listening: later connections are refused.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// A real HTTP server standing in for the SignalR REST API's membership check: answers
/// `HEAD /api/hubs/{hub}/users/{user}/groups/{group}` with 200 for listed members, else 404,
/// after checking the bearer token's signature against the AccessKey.
pub struct RestStandIn {
    pub port: u16,
    members: Arc<Mutex<Vec<(String, String)>>>,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RestStandIn {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let members: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let (shared_members, shared_requests) = (members.clone(), requests.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (members, requests) = (shared_members.clone(), shared_requests.clone());
                tokio::spawn(async move {
                    let Some(request) = read_request_head(&mut socket).await else {
                        return;
                    };
                    let mut lines = request.lines();
                    let request_line = lines.next().unwrap_or_default().to_owned();
                    let authorization = lines
                        .find_map(|line| {
                            let (name, value) = line.split_once(':')?;
                            name.eq_ignore_ascii_case("authorization")
                                .then(|| value.trim().to_owned())
                        })
                        .unwrap_or_default();
                    requests.lock().expect("lock").push(request_line.clone());
                    let path = request_line.split_whitespace().nth(1).unwrap_or_default();
                    let path = path.split('?').next().unwrap_or_default();
                    // The REST token must be signed with the AccessKey and name this path.
                    let token_ok = authorization
                        .strip_prefix("Bearer ")
                        .and_then(checked_service_claims)
                        .and_then(|claims| {
                            claims.get("aud").and_then(Value::as_str).map(str::to_owned)
                        })
                        .is_some_and(|aud| {
                            aud.split('?').next().is_some_and(|aud| aud.ends_with(path))
                        });
                    let segments: Vec<&str> = path.split('/').collect();
                    let status = match (token_ok, segments.as_slice()) {
                        (false, _) => "401 Unauthorized",
                        (true, ["", "api", "hubs", "chat", "users", user, "groups", group]) => {
                            let member = members
                                .lock()
                                .expect("lock")
                                .iter()
                                .any(|(u, g)| u == user && g == group);
                            if member { "200 OK" } else { "404 Not Found" }
                        }
                        _ => "400 Bad Request",
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self {
            port,
            members,
            requests,
            task,
        }
    }

    pub fn connection_string(&self) -> String {
        format!(
            "Endpoint=http://127.0.0.1;Port={};AccessKey={ACCESS_KEY};Version=1.0;",
            self.port
        )
    }

    pub fn add_member(&self, user: &str, group: &str) {
        self.members
            .lock()
            .expect("lock")
            .push((user.into(), group.into()));
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }

    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// One connection the refresh stand-in knows: its user and current claims.
#[derive(Clone)]
struct KnownConnection {
    token: String,
    claims: Vec<(String, String)>,
}

#[derive(Default)]
struct RefreshState {
    connections: Vec<KnownConnection>,
    members: Vec<(String, String)>,
    /// Every `:refreshAuth` body received.
    refresh_bodies: Vec<Value>,
    /// Every request line (method and path), for "nothing was asked" checks.
    requests: Vec<String>,
    /// Membership checks answer 500.
    membership_fails: bool,
    /// `:refreshAuth` answers 403 `ConnectionUserMismatch` whatever it is sent.
    refresh_mismatch: bool,
    /// Claims a misbehaving service adds to its `:refreshAuth` answer.
    refresh_extra: Vec<(String, String)>,
}

/// A real HTTP server standing in for the 2026 connection routes of the SignalR REST API, as
/// `docs/protocol/signalr-identity-2026.md` §1.3 describes them: `connections/claims` and
/// `:refreshAuth` (same-user check on `asrs.s.uid`, then `nameid`, then `sub`; 403 with
/// `x-ms-error-code: ConnectionUserMismatch`; 404 for unknown tokens), plus the membership
/// `HEAD`. Checks each REST token's signature and audience path, and records the bodies.
pub struct RefreshStandIn {
    pub port: u16,
    state: Arc<Mutex<RefreshState>>,
    task: tokio::task::JoinHandle<()>,
}

fn claim_user(claims: &[(String, String)]) -> Option<String> {
    ["asrs.s.uid", "nameid", "sub"]
        .into_iter()
        .find_map(|name| {
            claims
                .iter()
                .find(|(claim, _)| claim == name)
                .map(|(_, value)| value.clone())
        })
}

impl RefreshStandIn {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state: Arc<Mutex<RefreshState>> = Arc::default();
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let Some(head) = read_request_head(&mut socket).await else {
                        return;
                    };
                    let (head_text, mut body) = match head.split_once("\r\n\r\n") {
                        Some((head, rest)) => (head.to_owned(), rest.as_bytes().to_vec()),
                        None => (head.clone(), Vec::new()),
                    };
                    let mut lines = head_text.lines();
                    let request_line = lines.next().unwrap_or_default().to_owned();
                    let headers: Vec<(String, String)> = lines
                        .filter_map(|line| {
                            let (name, value) = line.split_once(':')?;
                            Some((name.trim().to_ascii_lowercase(), value.trim().to_owned()))
                        })
                        .collect();
                    let header = |name: &str| {
                        headers
                            .iter()
                            .find(|(key, _)| key == name)
                            .map(|(_, value)| value.clone())
                    };
                    let length: usize = header("content-length")
                        .and_then(|value| value.parse().ok())
                        .unwrap_or(0);
                    let mut buffer = [0u8; 4096];
                    while body.len() < length {
                        match socket.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(read) => body.extend_from_slice(&buffer[..read]),
                        }
                    }
                    let mut parts = request_line.split_whitespace();
                    let method = parts.next().unwrap_or_default().to_owned();
                    let target = parts.next().unwrap_or_default().to_owned();
                    let path = target.split('?').next().unwrap_or_default().to_owned();
                    state
                        .lock()
                        .expect("lock")
                        .requests
                        .push(format!("{method} {target}"));
                    let token_ok = header("authorization")
                        .as_deref()
                        .and_then(|value| value.strip_prefix("Bearer "))
                        .and_then(checked_service_claims)
                        .and_then(|claims| {
                            claims.get("aud").and_then(Value::as_str).map(str::to_owned)
                        })
                        .is_some_and(|aud| {
                            aud.split('?')
                                .next()
                                .is_some_and(|aud| aud.ends_with(&path))
                        });
                    let json_body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let (status, extra, reply) = if !token_ok {
                        ("401 Unauthorized", "", String::new())
                    } else {
                        Self::answer(&state, &method, &path, &target, json_body)
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                        reply.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self { port, state, task }
    }

    fn answer(
        state: &Mutex<RefreshState>,
        method: &str,
        path: &str,
        target: &str,
        body: Value,
    ) -> (&'static str, &'static str, String) {
        let mut state = state.lock().expect("lock");
        let segments: Vec<&str> = path.split('/').collect();
        let version_2026 = target.ends_with("?api-version=2026-07-01");
        let token = body["connectionToken"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let claims_json = |claims: &[(String, String)]| {
            json!({"claims": claims.iter().map(|(t, v)| json!({"type": t, "value": v})).collect::<Vec<_>>()})
                .to_string()
        };
        match (method, segments.as_slice()) {
            ("HEAD", [.., "groups", _]) if state.membership_fails => {
                ("500 Internal Server Error", "", String::new())
            }
            ("HEAD", ["", "api", "hubs", "chat", "users", user, "groups", group]) => {
                let member = state.members.iter().any(|(u, g)| u == user && g == group);
                (
                    if member { "200 OK" } else { "404 Not Found" },
                    "",
                    String::new(),
                )
            }
            ("POST", ["", "api", "hubs", "chat", "connections", "claims"]) if version_2026 => {
                match state.connections.iter().find(|c| c.token == token) {
                    Some(connection) => ("200 OK", "", claims_json(&connection.claims)),
                    None => (
                        "404 Not Found",
                        "x-ms-error-code: ConnectionNotFound\r\n",
                        "{}".into(),
                    ),
                }
            }
            ("POST", ["", "api", "hubs", "chat", "connections", ":refreshAuth"])
                if version_2026 =>
            {
                state.refresh_bodies.push(body.clone());
                let new_claims: Vec<(String, String)> = body["claims"]
                    .as_array()
                    .map(|claims| {
                        claims
                            .iter()
                            .map(|claim| {
                                (
                                    claim["type"].as_str().unwrap_or_default().to_owned(),
                                    claim["value"].as_str().unwrap_or_default().to_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let state_mismatch = state.refresh_mismatch;
                let Some(connection) = state.connections.iter_mut().find(|c| c.token == token)
                else {
                    return (
                        "404 Not Found",
                        "x-ms-error-code: ConnectionNotFound\r\n",
                        "{}".into(),
                    );
                };
                if body["claims"].is_null() {
                    return ("200 OK", "", claims_json(&connection.claims));
                }
                if state_mismatch || claim_user(&new_claims) != claim_user(&connection.claims) {
                    return (
                        "403 Forbidden",
                        "x-ms-error-code: ConnectionUserMismatch\r\n",
                        r#"{"code":"ConnectionUserMismatch"}"#.into(),
                    );
                }
                connection.claims = new_claims;
                let mut answer = connection.claims.clone();
                answer.extend(state.refresh_extra.iter().cloned());
                ("200 OK", "", claims_json(&answer))
            }
            _ => ("400 Bad Request", "", String::new()),
        }
    }

    pub fn connection_string(&self) -> String {
        format!(
            "Endpoint=http://127.0.0.1;Port={};AccessKey={ACCESS_KEY};Version=1.0;",
            self.port
        )
    }

    /// A live connection of `user` whose token carried `claims` besides its user id.
    pub fn add_connection(&self, token: &str, user: &str, claims: &[(&str, &str)]) {
        let mut all = vec![("asrs.s.uid".to_owned(), user.to_owned())];
        all.extend(
            claims
                .iter()
                .map(|(t, v)| ((*t).to_owned(), (*v).to_owned())),
        );
        self.state
            .lock()
            .expect("lock")
            .connections
            .push(KnownConnection {
                token: token.to_owned(),
                claims: all,
            });
    }

    pub fn add_member(&self, user: &str, group: &str) {
        self.state
            .lock()
            .expect("lock")
            .members
            .push((user.into(), group.into()));
    }

    /// Makes `:refreshAuth` answer with `extra` claims besides those it was sent.
    pub fn answer_refreshes_with_extra(&self, extra: &[(&str, &str)]) {
        self.state.lock().expect("lock").refresh_extra = extra
            .iter()
            .map(|(t, v)| ((*t).to_owned(), (*v).to_owned()))
            .collect();
    }

    pub fn refuse_refreshes_as_another_user(&self) {
        self.state.lock().expect("lock").refresh_mismatch = true;
    }

    pub fn fail_membership_checks(&self) {
        self.state.lock().expect("lock").membership_fails = true;
    }

    pub fn refresh_bodies(&self) -> Vec<Value> {
        self.state.lock().expect("lock").refresh_bodies.clone()
    }

    pub fn requests(&self) -> Vec<String> {
        self.state.lock().expect("lock").requests.clone()
    }

    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}
