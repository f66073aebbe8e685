//! The public side: `http://localhost:{port}/{routePrefix}/{route}`, CORS from
//! `local.settings.json`, and one invocation per request.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde_json::Value;
use tokio::sync::watch;

use crate::app::{AppDefinition, FunctionDefinition, InputBinding, OutputBinding};
use crate::connection_string::ServiceEndpoint;
use crate::invocation::{self, IncomingRequest, new_guid};
use crate::outputs::{self, HttpResponseSpec};
use crate::signalr_rest::ServiceClient;
use crate::worker::{self, WorkerConfig, WorkerState};

/// The host version the emulator reports in `X-Azure-Functions-HostVersion`.
pub const HOST_VERSION: &str = "4.0.0-host-emulator";
/// Largest caller body accepted (the real host allows about 100 MB; a dev tool needs less).
const MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;
/// Largest handler answer read.
const MAX_HANDLER_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// How the handler process is obtained.
#[derive(Debug, Clone)]
pub enum HandlerLaunch {
    /// Start it as `customHandler.description` says (the normal case).
    Spawn,
    /// Use a handler already listening on `127.0.0.1:{port}`, e.g. one running under a debugger.
    /// No restarts in this mode.
    Attach {
        /// The handler's port.
        port: u16,
    },
}

/// Options of one host emulator.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// The function app root (holds `host.json`).
    pub app_root: PathBuf,
    /// Public port; `None` takes `Host.LocalHttpPort`, then 7071. `Some(0)` picks a free port.
    pub port: Option<u16>,
    /// How to get the handler.
    pub handler: HandlerLaunch,
}

/// A bound, not yet running host.
pub struct HostEmulator {
    listener: tokio::net::TcpListener,
    port: u16,
    app: Arc<AppDefinition>,
    handler: HandlerLaunch,
}

struct Shared {
    app: Arc<AppDefinition>,
    worker: watch::Receiver<WorkerState>,
    handler_client: reqwest::Client,
    service_client: reqwest::Client,
    server_name: String,
    port: u16,
    /// Whether the handler serves its demo page, read once at start as the handler reads it.
    demo_page: bool,
}

impl HostEmulator {
    /// Reads the app and binds the public port (on 127.0.0.1).
    pub async fn start(options: HostOptions) -> anyhow::Result<Self> {
        let app = AppDefinition::read(&options.app_root)?;
        let port = options
            .port
            .or(app.settings.local_http_port)
            .unwrap_or(7071);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| {
                format!("cannot listen on 127.0.0.1:{port} (use --port to pick another, 0 for any)")
            })?;
        let port = listener.local_addr()?.port();
        Ok(Self {
            listener,
            port,
            app: Arc::new(app),
            handler: options.handler,
        })
    }

    /// The bound public port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The app being served.
    pub fn app(&self) -> &AppDefinition {
        &self.app
    }

    /// Starts the handler, serves until `shutdown` completes or the handler fails for good
    /// (then returns the error), and stops the handler.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_sender, stop_receiver) = watch::channel(false);
        let (state_sender, state_receiver) = watch::channel(WorkerState::Starting);
        let supervisor = match self.handler {
            HandlerLaunch::Spawn => {
                let config = WorkerConfig {
                    description: self.app.handler.clone(),
                    environment: handler_environment(&self.app),
                    app_root: self.app.root.clone(),
                };
                tokio::spawn(worker::supervise(
                    config,
                    state_sender,
                    stop_receiver.clone(),
                ))
            }
            HandlerLaunch::Attach { port } => {
                state_sender.send_replace(WorkerState::Ready { port });
                let mut stop = stop_receiver.clone();
                tokio::spawn(async move {
                    let _ = stop.changed().await;
                    drop(state_sender);
                    Ok(())
                })
            }
        };
        let handler_timeout = self
            .app
            .function_timeout
            .map(|timeout| timeout + Duration::from_secs(60));
        let mut handler_client = reqwest::Client::builder().no_proxy();
        if let Some(timeout) = handler_timeout {
            handler_client = handler_client.timeout(timeout);
        }
        let shared = Arc::new(Shared {
            app: self.app.clone(),
            worker: state_receiver.clone(),
            handler_client: handler_client.build()?,
            service_client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            server_name: format!("host-emulator_{}", new_guid().replace('-', "")),
            port: self.port,
            demo_page: demo_page_enabled(app_setting(&self.app, DEMO_PAGE_SETTING).as_deref()),
        });
        let router = axum::Router::new().fallback(handle).with_state(shared);
        let mut server_stop = stop_receiver.clone();
        let server = tokio::spawn(
            axum::serve(self.listener, router)
                .with_graceful_shutdown(async move {
                    let _ = server_stop.changed().await;
                })
                .into_future(),
        );
        let announce = tokio::spawn(announce_when_ready(
            self.app.clone(),
            self.port,
            state_receiver,
        ));
        let outcome = tokio::select! {
            _ = shutdown => Ok(()),
            result = supervisor => match result {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(error),
                Err(join) => Err(anyhow::anyhow!("the handler supervisor failed: {join}")),
            },
        };
        announce.abort();
        stop_sender.send_replace(true);
        let _ = server.await;
        outcome
    }
}

