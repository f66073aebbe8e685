//! Who may do what to which group: a declarative policy, loaded and validated at start-up.
//!
//! The model is ASP.NET Core SignalR's `[Authorize("Policy")]` and Web PubSub's wildcard group
//! roles, for serverless functions: each [`Operation`] is allowed only by a rule that names it,
//! whose patterns match the target, and whose requirements the verified caller meets. Anything
//! else is denied (default deny).
//!
//! The file (`policy.json`, or the file `POLICY_FILE` names) looks like:
//!
//! ```json
//! {
//!   "rolesClaim": "roles",
//!   "rules": [
//!     { "operations": ["join", "leave"], "groups": ["room-*", "user.{userId}.**"] },
//!     { "operations": ["sendToGroup"], "groups": ["room-*"], "require": { "senderIsMember": true } },
//!     { "operations": ["sendToUser"], "users": ["**"] },
//!     { "operations": ["addUserToGroup", "removeUserFromGroup", "removeUserFromAllGroups"],
//!       "groups": ["**"], "users": ["**"], "require": { "roles": ["admin"] } }
//!   ]
//! }
//! ```

mod file;
mod loading;
mod operation;
pub mod pattern;
mod upstream;

use std::path::Path;

use serde::Deserialize;

pub use self::file::DEFAULT_POLICY;
pub use self::operation::{Operation, Request};

use crate::identity::VerifiedUser;
use crate::names::GroupName;
use crate::policy::pattern::{FilledPattern, Pattern};
use crate::settings::ConfigError;

/// The policy's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed outright.
    Allow,
    /// Allowed if the caller is a member of the group (checked against the service).
    AllowIfMember,
    /// Denied; the reason is for the log only.
    Deny(Denial),
}

/// Why an operation is denied, for the log (the caller gets one `forbidden` answer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// No rule names the operation and matches its target (default deny).
    #[error("no policy rule names `{}` for this target (default deny)", .0.name())]
    NoRule(Operation),
    /// A group operation without a group.
    #[error("the request names no group")]
    NoGroup,
    /// An operation on another user without one.
    #[error("the request names no user")]
    NoUser,
    /// The matching rule is for signed-in users and the caller is an anonymous visitor.
    #[error("the rule is for signed-in users")]
    SignedInOnly,
    /// The caller has none of the rule's roles.
    #[error("the caller has none of the roles {0:?}")]
    MissingRole(Vec<String>),
    /// A verified claim does not meet the rule.
    #[error("claim `{0}` does not meet the rule")]
    Claim(String),
    /// A membership rule, but no group or hub to check it against.
    #[error("membership rule without a group or hub")]
    MembershipUncheckable,
    /// The sender is not a member of the group (answered by the service).
    #[error("the sender is not a member of {0:?}")]
    NotAMember(String),
    /// No `invoke` rule names the hub method (default deny on the upstream path).
    #[error("no `invoke` rule allows hub method {0:?}")]
    NoInvokeRule(String),
    /// An upstream operation that acts for a user, on a connection that has none.
    #[error("the connection has no user")]
    NoConnectionUser,
}

/// The loaded policy.
#[derive(Debug)]
pub struct Policy {
    roles_claim: String,
    rules: Vec<Rule>,
    web_pubsub_connect: ConnectTemplates,
    /// The SignalR upstream's `invoke` and `onConnect` sections (`upstream.rs`).
    upstream: upstream::UpstreamPolicy,
    /// Where the policy came from, for the start-up log.
    pub origin: String,
}

#[derive(Debug)]
struct Rule {
    operations: Vec<Operation>,
    groups: Vec<Pattern>,
    users: Vec<Pattern>,
    require: Requirements,
}

#[derive(Debug, Default)]
struct Requirements {
    allow_anonymous: bool,
    roles: Vec<String>,
    claims: Vec<ClaimRequirement>,
    sender_is_member: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClaimRequirement {
    claim: String,
    #[serde(default)]
    equals: Option<String>,
    #[serde(default)]
    one_of: Option<Vec<String>>,
    #[serde(default)]
    ends_with: Option<String>,
    #[serde(default)]
    ignore_case: bool,
}

#[derive(Debug, Default)]
struct ConnectTemplates {
    groups: Vec<Pattern>,
    roles: Vec<Pattern>,
}

/// Groups and roles for a Web PubSub connection, filled from the verified user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebPubSubGrants {
    /// Groups the connection joins at connect.
    pub groups: Vec<String>,
    /// Web PubSub roles of the connection.
    pub roles: Vec<String>,
}

