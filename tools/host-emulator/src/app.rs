//! The function app on disk: `host.json`, every `*/function.json` and `local.settings.json`,
//! read once and checked before anything listens (docs/protocol/functions-host.md §5).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::{Map, Value};

use crate::routes::RouteTemplate;

/// Everything the emulator needs to know about the app, read from the app root.
#[derive(Debug, Clone)]
pub struct AppDefinition {
    /// The app root (absolute).
    pub root: PathBuf,
    /// `extensions.http.routePrefix` (default `api`), without slashes.
    pub route_prefix: String,
    /// How to start the handler (`customHandler.description`).
    pub handler: HandlerDescription,
    /// `functionTimeout` from host.json, when set and not `-1`.
    pub function_timeout: Option<std::time::Duration>,
    /// HTTP-triggered functions, most specific route first.
    pub functions: Vec<FunctionDefinition>,
    /// `local.settings.json` (empty when the file is absent).
    pub settings: LocalSettings,
}

/// `customHandler.description`, resolved against the app root as the host does
/// (docs/protocol/functions-host.md §5.1).
#[derive(Debug, Clone)]
pub struct HandlerDescription {
    /// The executable: absolute when `defaultExecutablePath` names an existing file under the
    /// app root, otherwise as written (looked up through `PATH`).
    pub executable: PathBuf,
    /// `arguments`, with `%VAR%` expanded.
    pub arguments: Vec<String>,
    /// `workingDirectory` (default: the app root).
    pub working_directory: PathBuf,
}

/// One HTTP-triggered function.
#[derive(Debug, Clone)]
pub struct FunctionDefinition {
    /// The folder name: the function name and the path the handler receives.
    pub name: String,
    /// `route` (default: the function name).
    pub route: RouteTemplate,
    /// Upper-case `methods`; `None` accepts every method.
    pub methods: Option<Vec<String>>,
    /// The `httpTrigger` binding's `name`: its key in `Data`.
    pub trigger_name: String,
    /// Input bindings other than the trigger.
    pub inputs: Vec<InputBinding>,
    /// Output bindings.
    pub outputs: Vec<OutputBinding>,
}

/// An input binding the emulator can resolve.
#[derive(Debug, Clone)]
pub enum InputBinding {
    /// `signalRConnectionInfo`.
    SignalRConnectionInfo(SignalRInputBinding),
}

/// A `signalRConnectionInfo` binding's properties (docs/protocol/functions-host.md §2, property
/// names case-insensitive).
#[derive(Debug, Clone)]
pub struct SignalRInputBinding {
    /// The binding name: its key in `Data`.
    pub name: String,
    /// `hubName` (may hold binding expressions).
    pub hub_name: String,
    /// `connectionStringSetting` (default `AzureSignalRConnectionString`).
    pub connection_string_setting: String,
    /// `userId` expression.
    pub user_id: Option<String>,
    /// `idToken` expression.
    pub id_token: Option<String>,
    /// `claimTypeList`.
    pub claim_type_list: Vec<String>,
}

/// An output binding the emulator can apply.
#[derive(Debug, Clone)]
pub enum OutputBinding {
    /// `http` output: the caller's response (`$return` means `ReturnValue`).
    Http {
        /// The binding name.
        name: String,
    },
    /// `signalR` output: messages and group actions.
    SignalR {
        /// The binding name.
        name: String,
        /// `hubName`.
        hub_name: String,
        /// `connectionStringSetting`.
        connection_string_setting: String,
    },
}

/// `local.settings.json`.
#[derive(Debug, Clone, Default)]
pub struct LocalSettings {
    /// `Values`: app settings, given to the handler as environment variables.
    pub values: BTreeMap<String, String>,
    /// `ConnectionStrings`.
    pub connection_strings: BTreeMap<String, String>,
    /// `Host.LocalHttpPort`.
    pub local_http_port: Option<u16>,
    /// `Host.CORS`, split on commas.
    pub cors_origins: Vec<String>,
    /// `Host.CORSCredentials`.
    pub cors_credentials: bool,
}