/// Logs the function URLs and the listening line once the handler first answers.
async fn announce_when_ready(
    app: Arc<AppDefinition>,
    port: u16,
    mut state: watch::Receiver<WorkerState>,
) {
    if worker::ready_port(&mut state).await.is_err() {
        return;
    }
    let base = format!("http://localhost:{port}");
    for function in &app.functions {
        let methods = function
            .methods
            .as_ref()
            .map(|methods| methods.join(","))
            .unwrap_or_else(|| "ANY".into());
        let prefix = if app.route_prefix.is_empty() {
            String::new()
        } else {
            format!("/{}", app.route_prefix)
        };
        tracing::info!(
            "function {}: [{methods}] {base}{prefix}/{}",
            function.name,
            function.route.as_str()
        );
    }
    // Tests and scripts read this line to learn the port (it is the real one with --port 0).
    tracing::info!("host-emulator listening on {base}");
}

/// App settings for the handler: `Values`, except those the environment already sets (which
/// the handler inherits), as Core Tools does.
fn handler_environment(app: &AppDefinition) -> Vec<(String, String)> {
    let mut environment = Vec::new();
    for (name, value) in &app.settings.values {
        if std::env::var_os(name).is_some() {
            tracing::warn!(
                "Skipping '{name}' from local settings as it's already defined in current environment variables."
            );
            continue;
        }
        environment.push((name.clone(), value.clone()));
    }
    environment
}

/// An app setting: the environment first, then `Values` (the handler inherits the environment
/// and gets only the `Values` it does not override; see [`handler_environment`]).
fn app_setting(app: &AppDefinition, name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .or_else(|| app.settings.values.get(name).cloned())
}

impl Shared {
    /// An app setting: the environment first, then `Values`.
    fn setting(&self, name: &str) -> Option<String> {
        app_setting(&self.app, name)
    }

    /// A connection string setting: `ConnectionStrings:{name}` first, then `{name}`, then the
    /// identity-based `{name}__serviceUri` as `Endpoint=…;AuthType=azure.msi;Version=1.0;`.
    fn connection_string(&self, name: &str) -> Option<String> {
        std::env::var(format!("ConnectionStrings:{name}"))
            .ok()
            .or_else(|| std::env::var(format!("ConnectionStrings__{name}")).ok())
            .or_else(|| self.app.settings.connection_strings.get(name).cloned())
            .or_else(|| self.setting(name))
            .or_else(|| {
                self.setting(&format!("{name}__serviceUri"))
                    .map(|uri| format!("Endpoint={uri};AuthType=azure.msi;Version=1.0;"))
            })
    }

    /// The host's managed identity, as the platform gives it to the host and the handler.
    fn managed_identity(&self) -> Option<(String, String)> {
        let endpoint = self.setting("IDENTITY_ENDPOINT")?;
        let header = self.setting("IDENTITY_HEADER")?;
        Some((endpoint, header))
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let origin = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let path = parts.uri.path().to_owned();
    if parts.method == Method::OPTIONS
        && parts
            .headers
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        && let Some(origin) = origin.as_deref()
    {
        return preflight(&shared, origin, &parts.headers);
    }
    let Some((function, route_values)) = shared.app.route(parts.method.as_str(), &path) else {
        if let Some(location) = root_redirect(&shared.app, shared.demo_page, &parts.method, &path) {
            return Response::builder()
                .status(StatusCode::FOUND)
                .header(header::LOCATION, location)
                .body(axum::body::Body::empty())
                .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, ""));
        }
        let mut response = plain(StatusCode::NOT_FOUND, "");
        add_cors(&shared, origin.as_deref(), response.headers_mut());
        return response;
    };
    let body = match axum::body::to_bytes(body, MAX_REQUEST_BYTES).await {
        Ok(body) => body,
        Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, ""),
    };
    let incoming = incoming_request(&shared, &parts, route_values, body);
    let invocation_id = new_guid();
    let mut handler_logs = Vec::new();
    let mut response = match invoke(
        &shared,
        function,
        &incoming,
        &invocation_id,
        &mut handler_logs,
    )
    .await
    {
        Ok(response) => response,
        Err(reason) => {
            tracing::error!(
                "Executed '{}' (Failed, Id={invocation_id}): {reason}",
                function.name
            );
            plain(StatusCode::INTERNAL_SERVER_ERROR, "")
        }
    };
    add_cors(&shared, origin.as_deref(), response.headers_mut());
    // One line per invocation: the request, its function and status, and what the handler
    // logged for it (its `Logs`), so a developer reads each call once, in order.
    let said = if handler_logs.is_empty() {
        String::new()
    } else {
        format!(": {}", handler_logs.join("; "))
    };
    tracing::info!(
        "{} {} -> {} {} ({} ms, Id={invocation_id}){said}",
        parts.method,
        path,
        function.name,
        response.status().as_u16(),
        started.elapsed().as_millis()
    );
    response
}

