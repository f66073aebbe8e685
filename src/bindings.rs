//! What each function's `function.json` binds, read once at start-up.
//!
//! The handler does not guess binding names: the host keys `Data` by the trigger's and inputs'
//! `name`, and reads `Outputs` by the outputs' `name`, exactly as written in `function.json`
//! (`docs/protocol/functions-host.md` §1.2, §3.1). Reading them here means a user who
//! renames `res` or `connectionInfo` keeps a working app, and a folder the handler cannot serve
//! stops start-up instead of failing on the first request.

use std::path::Path;

use serde::Deserialize;

use crate::function::Function;
use crate::names::HubName;
use crate::settings::{ConfigError, Env};

/// One function folder, as far as the handler needs to know it.
#[derive(Debug, Clone)]
pub struct FunctionBindings {
    /// The function; its name is the folder name, which is also the path the host POSTs to.
    pub function: Function,
    /// `name` of the `httpTrigger` binding: the key of the request in `Data`.
    pub trigger: String,
    /// `name` of the `http` output: the key of the caller's response in `Outputs`
    /// (`$return` means `ReturnValue`).
    pub http_output: String,
    /// The `signalRConnectionInfo` input, when the host mints the base token.
    pub connection_info: Option<SignalRBinding>,
    /// The `signalR` output, when the function emits messages or group actions.
    pub signalr_output: Option<SignalRBinding>,
}

/// A SignalR input or output binding.
#[derive(Debug, Clone)]
pub struct SignalRBinding {
    /// The binding's `name`.
    pub name: String,
    /// `hubName`, with `%Setting%` references resolved.
    pub hub_name: Option<String>,
    /// `connectionStringSetting`, defaulting to `AzureSignalRConnectionString` as the extension does.
    pub connection_string_setting: String,
}

/// The default connection-string setting of the SignalR extension.
pub const DEFAULT_CONNECTION_STRING_SETTING: &str = "AzureSignalRConnectionString";

