//! Names from requests, parsed once at the boundary (docs/protocol/signalr-service.md §4.4).

/// A hub name, lowercased: the service treats `Chat` and `chat` as one hub (docs/protocol/signalr-service.md §4.4).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HubName(String);

/// A group name: 1–1024 characters, not all whitespace, compared case-sensitively
/// (docs/protocol/signalr-service.md §4.4).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GroupName(String);

/// A user id: non-empty, at most 1024 characters, compared case-sensitively (docs/protocol/signalr-service.md §4.4).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UserId(String);

/// Why a name was refused; the text goes into the 400 body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The hub (or application) name does not match `` ^[A-Za-z][A-Za-z0-9_`,.[\]]{0,127}$ ``.
    #[error("Invalid value of '{0}'.")]
    InvalidHub(&'static str),
    /// The group name is empty, longer than 1024 characters, or only whitespace.
    #[error("Invalid value of 'group': it must be 1 to 1024 characters and not only whitespace.")]
    InvalidGroup,
    /// The user id is empty or longer than 1024 characters.
    #[error("Invalid value of 'user': it must be 1 to 1024 characters.")]
    InvalidUser,
    /// The connection id is empty.
    #[error("Invalid value of 'connectionId': it must not be empty.")]
    InvalidConnectionId,
}

const MAX_NAME_CHARS: usize = 1024;

fn is_valid_hub_like(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    first.is_ascii_alphabetic()
        && name.len() <= 128
        && chars
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '`' | ',' | '.' | '[' | ']'))
}

impl HubName {
    /// Parses a hub name, optionally prefixed by an application name as `{app}_{hub}`
    /// (docs/protocol/signalr-service.md §4.4).
    pub fn parse(hub: &str, application: Option<&str>) -> Result<Self, NameError> {
        if !is_valid_hub_like(hub) {
            return Err(NameError::InvalidHub("hub"));
        }
        match application {
            None => Ok(Self(hub.to_ascii_lowercase())),
            Some(application) if is_valid_hub_like(application) => Ok(Self(format!(
                "{}_{}",
                application.to_ascii_lowercase(),
                hub.to_ascii_lowercase()
            ))),
            Some(_) => Err(NameError::InvalidHub("application")),
        }
    }

    /// The lowercased name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl GroupName {
    /// Parses a group name.
    pub fn parse(group: &str) -> Result<Self, NameError> {
        let count = group.chars().count();
        if count == 0 || count > MAX_NAME_CHARS || group.chars().all(char::is_whitespace) {
            return Err(NameError::InvalidGroup);
        }
        Ok(Self(group.to_owned()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl UserId {
    /// Parses a user id.
    pub fn parse(user: &str) -> Result<Self, NameError> {
        let count = user.chars().count();
        if count == 0 || count > MAX_NAME_CHARS {
            return Err(NameError::InvalidUser);
        }
        Ok(Self(user.to_owned()))
    }

    /// The id as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks a connection id from a REST path: the swagger only asks for at least one character.
pub fn check_connection_id(connection_id: &str) -> Result<&str, NameError> {
    if connection_id.is_empty() {
        return Err(NameError::InvalidConnectionId);
    }
    Ok(connection_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_names_follow_the_swagger_pattern() {
        for good in ["chat", "Chat1", "a", "a_b", "a`b,c.d[e]"] {
            assert!(HubName::parse(good, None).is_ok(), "refused {good:?}");
        }
        let too_long = format!("a{}", "b".repeat(128));
        for (bad, description) in [
            ("", "empty"),
            ("1chat", "leading digit"),
            ("_chat", "leading underscore"),
            ("my-hub", "hyphen"),
            ("chat room", "space"),
            ("chät", "non-ASCII"),
            (too_long.as_str(), "129 characters"),
        ] {
            assert_eq!(
                HubName::parse(bad, None),
                Err(NameError::InvalidHub("hub")),
                "accepted a hub name with {description}"
            );
        }
    }

    #[test]
    fn hub_names_are_lowercased_and_prefixed_by_the_application() {
        assert_eq!(
            HubName::parse("Chat", None).map(|h| h.0),
            Ok("chat".to_owned())
        );
        assert_eq!(
            HubName::parse("Chat", Some("MyApp")).map(|h| h.0),
            Ok("myapp_chat".to_owned())
        );
        assert_eq!(
            HubName::parse("chat", Some("my-app")),
            Err(NameError::InvalidHub("application"))
        );
    }

    #[test]
    fn group_names_are_1_to_1024_characters_and_not_only_whitespace() {
        assert!(GroupName::parse("room-1").is_ok());
        assert!(GroupName::parse(" a ").is_ok());
        assert!(GroupName::parse(&"é".repeat(1024)).is_ok());
        for (bad, description) in [
            (String::new(), "empty"),
            ("   ".to_owned(), "only spaces"),
            ("\t\n".to_owned(), "only tabs and newlines"),
            ("g".repeat(1025), "1025 characters"),
        ] {
            assert_eq!(
                GroupName::parse(&bad),
                Err(NameError::InvalidGroup),
                "{description}"
            );
        }
    }

    #[test]
    fn user_ids_are_1_to_1024_characters() {
        assert!(UserId::parse("alice").is_ok());
        assert_eq!(UserId::parse(""), Err(NameError::InvalidUser));
        assert_eq!(
            UserId::parse(&"u".repeat(1025)),
            Err(NameError::InvalidUser)
        );
        assert_eq!(check_connection_id(""), Err(NameError::InvalidConnectionId));
    }
}
