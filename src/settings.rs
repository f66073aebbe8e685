//! The environment view every settings type is parsed from, and the error they all return.
//!
//! A leaf: it imports nothing from the crate. Each module that needs settings defines its own
//! settings type beside the code that uses it (`identity::jwt::JwtSettings`, …) with a
//! `from_env(&Env, …)` constructor; `config` hands them the [`Env`] and assembles the result.
//! Parsing is in two stages: [`Env`] holds what the operator typed, the settings types what the
//! handler uses.

use std::time::Duration;

/// A configuration problem, naming the setting at fault.
#[derive(Debug, thiserror::Error)]
#[error("configuration error in `{setting}`: {message}")]
pub struct ConfigError {
    setting: String,
    message: String,
}

impl ConfigError {
    /// A problem with `setting`; `message` says what is wrong and how to fix it.
    pub fn new(setting: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            message: message.into(),
        }
    }

    /// The setting at fault.
    pub fn setting(&self) -> &str {
        &self.setting
    }

    /// What is wrong and how to fix it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The settings as typed, before validation: a lookup (the process environment, or a map in
/// tests) that trims values and treats empty as unset.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Env<'a> {
    /// Wraps a lookup function.
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self { lookup }
    }

    /// The raw lookup, for `%Setting%` references in `function.json`.
    pub fn lookup(&self) -> &'a dyn Fn(&str) -> Option<String> {
        self.lookup
    }

    /// A setting's value, trimmed; empty counts as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    }

    /// A setting that must be set; `hint` says what to set it to.
    pub fn require(&self, name: &str, hint: &str) -> Result<String, ConfigError> {
        self.get(name)
            .ok_or_else(|| ConfigError::new(name, format!("is not set; {hint}")))
    }

    /// `true` or `false` (any case), `default` when unset.
    pub fn bool(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self
            .get(name)
            .map(|value| value.to_ascii_lowercase())
            .as_deref()
        {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(ConfigError::new(
                name,
                format!("`{other}` must be true or false"),
            )),
        }
    }

    /// A whole number of seconds from 0 to `max`, `default` when unset.
    pub fn seconds(&self, name: &str, default: u64, max: u64) -> Result<Duration, ConfigError> {
        let Some(value) = self.get(name) else {
            return Ok(Duration::from_secs(default));
        };
        match value.parse::<u64>() {
            Ok(seconds) if seconds <= max => Ok(Duration::from_secs(seconds)),
            _ => Err(ConfigError::new(
                name,
                format!("`{value}` must be a whole number of seconds from 0 to {max}"),
            )),
        }
    }
}

/// Shortest accepted shared secret (`AUTH_HS256_SECRET`, `AUTH_ANONYMOUS_SECRET`), in bytes:
/// RFC 7518 §3.2 asks for a key at least as long as the hash output.
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// The items of a comma list, trimmed, empty items skipped.
pub fn comma_list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}
