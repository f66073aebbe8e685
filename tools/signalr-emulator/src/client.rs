//! The client side (docs/protocol/signalr-service.md §5): negotiate, the WebSocket connect, and the per-connection
//! socket task.
//!
//! Only the WebSockets transport is offered; negotiate says so, so clients never try Server-Sent Events or
//! long polling.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::time::{Instant, sleep_until, timeout};

use crate::app::{
    AppState, PendingConnection, QueryParams, bearer_token, random_id, request_host, unauthorized,
};
use crate::auth::{Audience, TokenError};
use crate::error::ApiError;
use crate::hub::{ConnectionSlot, Frame, Hub, Peer, PeerInbox};
use crate::lifetime::{ConnectionAuth, Registration};
use crate::names::{HubName, UserId};
use crate::protocol::{self, ClientMessage, RECORD_SEPARATOR};
use crate::upstream::{ConnectionInfo, UpstreamConnection};

/// Largest WebSocket message, and largest unterminated record, a client may send.
const MAX_CLIENT_MESSAGE_BYTES: usize = 1024 * 1024;

/// Read buffer per connection. Clients send little (pings, the odd invocation), and tungstenite zero-fills
/// this much on every read, so the 128 KiB default would cost both memory and time for nothing.
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// Frames written to a socket before one flush.
const WRITE_BATCH: usize = 256;

/// Largest WebSocket message made by joining queued frames.
const COALESCE_BYTES: usize = 64 * 1024;

/// How long the close message may take; a client that is not reading will not get it anyway.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// `POST /client/negotiate?hub=…[&negotiateVersion=1]`.
pub(crate) async fn negotiate(
    State(app): State<Arc<AppState>>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let query = QueryParams::parse(uri.query());
    let VerifiedClient { hub, user, .. } = verified_client(&app, &query, &headers)?;
    let version = query
        .last("negotiateVersion")
        .and_then(|value| value.parse::<i64>().ok())
        .unwrap_or(0);

    let connection_id: Arc<str> = Arc::from(random_id(16));
    let id_for_connect = if version >= 1 {
        random_id(32)
    } else {
        connection_id.to_string()
    };
    {
        let mut pending = app.pending.lock();
        if pending.len() >= app.config.max_connections {
            return Err(ApiError::TooManyConnections);
        }
        pending.insert(
            id_for_connect.clone(),
            PendingConnection {
                connection_id: Arc::clone(&connection_id),
                hub: hub.clone(),
                user: user.clone(),
                negotiated_at: Instant::now(),
            },
        );
    }
    tracing::debug!(
        hub = hub.as_str(),
        connection_id = %connection_id,
        user = user.as_ref().map(UserId::as_str),
        negotiate_version = version,
        "negotiated"
    );
    let transports = json!([{"transport": "WebSockets", "transferFormats": ["Text"]}]);
    let body = if version >= 1 {
        json!({
            "negotiateVersion": 1,
            "connectionId": &*connection_id,
            "connectionToken": id_for_connect,
            "availableTransports": transports,
        })
    } else {
        json!({"negotiateVersion": 0, "connectionId": &*connection_id, "availableTransports": transports})
    };
    Ok(axum::Json(body).into_response())
}