/// The default `connectionStringSetting` of the SignalR extension.
pub const DEFAULT_CONNECTION_STRING_SETTING: &str = "AzureSignalRConnectionString";

impl AppDefinition {
    /// Reads the app at `root`.
    pub fn read(root: &Path) -> anyhow::Result<Self> {
        let root = root
            .canonicalize()
            .with_context(|| format!("the app root `{}` does not exist", root.display()))?;
        let host_json = read_json(&root.join("host.json"))?;
        let settings = read_local_settings(&root.join("local.settings.json"))?;
        let route_prefix = lookup_path(&host_json, &["extensions", "http", "routePrefix"])
            .and_then(Value::as_str)
            .unwrap_or("api")
            .trim_matches('/')
            .to_owned();
        let handler = read_handler_description(&root, &host_json)?;
        let function_timeout = match lookup_path(&host_json, &["functionTimeout"]) {
            Some(Value::String(text)) => parse_timespan(text)
                .with_context(|| format!("host.json: functionTimeout `{text}` is not hh:mm:ss"))?,
            _ => None,
        };
        let mut functions = Vec::new();
        let mut entries: Vec<_> = std::fs::read_dir(&root)
            .with_context(|| format!("cannot list the app root `{}`", root.display()))?
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.join("function.json").is_file())
            .collect();
        entries.sort();
        for folder in entries {
            let name = folder
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = std::fs::read_to_string(folder.join("function.json"))
                .with_context(|| format!("cannot read `{name}/function.json`"))?;
            if let Some(function) = parse_function_json(&name, &text)
                .with_context(|| format!("`{name}/function.json`"))?
            {
                functions.push(function);
            }
        }
        functions.sort_by(|a, b| a.route.precedence_cmp(&b.route));
        Ok(Self {
            root,
            route_prefix,
            handler,
            function_timeout,
            functions,
            settings,
        })
    }

    /// The function whose route and methods match, with its route values.
    pub fn route(
        &self,
        method: &str,
        path: &str,
    ) -> Option<(&FunctionDefinition, crate::routes::RouteValues)> {
        let relative = if self.route_prefix.is_empty() {
            path.trim_start_matches('/')
        } else {
            let trimmed = path.trim_start_matches('/');
            let (first, rest) = trimmed.split_once('/').unwrap_or((trimmed, ""));
            if !first.eq_ignore_ascii_case(&self.route_prefix) {
                return None;
            }
            rest
        };
        self.functions.iter().find_map(|function| {
            let allowed = function
                .methods
                .as_ref()
                .is_none_or(|methods| methods.iter().any(|m| m.eq_ignore_ascii_case(method)));
            if !allowed {
                return None;
            }
            function
                .route
                .matches(relative)
                .map(|values| (function, values))
        })
    }
}