#[derive(Deserialize)]
struct FunctionJson {
    #[serde(default)]
    bindings: Vec<RawBinding>,
    #[serde(default)]
    disabled: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBinding {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    direction: Option<String>,
    name: String,
    #[serde(default)]
    hub_name: Option<String>,
    #[serde(default)]
    connection_string_setting: Option<String>,
}

/// Reads `<app_root>/<function>/function.json` for every folder that has one.
///
/// A folder that is not a [`Function`] is a configuration error, because the host would route
/// requests to it and get nothing back.
pub fn read_app(app_root: &Path, env: &Env) -> Result<Vec<FunctionBindings>, ConfigError> {
    let entries = std::fs::read_dir(app_root).map_err(|error| {
        ConfigError::new(
            "FUNCTIONS_APP_ROOT_PATH",
            format!(
                "cannot read the function app root `{}` ({error}); set it to the folder that holds host.json",
                app_root.display()
            ),
        )
    })?;
    let mut functions = Vec::new();
    for entry in entries.flatten() {
        let function_json = entry.path().join("function.json");
        if !function_json.is_file() {
            continue;
        }
        let function_name = entry.file_name().to_string_lossy().into_owned();
        let Some(function) = Function::from_name(&function_name) else {
            let known: Vec<&str> = Function::ALL.iter().map(|f| f.name()).collect();
            return Err(ConfigError::new(
                "function.json",
                format!(
                    "`{function_name}/function.json` declares a function this handler does not implement \
                     (it serves: {}); remove the folder or rename it",
                    known.join(", ")
                ),
            ));
        };
        let text = std::fs::read_to_string(&function_json).map_err(|error| {
            ConfigError::new(
                "function.json",
                format!("cannot read `{function_name}/function.json`: {error}"),
            )
        })?;
        if let Some(bindings) = parse_function_json(function, &text, env.lookup())? {
            functions.push(bindings);
        }
    }
    functions.sort_by_key(|bindings| bindings.function.name());
    Ok(functions)
}

/// Parses one `function.json`. Returns `None` for a disabled function.
pub fn parse_function_json(
    function: Function,
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<FunctionBindings>, ConfigError> {
    let function_name = function.name();
    let invalid = |message: String| {
        ConfigError::new(
            "function.json",
            format!("`{function_name}/function.json`: {message}"),
        )
    };
    let parsed: FunctionJson =
        serde_json::from_str(text).map_err(|error| invalid(format!("not valid JSON ({error})")))?;
    if matches!(parsed.disabled, Some(serde_json::Value::Bool(true))) {
        return Ok(None);
    }

    let mut trigger = None;
    let mut http_output = None;
    let mut connection_info = None;
    let mut signalr_output = None;
    for binding in parsed.bindings {
        let kind = binding.kind.to_ascii_lowercase();
        let direction = binding
            .direction
            .as_deref()
            .unwrap_or("")
            .to_ascii_lowercase();
        match (kind.as_str(), direction.as_str()) {
            ("httptrigger", _) => trigger = Some(binding.name),
            ("http", "out") => http_output = Some(binding.name),
            ("signalrconnectioninfo", _) => {
                connection_info = Some(signalr_binding(binding, lookup).map_err(&invalid)?)
            }
            ("signalr", "out") => {
                signalr_output = Some(signalr_binding(binding, lookup).map_err(&invalid)?)
            }
            _ => {}
        }
    }
    Ok(Some(FunctionBindings {
        function,
        trigger: trigger.ok_or_else(|| invalid("no `httpTrigger` binding; every function of this app is HTTP-triggered".into()))?,
        http_output: http_output.ok_or_else(|| invalid("no `http` output binding (add `{\"type\": \"http\", \"direction\": \"out\", \"name\": \"res\"}`)".into()))?,
        connection_info,
        signalr_output,
    }))
}

fn signalr_binding(
    binding: RawBinding,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<SignalRBinding, String> {
    let hub_name = binding
        .hub_name
        .map(|hub| resolve_app_setting(&hub, lookup))
        .transpose()?;
    Ok(SignalRBinding {
        name: binding.name,
        hub_name,
        connection_string_setting: binding
            .connection_string_setting
            .unwrap_or_else(|| DEFAULT_CONNECTION_STRING_SETTING.to_owned()),
    })
}

/// Resolves a whole-value `%Setting%` reference as the host's `[AutoResolve]` does.
fn resolve_app_setting(
    value: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    match value
        .strip_prefix('%')
        .and_then(|rest| rest.strip_suffix('%'))
    {
        Some(setting) => lookup(setting).ok_or_else(|| {
            format!("`hubName` refers to app setting `{setting}`, which is not set")
        }),
        None => Ok(value.to_owned()),
    }
}

/// All SignalR bindings must name one connection-string setting: the handler verifies and signs
/// with one AccessKey.
pub fn connection_string_setting(functions: &[FunctionBindings]) -> Result<String, ConfigError> {
    let mut names: Vec<&str> = functions
        .iter()
        .flat_map(|f| [f.connection_info.as_ref(), f.signalr_output.as_ref()])
        .flatten()
        .map(|binding| binding.connection_string_setting.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    match names.as_slice() {
        [] => Ok(DEFAULT_CONNECTION_STRING_SETTING.to_owned()),
        [one] => Ok((*one).to_owned()),
        several => Err(ConfigError::new(
            "function.json",
            format!(
                "SignalR bindings name several connection-string settings ({}); use one `connectionStringSetting` for all",
                several.join(", ")
            ),
        )),
    }
}

/// Every SignalR binding names the same hub (ignoring case, as the service does). A client's
/// token is for the hub `negotiate` names; group actions and messages bound to another hub
/// would succeed at the service and never reach that client, a silent failure no request
/// could diagnose. The error lists each hub with the `function.json` files that name it.
pub fn check_one_hub(functions: &[FunctionBindings]) -> Result<(), ConfigError> {
    let mut hubs: Vec<(String, Vec<String>)> = Vec::new();
    for bindings in functions {
        let named = [
            bindings.connection_info.as_ref(),
            bindings.signalr_output.as_ref(),
        ];
        for hub in named
            .into_iter()
            .flatten()
            .filter_map(|binding| binding.hub_name.as_deref())
        {
            let file = format!("{}/function.json", bindings.function.name());
            match hubs
                .iter_mut()
                .find(|(known, _)| known.eq_ignore_ascii_case(hub))
            {
                Some((_, files)) if files.contains(&file) => {}
                Some((_, files)) => files.push(file),
                None => hubs.push((hub.to_owned(), vec![file])),
            }
        }
    }
    if hubs.len() <= 1 {
        return Ok(());
    }
    let listed: Vec<String> = hubs
        .iter()
        .map(|(hub, files)| format!("`{hub}` in {}", files.join(", ")))
        .collect();
    Err(ConfigError::new(
        "function.json",
        format!(
            "SignalR bindings name different hubs ({}); clients connect to one hub, so set the same `hubName` in every function.json",
            listed.join("; ")
        ),
    ))
}

/// Functions that emit SignalR items must declare where they go, and every hub a binding names
/// must be a literal, valid hub name: an expression such as `{query.hub}` would let callers pick
/// the hub their token is for.
pub fn check_signalr_outputs(functions: &[FunctionBindings]) -> Result<(), ConfigError> {
    for bindings in functions {
        let function_name = bindings.function.name();
        if let Some(hub) = bindings
            .connection_info
            .as_ref()
            .and_then(|info| info.hub_name.as_deref())
            && HubName::parse(hub).is_err()
        {
            return Err(ConfigError::new(
                "function.json",
                format!(
                    "`{function_name}/function.json`: the signalRConnectionInfo hubName `{hub}` is not a literal hub name \
                     (1-128 characters, a letter first; no binding expressions)",
                ),
            ));
        }
        if !bindings.function.needs().signalr_output {
            continue;
        }
        let hub = bindings
            .signalr_output
            .as_ref()
            .and_then(|output| output.hub_name.as_deref());
        match hub {
            Some(hub) if HubName::parse(hub).is_ok() => {}
            Some(hub) => {
                return Err(ConfigError::new(
                    "function.json",
                    format!(
                        "`{function_name}/function.json`: hubName `{hub}` is not a valid hub name"
                    ),
                ));
            }
            None => {
                return Err(ConfigError::new(
                    "function.json",
                    format!(
                        "`{function_name}/function.json` needs a `signalR` output binding with a `hubName` \
                         (`{{\"type\": \"signalR\", \"direction\": \"out\", \"name\": \"signalRMessages\", \"hubName\": \"chat\"}}`)",
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_settings(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn reads_names_as_written() {
        let text = r#"{"bindings":[
            {"type":"httpTrigger","direction":"in","name":"request","methods":["post"]},
            {"type":"signalRConnectionInfo","direction":"in","name":"info","hubName":"Chat"},
            {"type":"http","direction":"out","name":"response"}]}"#;
        let bindings = parse_function_json(Function::Negotiate, text, &no_settings)
            .expect("valid")
            .expect("enabled");
        assert_eq!(bindings.trigger, "request");
        assert_eq!(bindings.http_output, "response");
        let info = bindings.connection_info.expect("binding");
        assert_eq!(info.name, "info");
        assert_eq!(info.hub_name.as_deref(), Some("Chat"));
        assert_eq!(
            info.connection_string_setting,
            DEFAULT_CONNECTION_STRING_SETTING
        );
    }

    #[test]
    fn resolves_percent_settings_and_refuses_missing_ones() {
        let text = r#"{"bindings":[{"type":"httpTrigger","name":"req"},{"type":"http","direction":"out","name":"res"},
            {"type":"signalRConnectionInfo","direction":"in","name":"c","hubName":"%HUB%"}]}"#;
        let lookup = |name: &str| (name == "HUB").then(|| "lobby".to_owned());
        let bindings = parse_function_json(Function::Negotiate, text, &lookup)
            .expect("valid")
            .expect("enabled");
        assert_eq!(
            bindings.connection_info.and_then(|c| c.hub_name).as_deref(),
            Some("lobby")
        );
        let error = parse_function_json(Function::Negotiate, text, &no_settings)
            .expect_err("missing setting");
        assert!(error.to_string().contains("HUB"), "{error}");
    }

    fn with_hubs(function: Function, info: Option<&str>, output: Option<&str>) -> FunctionBindings {
        let binding = |name: &str, hub: &str| SignalRBinding {
            name: name.to_owned(),
            hub_name: Some(hub.to_owned()),
            connection_string_setting: DEFAULT_CONNECTION_STRING_SETTING.to_owned(),
        };
        FunctionBindings {
            function,
            trigger: "req".to_owned(),
            http_output: "res".to_owned(),
            connection_info: info.map(|hub| binding("connectionInfo", hub)),
            signalr_output: output.map(|hub| binding("signalRMessages", hub)),
        }
    }

    #[test]
    fn functions_that_name_one_hub_in_any_case_agree() {
        let functions = [
            with_hubs(Function::Negotiate, Some("chat"), None),
            with_hubs(Function::AddToGroup, None, Some("Chat")),
            with_hubs(Function::SendToGroup, None, Some("chat")),
        ];
        check_one_hub(&functions).expect("one hub");
    }

    #[test]
    fn functions_that_name_different_hubs_stop_start_up_naming_the_files() {
        let functions = [
            with_hubs(Function::Negotiate, Some("chat"), None),
            with_hubs(Function::AddToGroup, None, Some("chat")),
            with_hubs(Function::SendToGroup, None, Some("lobby")),
        ];
        let error = check_one_hub(&functions).expect_err("two hubs");
        let text = error.to_string();
        assert!(
            text.contains("`chat` in negotiate/function.json, addToGroup/function.json"),
            "{text}"
        );
        assert!(
            text.contains("`lobby` in sendToGroup/function.json"),
            "{text}"
        );
    }

    #[test]
    fn refuses_a_function_without_http_output() {
        let text = r#"{"bindings":[{"type":"httpTrigger","name":"req"}]}"#;
        let error =
            parse_function_json(Function::Negotiate, text, &no_settings).expect_err("no output");
        assert!(error.to_string().contains("http"), "{error}");
    }
}