impl Policy {
    /// Loads `path`; `setting` names where the path came from, for error messages.
    pub fn load(path: &Path, setting: &str) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            ConfigError::new(
                setting,
                format!("cannot read the policy file `{}`: {error}", path.display()),
            )
        })?;
        Self::parse(&text, &path.display().to_string()).map_err(|message| {
            ConfigError::new(
                setting,
                format!("policy file `{}`: {message}", path.display()),
            )
        })
    }

    /// The built-in default policy.
    pub fn default_policy() -> Self {
        Self::parse(
            DEFAULT_POLICY,
            "built-in default (only groups under user.{userId})",
        )
        .expect("the built-in policy is valid")
    }

    /// Parses and validates policy JSON (see [`file`]).
    pub fn parse(text: &str, origin: &str) -> Result<Self, String> {
        file::parse(text, origin)
    }

    /// Decides `request` for `user`. Cheap checks only; [`Decision::AllowIfMember`] asks the
    /// caller to confirm membership with the service.
    pub fn decide(&self, user: &VerifiedUser, request: &Request) -> Decision {
        let mut needs_membership = false;
        let mut reason = Denial::NoRule(request.operation);
        for rule in self
            .rules
            .iter()
            .filter(|rule| rule.operations.contains(&request.operation))
        {
            // A missing target is denied, never treated as "matches everything".
            if request.operation.targets_group() {
                let Some(group) = request.group else {
                    return Decision::Deny(Denial::NoGroup);
                };
                if !any_matches(&rule.groups, user, group.as_str()) {
                    continue;
                }
            }
            if request.operation.targets_other_user() {
                let Some(target) = request.user else {
                    return Decision::Deny(Denial::NoUser);
                };
                if !any_matches(&rule.users, user, target.as_str()) {
                    continue;
                }
            }
            match self.requirements_met(&rule.require, user) {
                Ok(()) if rule.require.sender_is_member => needs_membership = true,
                Ok(()) => return Decision::Allow,
                Err(why) => reason = why,
            }
        }
        if needs_membership {
            Decision::AllowIfMember
        } else {
            Decision::Deny(reason)
        }
    }

    /// The groups a user whose id is `user_id` and whose claims were `claims` may have joined
    /// by a `join` rule: each `join` rule's wildcard-free group patterns, filled from those
    /// claims. Refresh checks exactly these for re-authorization. A pattern with `*` or `**`
    /// names no group it could enumerate (and the REST API cannot list a user's groups), so
    /// groups joined through one are not re-checked; nor are groups an admin added the user to.
    pub fn groups_joined_by_rule<'c>(
        &self,
        user_id: &str,
        claims: &dyn Fn(&str) -> Vec<&'c str>,
    ) -> Vec<GroupName> {
        let mut groups: Vec<GroupName> = Vec::new();
        for rule in self
            .rules
            .iter()
            .filter(|rule| rule.operations.contains(&Operation::Join))
        {
            for pattern in rule.groups.iter().filter(|pattern| pattern.is_concrete()) {
                let name = pattern
                    .fill_with(user_id, claims)
                    .and_then(|filled| filled.concrete_value())
                    .and_then(|name| GroupName::parse(&name).ok());
                if let Some(name) = name.filter(|name| !groups.contains(name)) {
                    groups.push(name);
                }
            }
        }
        groups
    }

    /// Groups and roles a Web PubSub connection of `user` gets at connect.
    pub fn web_pubsub_connect(&self, user: &VerifiedUser) -> WebPubSubGrants {
        let fill = |patterns: &[Pattern]| -> Vec<String> {
            patterns
                .iter()
                .filter_map(|pattern| {
                    pattern
                        .fill(user)
                        .and_then(|filled| filled.concrete_value())
                })
                .collect()
        };
        WebPubSubGrants {
            groups: fill(&self.web_pubsub_connect.groups),
            roles: fill(&self.web_pubsub_connect.roles),
        }
    }

    fn requirements_met(&self, require: &Requirements, user: &VerifiedUser) -> Result<(), Denial> {
        if !user.is_signed_in() && !require.allow_anonymous {
            return Err(Denial::SignedInOnly);
        }
        if !require.roles.is_empty() {
            let roles = user.claim_strings(&self.roles_claim);
            if !require
                .roles
                .iter()
                .any(|role| roles.contains(&role.as_str()))
            {
                return Err(Denial::MissingRole(require.roles.clone()));
            }
        }
        for condition in &require.claims {
            let values = user.claim_strings(&condition.claim);
            if !values.iter().any(|value| condition.holds(value)) {
                return Err(Denial::Claim(condition.claim.clone()));
            }
        }
        Ok(())
    }
}