/// Parses one `function.json`. `None` for a disabled function or one without an HTTP trigger.
pub fn parse_function_json(name: &str, text: &str) -> anyhow::Result<Option<FunctionDefinition>> {
    let json: Value = serde_json::from_str(text).context("not valid JSON")?;
    if get_ci(&json, "disabled").and_then(Value::as_bool) == Some(true) {
        return Ok(None);
    }
    let bindings = get_ci(&json, "bindings")
        .and_then(Value::as_array)
        .context("no `bindings` array")?;
    let mut trigger = None;
    let mut inputs = Vec::new();
    let mut outputs = Vec::new();
    for binding in bindings {
        let kind = string_ci(binding, "type")
            .context("a binding has no `type`")?
            .to_ascii_lowercase();
        let direction = string_ci(binding, "direction")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let binding_name = string_ci(binding, "name")
            .with_context(|| format!("the `{kind}` binding has no `name`"))?;
        match (kind.as_str(), direction.as_str()) {
            ("httptrigger", _) => {
                let route = string_ci(binding, "route").unwrap_or_else(|| name.to_owned());
                let methods = get_ci(binding, "methods")
                    .and_then(Value::as_array)
                    .map(|list| {
                        list.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_ascii_uppercase)
                            .collect::<Vec<_>>()
                    });
                trigger = Some((
                    binding_name,
                    RouteTemplate::parse(&route).map_err(anyhow::Error::msg)?,
                    methods,
                ));
            }
            ("signalrconnectioninfo", _) => {
                inputs.push(InputBinding::SignalRConnectionInfo(SignalRInputBinding {
                    name: binding_name,
                    hub_name: string_ci(binding, "hubName")
                        .context("the signalRConnectionInfo binding has no `hubName`")?,
                    connection_string_setting: string_ci(binding, "connectionStringSetting")
                        .unwrap_or_else(|| DEFAULT_CONNECTION_STRING_SETTING.to_owned()),
                    user_id: string_ci(binding, "userId"),
                    id_token: string_ci(binding, "idToken"),
                    claim_type_list: get_ci(binding, "claimTypeList")
                        .and_then(Value::as_array)
                        .map(|list| {
                            list.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_owned)
                                .collect()
                        })
                        .unwrap_or_default(),
                }))
            }
            ("http", "out") => outputs.push(OutputBinding::Http { name: binding_name }),
            ("signalr", "out") => outputs.push(OutputBinding::SignalR {
                name: binding_name,
                hub_name: string_ci(binding, "hubName")
                    .context("the signalR output binding has no `hubName`")?,
                connection_string_setting: string_ci(binding, "connectionStringSetting")
                    .unwrap_or_else(|| DEFAULT_CONNECTION_STRING_SETTING.to_owned()),
            }),
            (other, direction) => bail!(
                "the binding type `{other}` ({direction}) is not supported by the host emulator \
                 (it emulates httpTrigger, http, signalRConnectionInfo and signalR)"
            ),
        }
    }
    let Some((trigger_name, route, methods)) = trigger else {
        bail!("no httpTrigger binding: the host emulator serves HTTP-triggered functions only");
    };
    Ok(Some(FunctionDefinition {
        name: name.to_owned(),
        route,
        methods,
        trigger_name,
        inputs,
        outputs,
    }))
}

fn read_handler_description(root: &Path, host_json: &Value) -> anyhow::Result<HandlerDescription> {
    let description = lookup_path(host_json, &["customHandler", "description"])
        .context("host.json has no `customHandler.description`: not a custom handler app")?;
    let executable = string_ci(description, "defaultExecutablePath")
        .filter(|path| !path.is_empty())
        .context("WorkerDescription DefaultExecutablePath cannot be empty")?;
    let executable = expand_percent_variables(&executable);
    let candidate = root.join(&executable);
    let executable = if candidate.is_file() {
        candidate
    } else {
        PathBuf::from(executable)
    };
    let arguments = get_ci(description, "arguments")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(expand_percent_variables)
                .collect()
        })
        .unwrap_or_default();
    let working_directory = match string_ci(description, "workingDirectory") {
        Some(directory) if !directory.is_empty() => root.join(directory),
        _ => root.to_path_buf(),
    };
    if lookup_path(host_json, &["customHandler", "enableForwardingHttpRequest"])
        .and_then(Value::as_bool)
        == Some(true)
    {
        bail!(
            "host.json: enableForwardingHttpRequest=true is not emulated; set it to false \
             (functions with SignalR bindings always get the JSON payload anyway, \
             docs/protocol/functions-host.md §4)"
        );
    }
    Ok(HandlerDescription {
        executable,
        arguments,
        working_directory,
    })
}