/// The handler's app setting that turns its demo page on; off, its `index` function answers 404.
const DEMO_PAGE_SETTING: &str = "DEMO_PAGE_ENABLED";

/// Whether `DEMO_PAGE_ENABLED` turns the demo page on, parsed as the handler parses it: trimmed,
/// `true` in any case. Unset, empty and `false` are off (the handler's default), and so is
/// anything else (the handler refuses to start with it). The emulator cannot ask the handler, and
/// shares no code with it, so it mirrors the rule.
fn demo_page_enabled(value: Option<&str>) -> bool {
    value.is_some_and(|value| value.trim().eq_ignore_ascii_case("true"))
}

/// Where `GET /` sends a person who typed only the host's address: the demo page
/// (`/{routePrefix}/app/`), when the app routes it, the handler serves it (`demo_page`; a
/// redirect to its 404 would lead nowhere), and no function owns `/` itself. The real host shows
/// its own landing page there; a developer wants the app. Only GET and HEAD, so no API call is
/// ever redirected.
fn root_redirect(
    app: &AppDefinition,
    demo_page: bool,
    method: &Method,
    path: &str,
) -> Option<String> {
    if !demo_page || path != "/" || !(method == Method::GET || method == Method::HEAD) {
        return None;
    }
    let demo = if app.route_prefix.is_empty() {
        "/app/".to_owned()
    } else {
        format!("/{}/app/", app.route_prefix)
    };
    app.route("GET", &demo).map(|_| demo)
}

