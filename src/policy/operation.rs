//! What a caller asks the policy: an [`Operation`] on a group or a user ([`Request`]).

use serde::Deserialize;

use crate::names::{GroupName, TargetUser};

/// Something a caller asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Operation {
    /// Add the caller to a group.
    Join,
    /// Remove the caller from a group.
    Leave,
    /// Send a message to a group.
    SendToGroup,
    /// Send a message to a user.
    SendToUser,
    /// Add another user to a group (admin).
    AddUserToGroup,
    /// Remove another user from a group (admin).
    RemoveUserFromGroup,
    /// Remove a user from every group (admin; the "ban" case).
    RemoveUserFromAllGroups,
}

impl Operation {
    /// The name used in policy files and error responses.
    pub fn name(self) -> &'static str {
        match self {
            Self::Join => "join",
            Self::Leave => "leave",
            Self::SendToGroup => "sendToGroup",
            Self::SendToUser => "sendToUser",
            Self::AddUserToGroup => "addUserToGroup",
            Self::RemoveUserFromGroup => "removeUserFromGroup",
            Self::RemoveUserFromAllGroups => "removeUserFromAllGroups",
        }
    }

    pub(super) fn targets_group(self) -> bool {
        !matches!(self, Self::SendToUser | Self::RemoveUserFromAllGroups)
    }

    pub(super) fn targets_other_user(self) -> bool {
        matches!(
            self,
            Self::SendToUser
                | Self::AddUserToGroup
                | Self::RemoveUserFromGroup
                | Self::RemoveUserFromAllGroups
        )
    }
}

/// What the caller wants to do, and to what.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The operation.
    pub operation: Operation,
    /// The group, for group operations.
    pub group: Option<&'a GroupName>,
    /// The target user, for operations on another user.
    pub user: Option<&'a TargetUser>,
}
