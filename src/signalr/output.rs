//! SignalR output-binding items, shaped exactly as the extension reads them
//! (`shared/spec/functions-custom-handler.md` §3.5).
//!
//! The types make the dangerous shapes unrepresentable: a message always has a recipient (the
//! extension broadcasts a message whose `connectionId`, `userId` and `groupName` are all empty),
//! and `removeAll` only exists for a user (with a `connectionId` it silently does nothing).

use serde::Serialize;
use serde_json::Value;

use crate::names::{GroupName, TargetUser};

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

/// A message item.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Client method to invoke.
    pub target: String,
    /// Its arguments.
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
    /// The binding item.
    pub fn to_item(&self) -> Value {
        let (group_name, user_id) = match &self.recipient {
            Recipient::Group(group) => (Some(group.as_str()), None),
            Recipient::User(user) => (None, Some(user.as_str())),
        };
        serde_json::to_value(MessageItem {
            target: &self.target,
            arguments: &self.arguments,
            group_name,
            user_id,
        })
        .unwrap_or(Value::Null)
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

    #[test]
    fn messages_always_name_one_recipient() {
        let to_group = Message {
            target: "newMessage".into(),
            arguments: vec![json!({"text": "hi"})],
            recipient: Recipient::Group(group("room-42")),
        };
        assert_eq!(
            to_group.to_item(),
            json!({"target": "newMessage", "arguments": [{"text": "hi"}], "groupName": "room-42"})
        );
        let to_user = Message {
            target: "t".into(),
            arguments: vec![],
            recipient: Recipient::User(user("bob")),
        };
        assert_eq!(
            to_user.to_item(),
            json!({"target": "t", "arguments": [], "userId": "bob"})
        );
    }
}