/// `GET /client/?hub=…&id=…`: the WebSocket upgrade.
pub(crate) async fn connect(
    State(app): State<Arc<AppState>>,
    uri: Uri,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let query = QueryParams::parse(uri.query());
    let VerifiedClient {
        hub: hub_name,
        user,
        auth,
    } = verified_client(&app, &query, &headers)?;
    let Ok(upgrade) = upgrade else {
        return Err(ApiError::BadRequest(
            "This emulator supports only the WebSockets transport.".to_owned(),
        ));
    };

    let (connection_id, connection_token) = match query.single("id")? {
        Some(id) => {
            let connection_id = take_pending(&app, id, &hub_name, user.as_ref())?;
            // Negotiate v1 hands out a connection token different from the id; v0 clients send the id.
            let token = (*connection_id != *id).then(|| id.to_owned());
            (connection_id, token)
        }
        // Without an id the client skipped negotiation, which WebSockets allows.
        None => (Arc::from(random_id(16)), None),
    };
    let slot = app
        .registry
        .reserve_connection()
        .ok_or(ApiError::TooManyConnections)?;
    let hub = app.registry.hub(&hub_name);
    let client_query = crate::upstream::client_query(uri.query());
    let task_token = app.tasks.token();
    Ok(upgrade
        .max_message_size(MAX_CLIENT_MESSAGE_BYTES)
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_upgrade(move |socket| async move {
            let session = Session {
                app,
                hub,
                hub_name,
                connection_id,
                connection_token,
                user,
                auth: Arc::new(auth),
                client_query,
                upstream: None,
                _slot: slot,
            };
            session.run(socket).await;
            drop(task_token);
        }))
}

/// What a verified client token says about the connection.
struct VerifiedClient {
    hub: HubName,
    user: Option<UserId>,
    /// The token's claims and its `asrs.s.aeo` deadline, if any.
    auth: ConnectionAuth,
}

/// The hub, user and claims of a client request (negotiate or connect): the token comes from the
/// `Authorization` header, else the `access_token` query parameter (browsers cannot set headers
/// on WebSockets), and must be a client token for that hub, with well-formed close-on-expiry claims.
fn verified_client(
    app: &AppState,
    query: &QueryParams,
    headers: &HeaderMap,
) -> Result<VerifiedClient, ApiError> {
    let hub = hub_from_query(query)?;
    let token = bearer_token(headers)
        .or_else(|| query.last("access_token"))
        .ok_or_else(|| unauthorized(TokenError::Missing))?;
    let verified = app
        .validator
        .verify(token, request_host(headers), Audience::Client { hub: &hub })
        .map_err(unauthorized)?;
    let user = verified.user_id.as_deref().map(UserId::parse).transpose()?;
    let auth = ConnectionAuth::from_token(&verified.claims).map_err(unauthorized)?;
    Ok(VerifiedClient { hub, user, auth })
}

fn hub_from_query(query: &QueryParams) -> Result<HubName, ApiError> {
    let hub = query
        .single("hub")?
        .ok_or_else(|| ApiError::BadRequest("The query parameter 'hub' is required.".to_owned()))?;
    Ok(HubName::parse(hub, None)?)
}

/// Uses up a negotiation: it must exist, be younger than the connection-token lifetime, be for this hub, and
/// belong to the same user (as ASP.NET Core checks).
fn take_pending(
    app: &AppState,
    id: &str,
    hub: &HubName,
    user: Option<&UserId>,
) -> Result<Arc<str>, ApiError> {
    let not_found = ApiError::NotFound {
        error_code: None,
        message: "No connection with that ID was negotiated, or it expired.",
    };
    let pending = app.pending.lock().remove(id).ok_or(not_found)?;
    let age = Instant::now().duration_since(pending.negotiated_at);
    if age > app.config.timings.connection_token_lifetime || &pending.hub != hub {
        return Err(ApiError::NotFound {
            error_code: None,
            message: "No connection with that ID was negotiated, or it expired.",
        });
    }
    if pending.user.as_ref() != user {
        return Err(ApiError::Forbidden(
            "The connection was negotiated by another user.",
        ));
    }
    Ok(pending.connection_id)
}

/// One connected client, from the handshake to the end.
struct Session {
    app: Arc<AppState>,
    hub: Arc<Hub>,
    hub_name: HubName,
    connection_id: Arc<str>,
    /// The negotiate v1 connection token, which names this connection in refresh calls.
    connection_token: Option<String>,
    user: Option<UserId>,
    auth: Arc<ConnectionAuth>,
    /// The connect query without its secrets, for `X-ASRS-Client-Query`.
    client_query: String,
    /// The upstream worker of this connection, from the handshake on, when an upstream is configured.
    upstream: Option<UpstreamConnection>,
    _slot: ConnectionSlot,
}