fn read_local_settings(path: &Path) -> anyhow::Result<LocalSettings> {
    if !path.exists() {
        return Ok(LocalSettings::default());
    }
    let json = read_json(path)?;
    let strings = |section: &str| -> BTreeMap<String, String> {
        get_ci(&json, section)
            .and_then(Value::as_object)
            .map(|map| {
                map.iter()
                    .map(|(key, value)| {
                        let text = match value {
                            Value::String(text) => text.clone(),
                            Value::Null => String::new(),
                            other => other.to_string(),
                        };
                        (key.clone(), text)
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let host = get_ci(&json, "Host");
    let local_http_port = match host.and_then(|host| get_ci(host, "LocalHttpPort")) {
        Some(value) => Some(
            value
                .as_u64()
                .and_then(|port| u16::try_from(port).ok())
                .context("local.settings.json: Host.LocalHttpPort must be a port number")?,
        ),
        None => None,
    };
    let cors_origins = host
        .and_then(|host| string_ci(host, "CORS"))
        .map(|origins| {
            origins
                .split(',')
                .map(|origin| origin.trim().trim_end_matches('/').to_owned())
                .filter(|origin| !origin.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let cors_credentials = host
        .and_then(|host| get_ci(host, "CORSCredentials"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(LocalSettings {
        values: strings("Values"),
        connection_strings: strings("ConnectionStrings"),
        local_http_port,
        cors_origins,
        cors_credentials,
    })
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read `{}`", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("`{}` is not valid JSON", path.display()))
}

/// Case-insensitive property lookup, as the host's configuration binder does.
pub fn get_ci<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    let map: &Map<String, Value> = value.as_object()?;
    map.get(key).or_else(|| {
        map.iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(_, value)| value)
    })
}

fn string_ci(value: &Value, key: &str) -> Option<String> {
    get_ci(value, key)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn lookup_path<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(value, |current, key| get_ci(current, key))
}

/// `%VAR%` → the environment variable; an unset variable is removed
/// (docs/protocol/functions-host.md §5.1).
fn expand_percent_variables(text: &str) -> String {
    let mut result = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('%') else {
            break;
        };
        result.push_str(&rest[..start]);
        result.push_str(&std::env::var(&after[..end]).unwrap_or_default());
        rest = &after[end + 1..];
    }
    result.push_str(rest);
    result
}

/// `hh:mm:ss` (optionally `d.hh:mm:ss`); `-1` means no timeout.
fn parse_timespan(text: &str) -> Option<Option<std::time::Duration>> {
    if text.trim() == "-1" {
        return Some(None);
    }
    let (days, clock) = match text.split_once('.') {
        Some((days, clock)) if !days.contains(':') => (days.parse::<u64>().ok()?, clock),
        _ => (0, text),
    };
    let parts: Vec<&str> = clock.split(':').collect();
    let [hours, minutes, seconds] = parts.as_slice() else {
        return None;
    };
    let seconds: f64 = seconds.parse().ok()?;
    let total =
        days * 86_400 + hours.parse::<u64>().ok()? * 3600 + minutes.parse::<u64>().ok()? * 60;
    Some(Some(std::time::Duration::from_secs_f64(
        total as f64 + seconds,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_http_function_with_signalr_bindings() {
        let text = r#"{"bindings":[
            {"type":"httpTrigger","direction":"in","name":"req","methods":["post"],"route":"groups/{group}/send"},
            {"type":"signalR","direction":"out","name":"signalRMessages","hubName":"chat"},
            {"type":"http","direction":"out","name":"res"}]}"#;
        let function = parse_function_json("sendToGroup", text)
            .expect("valid")
            .expect("enabled");
        assert_eq!(function.trigger_name, "req");
        assert_eq!(function.methods, Some(vec!["POST".to_owned()]));
        assert_eq!(function.route.as_str(), "groups/{group}/send");
        assert!(matches!(
            &function.outputs[0],
            OutputBinding::SignalR { connection_string_setting, .. }
                if connection_string_setting == DEFAULT_CONNECTION_STRING_SETTING
        ));
    }

    #[test]
    fn unsupported_bindings_and_non_http_functions_are_refused() {
        let queue = r#"{"bindings":[{"type":"httpTrigger","name":"req"},{"type":"queue","direction":"out","name":"q"}]}"#;
        assert!(parse_function_json("f", queue).is_err());
        let timer = r#"{"bindings":[{"type":"timerTrigger","name":"t"}]}"#;
        assert!(parse_function_json("f", timer).is_err());
        let disabled = r#"{"disabled":true,"bindings":[]}"#;
        assert!(parse_function_json("f", disabled).expect("valid").is_none());
    }

    #[test]
    fn timespans_parse_like_host_json() {
        assert_eq!(
            parse_timespan("00:05:00"),
            Some(Some(std::time::Duration::from_secs(300)))
        );
        assert_eq!(parse_timespan("-1"), Some(None));
        assert_eq!(parse_timespan("five minutes"), None);
    }
}