impl ClaimRequirement {
    fn holds(&self, value: &str) -> bool {
        let same = |a: &str, b: &str| {
            if self.ignore_case {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        if let Some(expected) = &self.equals {
            return same(value, expected);
        }
        if let Some(options) = &self.one_of {
            return options.iter().any(|option| same(value, option));
        }
        if let Some(suffix) = &self.ends_with {
            let (value, suffix) = if self.ignore_case {
                (value.to_ascii_lowercase(), suffix.to_ascii_lowercase())
            } else {
                (value.to_owned(), suffix.clone())
            };
            return value.len() > suffix.len() && value.ends_with(&suffix);
        }
        false
    }
}

fn any_matches(patterns: &[Pattern], user: &VerifiedUser, subject: &str) -> bool {
    patterns
        .iter()
        .filter_map(|pattern| pattern.fill(user))
        .any(|filled: FilledPattern| filled.matches(subject))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::names::{GroupName, TargetUser};
    use crate::policy::pattern::tests::user;

    const CHAT: &str = r#"{
      "rules": [
        { "operations": ["join", "leave"], "groups": ["room-*", "user.{userId}.**"] },
        { "operations": ["sendToGroup"], "groups": ["room-*"], "require": { "senderIsMember": true } },
        { "operations": ["sendToGroup"], "groups": ["announcements"], "require": { "roles": ["admin"] } },
        { "operations": ["sendToUser"], "users": ["**"], "require": {
            "claims": [{ "claim": "email", "endsWith": "@contoso.com", "ignoreCase": true }] } },
        { "operations": ["addUserToGroup", "removeUserFromAllGroups"], "groups": ["**"], "users": ["**"],
          "require": { "roles": ["admin"] } }
      ],
      "webPubSubConnect": { "groups": ["user.{userId}"], "roles": ["webpubsub.joinLeaveGroup.user.{userId}"] }
    }"#;

    fn decide(
        policy: &Policy,
        user: &VerifiedUser,
        operation: Operation,
        group: Option<&str>,
        target: Option<&str>,
    ) -> Decision {
        let group = group.map(|g| GroupName::parse(g).expect("valid group"));
        let target = target.map(|u| TargetUser::parse(u).expect("valid user"));
        policy.decide(
            user,
            &Request {
                operation,
                group: group.as_ref(),
                user: target.as_ref(),
            },
        )
    }

    #[test]
    fn joins_follow_group_patterns_and_templates() {
        let policy = Policy::parse(CHAT, "test").expect("valid");
        let alice = user("alice", json!({}));
        assert_eq!(
            decide(&policy, &alice, Operation::Join, Some("room-1"), None),
            Decision::Allow
        );
        assert_eq!(
            decide(
                &policy,
                &alice,
                Operation::Join,
                Some("user.alice.inbox"),
                None
            ),
            Decision::Allow
        );
        assert!(matches!(
            decide(
                &policy,
                &alice,
                Operation::Join,
                Some("user.bob.inbox"),
                None
            ),
            Decision::Deny(_)
        ));
        assert!(matches!(
            decide(&policy, &alice, Operation::Join, Some("admins"), None),
            Decision::Deny(_)
        ));
    }

    #[test]
    fn roles_come_from_an_array_or_a_string_claim() {
        let policy = Policy::parse(CHAT, "test").expect("valid");
        let array = user("a", json!({"roles": ["reader", "admin"]}));
        let string = user("b", json!({"roles": "admin"}));
        let none = user("c", json!({"roles": ["reader"]}));
        for admin in [&array, &string] {
            assert_eq!(
                decide(
                    &policy,
                    admin,
                    Operation::SendToGroup,
                    Some("announcements"),
                    None
                ),
                Decision::Allow
            );
        }
        assert!(matches!(
            decide(
                &policy,
                &none,
                Operation::SendToGroup,
                Some("announcements"),
                None
            ),
            Decision::Deny(_)
        ));
    }

    #[test]
    fn claim_rules_check_verified_claims() {
        let policy = Policy::parse(CHAT, "test").expect("valid");
        let inside = user("a", json!({"email": "a@Contoso.com"}));
        let outside = user("b", json!({"email": "b@contoso.com.evil.example"}));
        let bare = user("c", json!({"email": "@contoso.com"}));
        assert_eq!(
            decide(&policy, &inside, Operation::SendToUser, None, Some("bob")),
            Decision::Allow
        );
        assert!(matches!(
            decide(&policy, &outside, Operation::SendToUser, None, Some("bob")),
            Decision::Deny(_)
        ));
        assert!(matches!(
            decide(&policy, &bare, Operation::SendToUser, None, Some("bob")),
            Decision::Deny(_)
        ));
    }

    #[test]
    fn membership_rules_defer_to_the_service() {
        let policy = Policy::parse(CHAT, "test").expect("valid");
        let alice = user("alice", json!({}));
        assert_eq!(
            decide(
                &policy,
                &alice,
                Operation::SendToGroup,
                Some("room-9"),
                None
            ),
            Decision::AllowIfMember
        );
    }

    #[test]
    fn admin_operations_need_the_role() {
        let policy = Policy::parse(CHAT, "test").expect("valid");
        let admin = user("root", json!({"roles": ["admin"]}));
        let alice = user("alice", json!({}));
        assert_eq!(
            decide(
                &policy,
                &admin,
                Operation::AddUserToGroup,
                Some("room-1"),
                Some("bob")
            ),
            Decision::Allow
        );
        assert!(matches!(
            decide(
                &policy,
                &alice,
                Operation::AddUserToGroup,
                Some("room-1"),
                Some("bob")
            ),
            Decision::Deny(_)
        ));
        assert_eq!(
            decide(
                &policy,
                &admin,
                Operation::RemoveUserFromAllGroups,
                None,
                Some("bob")
            ),
            Decision::Allow
        );
        assert!(matches!(
            decide(
                &policy,
                &alice,
                Operation::RemoveUserFromGroup,
                Some("room-1"),
                Some("bob")
            ),
            Decision::Deny(_)
        ));
    }

    #[test]
    fn the_default_policy_allows_only_the_callers_own_groups() {
        let policy = Policy::default_policy();
        let alice = user("alice", json!({}));
        assert_eq!(
            decide(&policy, &alice, Operation::Join, Some("user.alice"), None),
            Decision::Allow
        );
        assert_eq!(
            decide(
                &policy,
                &alice,
                Operation::SendToGroup,
                Some("user.alice.notes"),
                None
            ),
            Decision::Allow
        );
        for group in ["user.bob", "room-1", "user.alice-evil"] {
            assert!(
                matches!(
                    decide(&policy, &alice, Operation::Join, Some(group), None),
                    Decision::Deny(_)
                ),
                "{group}"
            );
        }
        assert!(matches!(
            decide(&policy, &alice, Operation::SendToUser, None, Some("bob")),
            Decision::Deny(_)
        ));
    }

    #[test]
    fn web_pubsub_grants_are_filled_from_the_user() {
        let policy = Policy::parse(CHAT, "test").expect("valid");
        let grants = policy.web_pubsub_connect(&user("alice", json!({})));
        assert_eq!(grants.groups, vec!["user.alice"]);
        assert_eq!(grants.roles, vec!["webpubsub.joinLeaveGroup.user.alice"]);
    }

    #[test]
    fn the_groups_joined_by_rule_are_the_concrete_join_patterns_filled_from_the_given_claims() {
        let policy = Policy::parse(
            r#"{ "rules": [
              { "operations": ["join", "leave"], "groups": ["room-*", "user.{userId}", "lobby"] },
              { "operations": ["join"], "groups": ["team.{claim:team}", "team.{claim:team}.**"] },
              { "operations": ["join"], "groups": ["staff"], "require": { "roles": ["staff"] } },
              { "operations": ["sendToGroup"], "groups": ["news"] }
            ] }"#,
            "test",
        )
        .expect("valid");
        let old = |name: &str| {
            if name == "team" {
                vec!["red"]
            } else {
                Vec::new()
            }
        };
        let names: Vec<String> = policy
            .groups_joined_by_rule("alice", &old)
            .iter()
            .map(|group| group.as_str().to_owned())
            .collect();
        assert_eq!(names, ["user.alice", "lobby", "team.red", "staff"]);
        // Without the claim its template names nothing; a claim with two values names nothing.
        let none = |_: &str| Vec::new();
        assert!(
            !policy
                .groups_joined_by_rule("alice", &none)
                .iter()
                .any(|group| group.as_str().starts_with("team."))
        );
        let two = |name: &str| {
            if name == "team" {
                vec!["a", "b"]
            } else {
                Vec::new()
            }
        };
        assert_eq!(policy.groups_joined_by_rule("alice", &two).len(), 3);
    }
}
