//! The policy file's JSON schema and its validation: what an operator may write, checked once at
//! start-up, so [`Policy::decide`](super::Policy::decide) never meets a rule it cannot apply.

use serde::Deserialize;

use super::upstream::{self, InvokeRuleFile, OnConnectFile};
use super::{ClaimRequirement, ConnectTemplates, Operation, Policy, Requirements, Rule};
use crate::policy::pattern::Pattern;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    roles_claim: Option<String>,
    rules: Vec<RuleFile>,
    #[serde(default, rename = "webPubSubConnect")]
    web_pubsub_connect: Option<ConnectFile>,
    /// The SignalR upstream's sections, validated in `upstream.rs`.
    #[serde(default)]
    invoke: Vec<InvokeRuleFile>,
    #[serde(default)]
    on_connect: Option<OnConnectFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RuleFile {
    operations: Vec<Operation>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    require: Option<RequireFile>,
}

/// A rule's `require` object, shared by the operation rules and the `invoke` rules.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RequireFile {
    #[serde(default)]
    pub(super) allow_anonymous: bool,
    #[serde(default)]
    pub(super) roles: Vec<String>,
    #[serde(default)]
    pub(super) claims: Vec<ClaimRequirement>,
    #[serde(default)]
    pub(super) sender_is_member: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConnectFile {
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    roles: Vec<String>,
}

/// The policy used when the app ships none: each signed-in user may join, leave and send to
/// their own groups under `user.{userId}`, and nothing else.
pub const DEFAULT_POLICY: &str = r#"{
  "rules": [
    { "operations": ["join", "leave", "sendToGroup"], "groups": ["user.{userId}", "user.{userId}.**"] }
  ]
}"#;

/// Each claim requirement of the rule at `at` has exactly one condition.
pub(super) fn check_claim_requirements(
    at: &str,
    claims: &[ClaimRequirement],
) -> Result<(), String> {
    for claim in claims {
        let conditions = [
            claim.equals.is_some(),
            claim.one_of.is_some(),
            claim.ends_with.is_some(),
        ];
        if conditions.iter().filter(|set| **set).count() != 1 {
            return Err(format!(
                "{at}.require.claims: `{}` needs exactly one of `equals`, `oneOf`, `endsWith`",
                claim.claim
            ));
        }
    }
    Ok(())
}

/// Parses and validates policy JSON; the error names the location in the file.
pub(super) fn parse(text: &str, origin: &str) -> Result<Policy, String> {
    let file: PolicyFile =
        serde_json::from_str(text).map_err(|error| format!("invalid policy: {error}"))?;
    let patterns = |items: &[String], what: &str| -> Result<Vec<Pattern>, String> {
        items
            .iter()
            .map(|item| Pattern::parse(item).map_err(|error| format!("{what}: {error}")))
            .collect()
    };
    let mut rules = Vec::new();
    for (index, rule) in file.rules.into_iter().enumerate() {
        let at = format!("rules[{index}]");
        if rule.operations.is_empty() {
            return Err(format!("{at}: `operations` is empty"));
        }
        let groups = patterns(&rule.groups, &format!("{at}.groups"))?;
        let users = patterns(&rule.users, &format!("{at}.users"))?;
        for operation in &rule.operations {
            if operation.targets_group() && groups.is_empty() {
                return Err(format!(
                    "{at}: `{}` needs `groups` patterns",
                    operation.name()
                ));
            }
            if operation.targets_other_user() && users.is_empty() {
                return Err(format!(
                    "{at}: `{}` needs `users` patterns",
                    operation.name()
                ));
            }
        }
        let require = rule
            .require
            .map_or_else(Requirements::default, |require| Requirements {
                allow_anonymous: require.allow_anonymous,
                roles: require.roles,
                claims: require.claims,
                sender_is_member: require.sender_is_member,
            });
        check_claim_requirements(&at, &require.claims)?;
        if require.sender_is_member
            && rule
                .operations
                .iter()
                .any(|op| *op != Operation::SendToGroup)
        {
            return Err(format!(
                "{at}: `senderIsMember` applies only to `sendToGroup` rules"
            ));
        }
        rules.push(Rule {
            operations: rule.operations,
            groups,
            users,
            require,
        });
    }
    let web_pubsub_connect = match file.web_pubsub_connect {
        Some(connect) => ConnectTemplates {
            groups: patterns(&connect.groups, "webPubSubConnect.groups")?,
            roles: patterns(&connect.roles, "webPubSubConnect.roles")?,
        },
        None => ConnectTemplates::default(),
    };
    for pattern in web_pubsub_connect
        .groups
        .iter()
        .chain(&web_pubsub_connect.roles)
    {
        if !pattern.is_concrete() {
            return Err(format!(
                "webPubSubConnect: `{}` has a wildcard; connect grants must name concrete groups and roles (templates are fine)",
                pattern.as_str()
            ));
        }
    }
    let upstream = upstream::parse(file.invoke, file.on_connect)?;
    Ok(Policy {
        roles_claim: file.roles_claim.unwrap_or_else(|| "roles".to_owned()),
        rules,
        web_pubsub_connect,
        upstream,
        origin: origin.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_policies_are_refused_with_a_location() {
        let cases = [
            (r#"{"rules": [{"operations": ["join"]}]}"#, "needs `groups`"),
            (
                r#"{"rules": [{"operations": ["sendToUser"]}]}"#,
                "needs `users`",
            ),
            (
                r#"{"rules": [{"operations": ["fly"], "groups": ["*"]}]}"#,
                "unknown variant",
            ),
            (
                r#"{"rules": [{"operations": ["join"], "groups": ["a{x}"]}]}"#,
                "rules[0].groups",
            ),
            (r#"{"rules": [], "extra": 1}"#, "unknown field"),
            (
                r#"{"rules": [{"operations": ["join"], "groups": ["*"], "require": {"senderIsMember": true}}]}"#,
                "senderIsMember",
            ),
            (
                r#"{"rules": [{"operations": ["join"], "groups": ["*"], "require": {"claims": [{"claim": "x"}]}}]}"#,
                "exactly one",
            ),
            (
                r#"{"rules": [], "webPubSubConnect": {"groups": ["room-*"]}}"#,
                "wildcard",
            ),
        ];
        for (text, expected) in cases {
            let error = Policy::parse(text, "test").expect_err(text);
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
