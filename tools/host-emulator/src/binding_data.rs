//! The HTTP trigger's binding data and binding expressions (docs/protocol/functions-host.md §1.2
//! `Metadata`, §1.4).
//!
//! Binding data is a case-insensitive dictionary filled in a fixed order: the JSON body's
//! top-level properties, query parameters, route values, then `Query` and `Headers` only if no
//! such key exists yet, then `sys`. So a body property `headers` replaces the real headers for
//! `{headers.x}` expressions and `Metadata.Headers`, exactly as on the real host. The emulator
//! keeps this on purpose: it is what our handler must not trust.

use serde_json::{Map, Value};

/// An insertion-ordered dictionary with case-insensitive keys (`OrdinalIgnoreCase`).
#[derive(Debug, Clone, Default)]
pub struct BindingData {
    entries: Vec<(String, Value)>,
}

/// A binding expression that cannot be resolved; the invocation fails with this message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ExpressionError(pub String);

impl BindingData {
    /// Sets `key`, keeping the original key's spelling when it already exists (as the .NET
    /// dictionary indexer does).
    pub fn set(&mut self, key: &str, value: Value) {
        match self
            .entries
            .iter_mut()
            .find(|(existing, _)| existing.eq_ignore_ascii_case(key))
        {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key.to_owned(), value)),
        }
    }

    /// Adds `key` only when no key of that name exists yet.
    pub fn add_if_absent(&mut self, key: &str, value: Value) {
        if self.get(key).is_none() {
            self.entries.push((key.to_owned(), value));
        }
    }

    /// Case-insensitive lookup.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(existing, _)| existing.eq_ignore_ascii_case(key))
            .map(|(_, value)| value)
    }

    /// The entries in insertion order.
    pub fn entries(&self) -> &[(String, Value)] {
        &self.entries
    }

    /// Resolves a binding expression: `{path.to.value}` from the binding data (case-insensitive
    /// at every level) and `%Setting%` from app settings. Text outside braces is kept. A missing
    /// property fails, with the WebJobs SDK's message.
    pub fn resolve(
        &self,
        template: &str,
        settings: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, ExpressionError> {
        let mut result = String::new();
        let mut chars = template.char_indices().peekable();
        while let Some((index, character)) = chars.next() {
            match character {
                '{' => {
                    let rest = &template[index + 1..];
                    let end = rest.find('}').ok_or_else(|| {
                        ExpressionError(format!("Invalid template '{template}': missing '}}'"))
                    })?;
                    let expression = &rest[..end];
                    result.push_str(&self.resolve_path(expression)?);
                    for _ in 0..expression.chars().count() + 1 {
                        chars.next();
                    }
                }
                '%' => {
                    let rest = &template[index + 1..];
                    let end = rest.find('%').ok_or_else(|| {
                        ExpressionError(format!("Invalid template '{template}': missing '%'"))
                    })?;
                    let name = &rest[..end];
                    let value = settings(name).ok_or_else(|| {
                        ExpressionError(format!("'%{name}%' does not resolve to a value."))
                    })?;
                    result.push_str(&value);
                    for _ in 0..name.chars().count() + 1 {
                        chars.next();
                    }
                }
                other => result.push(other),
            }
        }
        Ok(result)
    }

    fn resolve_path(&self, expression: &str) -> Result<String, ExpressionError> {
        let mut parts = expression.split('.');
        let first = parts.next().unwrap_or_default().trim();
        let missing = |name: &str| {
            ExpressionError(format!(
                "Error while accessing '{name}': property doesn't exist."
            ))
        };
        let mut current = self
            .get(first)
            .ok_or_else(|| ExpressionError(format!("No value for named parameter '{first}'.")))?;
        for part in parts {
            current = current
                .as_object()
                .and_then(|map| get_ignore_case(map, part))
                .ok_or_else(|| missing(part))?;
        }
        Ok(match current {
            Value::String(text) => text.clone(),
            other => serde_json::to_string_pretty(other).unwrap_or_default(),
        })
    }
}

fn get_ignore_case<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(_, value)| value)
    })
}

/// A body property value as binding data holds it ([EXT-HTTP] `ConvertPropertyValue`): objects
/// stay objects, anything else becomes its .NET `ToString()` text. Arrays are skipped (`None`).
pub fn body_property_value(value: &Value) -> Option<Value> {
    match value {
        Value::Array(_) => None,
        Value::Object(_) => Some(value.clone()),
        Value::String(text) => Some(Value::String(text.clone())),
        Value::Bool(true) => Some(Value::String("True".into())),
        Value::Bool(false) => Some(Value::String("False".into())),
        Value::Null => Some(Value::String(String::new())),
        Value::Number(number) => Some(Value::String(number.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn no_settings(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_body_headers_object_wins_over_the_real_headers() {
        let mut data = BindingData::default();
        data.set("headers", json!({"x-ms-client-principal-id": "mallory"}));
        data.add_if_absent("Headers", json!({"X-Ms-Client-Principal-Id": "alice"}));
        assert_eq!(
            data.resolve("{headers.x-ms-client-principal-id}", &no_settings),
            Ok("mallory".to_owned())
        );
        assert_eq!(data.entries().len(), 1);
    }

    #[test]
    fn later_sources_overwrite_earlier_ones_case_insensitively() {
        let mut data = BindingData::default();
        data.set("Group", json!("from-body"));
        data.set("group", json!("from-route"));
        assert_eq!(data.entries(), &[("Group".to_owned(), json!("from-route"))]);
    }

    #[test]
    fn missing_properties_fail_with_the_sdk_message() {
        let mut data = BindingData::default();
        data.set("Headers", json!({"accept": "*/*"}));
        let error = data
            .resolve("{headers.x-ms-client-principal-id}", &no_settings)
            .expect_err("missing header");
        assert!(error.0.contains("property doesn't exist"), "{error}");
        assert!(data.resolve("{nothing}", &no_settings).is_err());
        assert!(data.resolve("{unterminated", &no_settings).is_err());
    }

    #[test]
    fn settings_and_literal_text_resolve() {
        let data = BindingData::default();
        let settings = |name: &str| (name == "HUB").then(|| "chat".to_owned());
        assert_eq!(data.resolve("%HUB%-x", &settings), Ok("chat-x".to_owned()));
        assert!(data.resolve("%MISSING%", &settings).is_err());
    }

    #[test]
    fn body_values_convert_like_dotnet() {
        assert_eq!(body_property_value(&json!(true)), Some(json!("True")));
        assert_eq!(body_property_value(&json!(4)), Some(json!("4")));
        assert_eq!(body_property_value(&json!([1])), None);
        assert_eq!(body_property_value(&json!({"a":1})), Some(json!({"a":1})));
    }
}
