//! SignalR output-binding items, shaped exactly as the extension reads them
//! (`docs/protocol/functions-host.md` §3.5).
//!
//! The types make the dangerous shapes unrepresentable: a message always has a recipient (the
//! extension broadcasts a message whose `connectionId`, `userId` and `groupName` are all empty),
//! a message always has a [`Sender`] (which only a [`VerifiedUser`] can give), and `removeAll`
//! only exists for a user (with a `connectionId` it silently does nothing).
//!
//! With [`SenderStamp::FirstArgument`] (the default) the handler writes the sender as the first
//! argument, `{"sender": "<verified user id>", "source": "<identity source>"}`, before the
//! caller's arguments: receivers read `arguments[0]`, which no caller can write.

use serde::Serialize;
use serde_json::{Value, json};

use crate::identity::{IdentitySource, VerifiedUser};
use crate::names::{GroupName, TargetUser};
use crate::settings::{ConfigError, Env};

/// A group action item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupAction {
    /// Add a user to a group.
    Add(TargetUser, GroupName),
    /// Remove a user from a group.
    Remove(TargetUser, GroupName),
    /// Remove a user from all groups.
    RemoveAll(TargetUser),
}

/// Who receives a message. There is deliberately no "everyone".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// Every connection in a group.
    Group(GroupName),
    /// Every connection of a user.
    User(TargetUser),
}

/// The verified author of a message. Its fields are private and its only constructor takes a
/// [`VerifiedUser`], so a sender can never come from a body, a header or `Metadata`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    user_id: String,
    source: IdentitySource,
}

impl Sender {
    /// The sender of a message written by `user`.
    pub fn of(user: &VerifiedUser) -> Self {
        Self {
            user_id: user.user_id().to_owned(),
            source: user.source(),
        }
    }

    /// The argument the handler writes first: `{"sender", "source"}`.
    fn stamp(&self) -> Value {
        json!({"sender": self.user_id, "source": self.source.name()})
    }
}

/// Whether messages carry their sender (`MESSAGE_SENDER_STAMP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderStamp {
    /// The default: the first argument is `{"sender", "source"}`, then the caller's arguments.
    FirstArgument,
    /// Opt-out (`MESSAGE_SENDER_STAMP=false`): the caller's arguments only, for apps whose
    /// receivers need the raw shape. Receivers then cannot tell who sent a message.
    Off,
}

/// A message item.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Who wrote it (verified).
    pub sender: Sender,
    /// Client method to invoke.
    pub target: String,
    /// The caller's arguments (the sender stamp is added when serialising).
    pub arguments: Vec<Value>,
    /// Who receives it.
    pub recipient: Recipient,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupActionItem<'a> {
    action: &'static str,
    user_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    group_name: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageItem<'a> {
    target: &'a str,
    arguments: &'a [Value],
    #[serde(skip_serializing_if = "Option::is_none")]
    group_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
}

impl GroupAction {
    /// The binding item.
    pub fn to_item(&self) -> Value {
        let item = match self {
            Self::Add(user, group) => GroupActionItem {
                action: "add",
                user_id: user.as_str(),
                group_name: Some(group.as_str()),
            },
            Self::Remove(user, group) => GroupActionItem {
                action: "remove",
                user_id: user.as_str(),
                group_name: Some(group.as_str()),
            },
            Self::RemoveAll(user) => GroupActionItem {
                action: "removeAll",
                user_id: user.as_str(),
                group_name: None,
            },
        };
        serde_json::to_value(item).unwrap_or(Value::Null)
    }
}

impl Message {
    /// The binding item; with [`SenderStamp::FirstArgument`] its first argument is the sender.
    pub fn to_item(&self, stamp: SenderStamp) -> Value {
        let (group_name, user_id) = match &self.recipient {
            Recipient::Group(group) => (Some(group.as_str()), None),
            Recipient::User(user) => (None, Some(user.as_str())),
        };
        let arguments = match stamp {
            SenderStamp::FirstArgument => std::iter::once(self.sender.stamp())
                .chain(self.arguments.iter().cloned())
                .collect(),
            SenderStamp::Off => self.arguments.clone(),
        };
        serde_json::to_value(MessageItem {
            target: &self.target,
            arguments: &arguments,
            group_name,
            user_id,
        })
        .unwrap_or(Value::Null)
    }
}

impl SenderStamp {
    /// `MESSAGE_SENDER_STAMP`: `true` (default) or `false`; anything else stops start-up, since
    /// a typo must not silently switch off the sender receivers rely on.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        const SETTING: &str = "MESSAGE_SENDER_STAMP";
        match env
            .get(SETTING)
            .map(|value| value.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("true") => Ok(Self::FirstArgument),
            Some("false") => Ok(Self::Off),
            Some(other) => Err(ConfigError::new(
                SETTING,
                format!(
                    "`{other}` must be true (messages start with the verified sender, the default) or false (the caller's arguments only; receivers cannot tell who sent a message)"
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn group(name: &str) -> GroupName {
        GroupName::parse(name).expect("valid")
    }

    fn user(id: &str) -> TargetUser {
        TargetUser::parse(id).expect("valid")
    }

    #[test]
    fn group_actions_have_the_extension_shape() {
        assert_eq!(
            GroupAction::Add(user("u-42"), group("room-42")).to_item(),
            json!({"action": "add", "userId": "u-42", "groupName": "room-42"})
        );
        assert_eq!(
            GroupAction::Remove(user("u"), group("g")).to_item(),
            json!({"action": "remove", "userId": "u", "groupName": "g"})
        );
        assert_eq!(
            GroupAction::RemoveAll(user("u")).to_item(),
            json!({"action": "removeAll", "userId": "u"})
        );
    }

    fn alice() -> Sender {
        Sender::of(&VerifiedUser::for_tests("alice", json!({})))
    }

    #[test]
    fn messages_always_name_one_recipient() {
        let to_group = Message {
            sender: alice(),
            target: "newMessage".into(),
            arguments: vec![json!({"text": "hi"})],
            recipient: Recipient::Group(group("room-42")),
        };
        assert_eq!(
            to_group.to_item(SenderStamp::Off),
            json!({"target": "newMessage", "arguments": [{"text": "hi"}], "groupName": "room-42"})
        );
        let to_user = Message {
            sender: alice(),
            target: "t".into(),
            arguments: vec![],
            recipient: Recipient::User(user("bob")),
        };
        assert_eq!(
            to_user.to_item(SenderStamp::Off),
            json!({"target": "t", "arguments": [], "userId": "bob"})
        );
    }

    #[test]
    fn the_verified_sender_is_the_first_argument_and_caller_claims_follow_it() {
        let message = Message {
            sender: alice(),
            target: "newMessage".into(),
            arguments: vec![json!({"sender": "root", "from": "root", "text": "hi"})],
            recipient: Recipient::Group(group("room-42")),
        };
        assert_eq!(
            message.to_item(SenderStamp::FirstArgument),
            json!({"target": "newMessage", "arguments": [
                {"sender": "alice", "source": "jwt"},
                {"sender": "root", "from": "root", "text": "hi"}
            ], "groupName": "room-42"})
        );
    }
}