fn incoming_request(
    shared: &Shared,
    parts: &axum::http::request::Parts,
    route_values: crate::routes::RouteValues,
    body: bytes::Bytes,
) -> IncomingRequest {
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| format!("localhost:{}", shared.port));
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|value| value.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let query = parts
        .uri
        .query()
        .map(|query| {
            form_urlencoded::parse(query.as_bytes())
                .map(|(name, value)| (name.into_owned(), value.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                kestrel_header_name(name.as_str()),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let content_length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    IncomingRequest {
        method: parts.method.as_str().to_owned(),
        url: format!("http://{host}{path_and_query}"),
        query,
        headers,
        route_values,
        body,
        content_length,
    }
}

/// Header names as Kestrel stores well-known ones (`Content-Type`); HTTP/1 parsing here loses
/// the caller's casing, so every name is title-cased. The spec tells readers to compare names
/// case-insensitively anyway.
fn kestrel_header_name(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// One invocation: inputs, the handler call, outputs. Err is a failed invocation (500).
async fn invoke(
    shared: &Shared,
    function: &FunctionDefinition,
    incoming: &IncomingRequest,
    invocation_id: &str,
    handler_logs: &mut Vec<String>,
) -> Result<Response, String> {
    let data = invocation::binding_data(&function.name, incoming, SystemTime::now());
    let settings = |name: &str| shared.setting(name);
    let mut string_inputs = Vec::new();
    for input in &function.inputs {
        match input {
            InputBinding::SignalRConnectionInfo(binding) => {
                let connection_string =
                    shared.connection_string(&binding.connection_string_setting);
                let info = crate::connection_info::resolve(
                    binding,
                    &data,
                    &settings,
                    connection_string.as_deref(),
                )
                .map_err(|error| {
                    format!("Exception binding parameter '{}': {error}", binding.name)
                })?;
                string_inputs.push((binding.name.clone(), info));
            }
        }
    }
    let envelope =
        invocation::request_envelope(&function.trigger_name, incoming, &data, &string_inputs);
    let mut worker = shared.worker.clone();
    let port = worker::ready_port(&mut worker).await?;
    let body = bytes::Bytes::from(envelope.to_string());
    // A one-chunk stream: the host's ObjectContent has no length, so the handler sees chunked
    // transfer encoding (docs/protocol/functions-host.md §1.1).
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let response = shared
        .handler_client
        .post(format!("http://127.0.0.1:{port}/{}", function.name))
        .header("X-Azure-Functions-HostVersion", HOST_VERSION)
        .header("X-Azure-Functions-InvocationId", invocation_id)
        .header("User-Agent", format!("Azure-Functions-Host/{HOST_VERSION}"))
        .header("Content-Type", "application/json; charset=utf-8")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .map_err(|error| format!("calling the handler failed: {error}"))?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let bytes = read_capped(response).await?;
    let mut result = invocation::parse_response(status, content_type.as_deref(), &bytes)?;
    handler_logs.extend(result.logs.iter().cloned());
    let has_return_binding = function.outputs.iter().any(|output| match output {
        OutputBinding::Http { name } | OutputBinding::SignalR { name, .. } => name == "$return",
    });
    if !has_return_binding && let Value::Object(properties) = &result.return_value {
        for (name, value) in properties {
            result.outputs.insert(name.clone(), value.clone());
        }
    }
    let output_value = |name: &str| -> Option<Value> {
        if name == "$return" {
            Some(result.return_value.clone())
        } else {
            result.outputs.get(name).cloned()
        }
    };
    let mut caller_response = None;
    for output in &function.outputs {
        match output {
            OutputBinding::SignalR {
                name,
                hub_name,
                connection_string_setting,
            } => {
                let value = output_value(name);
                let items = outputs::signalr_items(value.as_ref())
                    .map_err(|error| format!("output binding '{name}': {error}"))?;
                if items.is_empty() {
                    continue;
                }
                let connection_string = shared.connection_string(connection_string_setting).ok_or_else(|| {
                    format!("output binding '{name}': app setting `{connection_string_setting}` is not set")
                })?;
                let endpoint = ServiceEndpoint::parse(&connection_string).map_err(|error| {
                    format!("output binding '{name}': `{connection_string_setting}`: {error}")
                })?;
                let hub = data
                    .resolve(hub_name, &settings)
                    .map_err(|error| format!("output binding '{name}': hubName: {error}"))?;
                let client =
                    ServiceClient::new(&shared.service_client, &endpoint, &shared.server_name)
                        .with_identity(shared.managed_identity());
                for item in &items {
                    client
                        .apply(&hub, item)
                        .await
                        .map_err(|error| format!("output binding '{name}': {error}"))?;
                }
            }
            OutputBinding::Http { name } if caller_response.is_none() => {
                let wanted = if name == "$return" {
                    return_value_response(&result.return_value)?
                } else {
                    outputs::http_output(output_value(name).as_ref())?
                };
                caller_response = Some(wanted);
            }
            OutputBinding::Http { .. } => {}
        }
    }
    let wanted = caller_response.unwrap_or(HttpResponseSpec {
        status: 204,
        content_type: None,
        headers: Vec::new(),
        body: Vec::new(),
    });
    build_response(wanted)
}

/// A `$return` http output (docs/protocol/functions-host.md §3.4): an object with `body` is a
/// response object (`status` or `statusCode`), anything else is the 200 body.
fn return_value_response(value: &Value) -> Result<HttpResponseSpec, String> {
    match value {
        Value::Object(object) if object.keys().any(|key| key.eq_ignore_ascii_case("body")) => {
            let mut normalized = object.clone();
            let has_status_code = object
                .keys()
                .any(|key| key.eq_ignore_ascii_case("statusCode"));
            if !has_status_code
                && let Some((_, status)) = object
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case("status"))
            {
                normalized.insert("statusCode".into(), status.clone());
            }
            outputs::http_output(Some(&Value::Object(normalized)))
        }
        Value::Null => Ok(HttpResponseSpec {
            status: 204,
            content_type: None,
            headers: Vec::new(),
            body: Vec::new(),
        }),
        Value::String(text) => Ok(HttpResponseSpec {
            status: 200,
            content_type: Some("text/plain; charset=utf-8".into()),
            headers: Vec::new(),
            body: text.as_bytes().to_vec(),
        }),
        other => Ok(HttpResponseSpec {
            status: 200,
            content_type: Some("application/json; charset=utf-8".into()),
            headers: Vec::new(),
            body: other.to_string().into_bytes(),
        }),
    }
}

fn build_response(wanted: HttpResponseSpec) -> Result<Response, String> {
    let status = StatusCode::from_u16(wanted.status)
        .map_err(|_| format!("invalid status {}", wanted.status))?;
    let mut response = Response::new(Body::from(wanted.body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let content_type = wanted
        .content_type
        .unwrap_or_else(|| "text/plain; charset=utf-8".into());
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&content_type)
            .map_err(|_| format!("invalid Content-Type {content_type:?}"))?,
    );
    for (name, value) in wanted.headers {
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        let header_value = HeaderValue::from_str(&value)
            .map_err(|_| format!("invalid value for header {name:?}"))?;
        headers.append(header_name, header_value);
    }
    Ok(response)
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| format!("reading the handler's answer failed: {error}"))?
    {
        if body.len() + chunk.len() > MAX_HANDLER_RESPONSE_BYTES {
            return Err(format!(
                "the handler's answer exceeds {MAX_HANDLER_RESPONSE_BYTES} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn plain(status: StatusCode, body: &'static str) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
}

fn origin_allowed(shared: &Shared, origin: &str) -> Option<HeaderValue> {
    let settings = &shared.app.settings;
    let origin = origin.trim_end_matches('/');
    let wildcard = settings.cors_origins.iter().any(|allowed| allowed == "*");
    let listed = settings
        .cors_origins
        .iter()
        .any(|allowed| allowed.eq_ignore_ascii_case(origin));
    if wildcard && !settings.cors_credentials && !listed {
        return Some(HeaderValue::from_static("*"));
    }
    if listed || wildcard {
        return HeaderValue::from_str(origin).ok();
    }
    None
}

fn add_cors(shared: &Shared, origin: Option<&str>, headers: &mut HeaderMap) {
    let Some(allowed) = origin.and_then(|origin| origin_allowed(shared, origin)) else {
        return;
    };
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    if shared.app.settings.cors_credentials {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

fn preflight(shared: &Shared, origin: &str, request_headers: &HeaderMap) -> Response {
    let mut response = plain(StatusCode::NO_CONTENT, "");
    if origin_allowed(shared, origin).is_none() {
        return response;
    }
    let headers = response.headers_mut();
    add_cors(shared, Some(origin), headers);
    let echoed = [
        (
            header::ACCESS_CONTROL_REQUEST_METHOD,
            header::ACCESS_CONTROL_ALLOW_METHODS,
        ),
        (
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            header::ACCESS_CONTROL_ALLOW_HEADERS,
        ),
    ];
    for (request_name, response_name) in echoed {
        if let Some(value) = request_headers.get(&request_name) {
            headers.insert(response_name, value.clone());
        }
    }
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_page_enabled_reads_true_and_false_as_the_handler_does() {
        for on in ["true", "TRUE", " True "] {
            assert!(demo_page_enabled(Some(on)), "{on:?}");
        }
        for off in [
            None,
            Some(""),
            Some("false"),
            Some("FALSE"),
            Some("yes"),
            Some("1"),
        ] {
            assert!(!demo_page_enabled(off), "{off:?}");
        }
    }

    #[test]
    fn the_root_redirects_only_when_the_handler_serves_the_demo_page() {
        let files = crate::app::parse_function_json(
            "files",
            r#"{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","methods":["get"],"route":"app/{*path}"},
                {"type":"http","direction":"out","name":"res"}]}"#,
        )
        .expect("valid")
        .expect("enabled");
        let app = AppDefinition {
            root: PathBuf::from("/app"),
            route_prefix: "api".to_owned(),
            handler: crate::app::HandlerDescription {
                executable: PathBuf::from("handler"),
                arguments: Vec::new(),
                working_directory: PathBuf::from("/app"),
            },
            function_timeout: None,
            functions: vec![files],
            settings: crate::app::LocalSettings::default(),
        };
        assert_eq!(
            root_redirect(&app, true, &Method::GET, "/").as_deref(),
            Some("/api/app/")
        );
        assert_eq!(root_redirect(&app, false, &Method::GET, "/"), None);
        assert_eq!(root_redirect(&app, false, &Method::HEAD, "/"), None);
    }

    #[test]
    fn header_names_are_title_cased() {
        assert_eq!(kestrel_header_name("content-type"), "Content-Type");
        assert_eq!(
            kestrel_header_name("x-ms-client-principal-id"),
            "X-Ms-Client-Principal-Id"
        );
    }
}