/// Why a session ended, and what the client is told.
enum Ending {
    /// The client closed or vanished: nothing more to send.
    ClientLeft,
    /// Send a close message with this error, then close the socket.
    Close {
        error: Option<String>,
        allow_reconnect: bool,
    },
}

impl Session {
    async fn run(mut self, mut socket: WebSocket) {
        let mut buffer = String::new();
        let handshake = timeout(
            self.app.config.timings.handshake_timeout,
            read_record(&mut socket, &mut buffer),
        )
        .await;
        let record = match handshake {
            Ok(Some(record)) => record,
            Ok(None) => return,
            Err(_elapsed) => {
                tracing::debug!(connection_id = %self.connection_id, "handshake timed out");
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
        };
        if let Err(error) = protocol::parse_handshake(&record) {
            tracing::debug!(connection_id = %self.connection_id, %error, "handshake refused");
            let _ = socket
                .send(Message::text(protocol::handshake_error(&error.to_string())))
                .await;
            let _ = socket.send(Message::Close(None)).await;
            return;
        }
        if socket
            .send(Message::text(protocol::HANDSHAKE_OK))
            .await
            .is_err()
        {
            return;
        }

        let (peer, inbox) = Peer::new(
            Arc::clone(&self.connection_id),
            self.user.clone(),
            self.app.config.outbound_queue_capacity,
        );
        self.hub.connect(Arc::clone(&peer), Instant::now());
        let _live = self.app.live.register(Registration {
            hub: self.hub_name.clone(),
            user: self.user.clone(),
            connection_token: self.connection_token.clone(),
            auth: Arc::clone(&self.auth),
            peer: Arc::clone(&peer),
        });
        if let Some(upstream) = &self.app.upstream {
            let info = ConnectionInfo {
                hub_name: self.hub_name.clone(),
                connection_id: Arc::clone(&self.connection_id),
                user: self.user.clone(),
                auth: Arc::clone(&self.auth),
                client_query: std::mem::take(&mut self.client_query),
            };
            self.upstream = Some(upstream.open(info, Arc::clone(&self.hub), &self.app.tasks));
        }
        // Connections and disconnections are at info: they are what a developer watches for.
        tracing::info!(
            "connected {} to hub {:?} as {}",
            self.connection_id,
            self.hub_name.as_str(),
            self.user.as_ref().map_or_else(
                || "no user".to_owned(),
                |user| format!("user {:?}", user.as_str())
            )
        );

        let ending = self.pump(&mut socket, &peer, inbox, buffer).await;
        self.hub.disconnect(&self.connection_id);
        if let Some(upstream) = self.upstream.take() {
            let error = match &ending {
                Ending::Close { error, .. } => error.clone(),
                Ending::ClientLeft => None,
            };
            upstream.close(error);
        }
        if let Ending::Close {
            error,
            allow_reconnect,
        } = &ending
        {
            let close = protocol::close(error.as_deref(), *allow_reconnect);
            let _ = timeout(CLOSE_TIMEOUT, socket.send(Message::text(close))).await;
            let frame = CloseFrame {
                code: close_code::NORMAL,
                reason: "".into(),
            };
            let _ = timeout(CLOSE_TIMEOUT, socket.send(Message::Close(Some(frame)))).await;
        }
        tracing::info!(
            "disconnected {} from hub {:?}",
            self.connection_id,
            self.hub_name.as_str()
        );
    }

    /// Moves frames both ways until one side ends the connection.
    async fn pump(
        &self,
        socket: &mut WebSocket,
        peer: &Peer,
        mut inbox: PeerInbox,
        mut buffer: String,
    ) -> Ending {
        let timings = &self.app.config.timings;
        // Whatever followed the handshake in the same message is already a record or the start of one.
        if let Some(ending) = self.handle_records(socket, &mut buffer).await {
            return ending;
        }
        let mut batch: Vec<Frame> = Vec::with_capacity(WRITE_BATCH);
        let mut last_write = Instant::now();
        let mut last_read = Instant::now();
        // The timers are moved only when they fire, not on every message: a message just updates the
        // timestamps, and a timer that fires early is pushed back to the real deadline.
        let ping_timer = sleep_until(last_write + timings.keep_alive_interval);
        let idle_timer = sleep_until(last_read + timings.client_timeout);
        tokio::pin!(ping_timer, idle_timer);
        loop {
            tokio::select! {
                biased;
                () = inbox.closing.cancelled() => {
                    return Ending::Close { error: peer.close_reason(), allow_reconnect: true };
                }
                () = self.app.shutdown.cancelled() => return shutting_down(),
                count = inbox.frames.recv_many(&mut batch, WRITE_BATCH) => {
                    if count == 0 {
                        return Ending::ClientLeft;
                    }
                    if count < WRITE_BATCH {
                        // Let the runtime poll for I/O and run other ready tasks once before writing:
                        // sends arriving meanwhile join this write instead of costing a system call each.
                        tokio::task::yield_now().await;
                        while batch.len() < WRITE_BATCH {
                            let Ok(frame) = inbox.frames.try_recv() else { break };
                            batch.push(frame);
                        }
                    }
                    // A client that stopped reading blocks this write; closing it (a REST close, or
                    // a sender that gave up waiting) or stopping the emulator must still end it. The
                    // close message then queues behind what tungstenite has already buffered.
                    tokio::select! {
                        written = write_batch(socket, &mut batch, timings.client_timeout) => {
                            if !written {
                                return Ending::ClientLeft;
                            }
                        }
                        () = inbox.closing.cancelled() => {
                            return Ending::Close { error: peer.close_reason(), allow_reconnect: true };
                        }
                        () = self.app.shutdown.cancelled() => return shutting_down(),
                    }
                    last_write = Instant::now();
                }
                incoming = socket.next() => {
                    last_read = Instant::now();
                    match incoming {
                        Some(Ok(Message::Text(text))) => {
                            if buffer.len() + text.len() > MAX_CLIENT_MESSAGE_BYTES {
                                return protocol_error("The message is too large.");
                            }
                            buffer.push_str(text.as_str());
                            if let Some(ending) = self.handle_records(socket, &mut buffer).await {
                                return ending;
                            }
                        }
                        Some(Ok(Message::Binary(_))) => {
                            return protocol_error("Binary messages are not part of the JSON hub protocol.");
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        Some(Ok(Message::Close(_)) | Err(_)) | None => return Ending::ClientLeft,
                    }
                }
                () = &mut ping_timer => {
                    let due = last_write + timings.keep_alive_interval;
                    if Instant::now() >= due {
                        if !send_text(socket, protocol::PING, timings.client_timeout).await {
                            return Ending::ClientLeft;
                        }
                        last_write = Instant::now();
                    }
                    ping_timer.as_mut().reset(last_write + timings.keep_alive_interval);
                }
                () = &mut idle_timer => {
                    let due = last_read + timings.client_timeout;
                    if Instant::now() >= due {
                        tracing::debug!(connection_id = %self.connection_id, "client timed out");
                        return Ending::Close {
                            error: Some("Server timeout elapsed without receiving a message from the client.".to_owned()),
                            allow_reconnect: false,
                        };
                    }
                    idle_timer.as_mut().reset(due);
                }
            }
        }
    }

    /// Acts on every complete record in `buffer`.
    async fn handle_records(&self, socket: &mut WebSocket, buffer: &mut String) -> Option<Ending> {
        while let Some(end) = buffer.find(RECORD_SEPARATOR) {
            let record: String = buffer.drain(..=end).collect();
            let record = record.trim_end_matches(RECORD_SEPARATOR);
            match protocol::parse_client_message(record) {
                Ok(ClientMessage::Ping | ClientMessage::Ignored(_)) => {}
                Ok(ClientMessage::Close) => return Some(Ending::ClientLeft),
                Ok(ClientMessage::Invocation {
                    invocation_id,
                    target,
                }) if self.upstream.is_some() => {
                    let refusal = self
                        .upstream
                        .as_ref()
                        .and_then(|upstream| upstream.invoke(record, invocation_id, target));
                    if let Some(completion) = refusal
                        && !send_text(socket, &completion, self.app.config.timings.client_timeout)
                            .await
                    {
                        return Some(Ending::ClientLeft);
                    }
                }
                Ok(ClientMessage::Invocation {
                    invocation_id,
                    target,
                }) => {
                    tracing::debug!(
                        connection_id = %self.connection_id,
                        target,
                        "client invocation dropped: this emulator has no upstream"
                    );
                    if let Some(invocation_id) = invocation_id {
                        let error = format!(
                            "Invocation failed: the emulator has no upstream for '{target}'."
                        );
                        let completion = protocol::completion_error(&invocation_id, &error);
                        if !send_text(socket, &completion, self.app.config.timings.client_timeout)
                            .await
                        {
                            return Some(Ending::ClientLeft);
                        }
                    }
                }
                Err(error) => {
                    tracing::debug!(connection_id = %self.connection_id, %error, "bad message from client");
                    return Some(protocol_error("Connection closed with an error."));
                }
            }
        }
        None
    }
}

fn shutting_down() -> Ending {
    Ending::Close {
        error: Some("Server is shutting down.".to_owned()),
        allow_reconnect: true,
    }
}

fn protocol_error(error: &str) -> Ending {
    Ending::Close {
        error: Some(error.to_owned()),
        allow_reconnect: false,
    }
}

/// Writes queued frames and flushes once, so a burst costs one system call rather than one per frame.
///
/// Frames that are waiting together are joined into one WebSocket message (up to `COALESCE_BYTES`): the
/// JSON hub protocol allows several records per message, and clients parse one message far faster than
/// many. A lone frame goes out as it is, with no copy.
async fn write_batch(socket: &mut WebSocket, batch: &mut Vec<Frame>, limit: Duration) -> bool {
    let write = async {
        if batch.len() == 1
            && let Some(frame) = batch.pop()
        {
            socket.feed(Message::Text(frame)).await?;
            return socket.flush().await;
        }
        let mut joined = String::new();
        for frame in batch.drain(..) {
            if joined.is_empty() && frame.len() >= COALESCE_BYTES {
                socket.feed(Message::Text(frame)).await?;
                continue;
            }
            if joined.len() + frame.len() > COALESCE_BYTES {
                socket
                    .feed(Message::text(std::mem::take(&mut joined)))
                    .await?;
            }
            joined.push_str(frame.as_str());
        }
        if !joined.is_empty() {
            socket.feed(Message::text(joined)).await?;
        }
        socket.flush().await
    };
    matches!(timeout(limit, write).await, Ok(Ok(())))
}

async fn send_text(socket: &mut WebSocket, text: &str, limit: Duration) -> bool {
    matches!(
        timeout(limit, socket.send(Message::text(text))).await,
        Ok(Ok(()))
    )
}

/// Reads messages until `buffer` holds a full record; returns it and leaves the rest in `buffer`.
async fn read_record(socket: &mut WebSocket, buffer: &mut String) -> Option<String> {
    loop {
        if let Some(end) = buffer.find(RECORD_SEPARATOR) {
            let record: String = buffer.drain(..=end).collect();
            return Some(record.trim_end_matches(RECORD_SEPARATOR).to_owned());
        }
        match socket.next().await? {
            Ok(Message::Text(text)) => {
                if buffer.len() + text.len() > MAX_CLIENT_MESSAGE_BYTES {
                    return None;
                }
                buffer.push_str(text.as_str());
            }
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(Message::Binary(_) | Message::Close(_)) | Err(_) => return None,
        }
    }
}
