//! The policy sections of the SignalR upstream (`functions/upstream.rs`): `invoke`, which hub
//! methods a connection may call at all, and `onConnect`, the groups a connection's user joins
//! when it connects.
//!
//! ```json
//! {
//!   "invoke": [
//!     { "targets": ["joinGroup", "leaveGroup", "sendToGroup", "sendToUser"] }
//!   ],
//!   "onConnect": { "groups": ["user.{userId}"] }
//! }
//! ```
//!
//! An upstream caller is known by its user id alone (`X-ASRS-User-Id`, the `asrs.s.uid` our
//! negotiate signed); it carries no claims the handler can trust (see
//! `identity::service_connection`). So these sections may use `{userId}` but not
//! `{claim:NAME}`, and an `invoke` rule may require only `allowAnonymous`: a `roles` or
//! `claims` requirement, or a claim template, could never be met here and is refused at
//! start-up rather than silently denying everything.

use serde::Deserialize;

use crate::identity::VerifiedUser;
use crate::names::GroupName;
use crate::policy::pattern::Pattern;
use crate::policy::{Denial, Policy};

/// The `invoke` rules and `onConnect` templates, validated.
#[derive(Debug, Default)]
pub(super) struct UpstreamPolicy {
    invoke: Vec<InvokeRule>,
    on_connect: OnConnect,
}

#[derive(Debug)]
struct InvokeRule {
    targets: Vec<Pattern>,
    allow_anonymous: bool,
}

#[derive(Debug, Default)]
struct OnConnect {
    groups: Vec<Pattern>,
    allow_anonymous: bool,
}

/// One entry of the file's `invoke` list.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct InvokeRuleFile {
    targets: Vec<String>,
    #[serde(default)]
    require: Option<InvokeRequireFile>,
}

/// An `invoke` rule's `require`: the usual keys are read so that the ones an upstream caller
/// cannot meet get a message saying why, not a bare "unknown field".
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InvokeRequireFile {
    #[serde(default)]
    allow_anonymous: bool,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    claims: Vec<serde_json::Value>,
    #[serde(default)]
    sender_is_member: bool,
}

/// The file's `onConnect` object.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct OnConnectFile {
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    allow_anonymous: bool,
}

/// Validates the two sections; the error names the place in the file.
pub(super) fn parse(
    invoke: Vec<InvokeRuleFile>,
    on_connect: Option<OnConnectFile>,
) -> Result<UpstreamPolicy, String> {
    let mut rules = Vec::with_capacity(invoke.len());
    for (index, rule) in invoke.into_iter().enumerate() {
        let at = format!("invoke[{index}]");
        if rule.targets.is_empty() {
            return Err(format!("{at}: `targets` is empty"));
        }
        let mut targets = Vec::with_capacity(rule.targets.len());
        for target in &rule.targets {
            let pattern =
                Pattern::parse(target).map_err(|error| format!("{at}.targets: {error}"))?;
            if pattern.has_templates() {
                return Err(format!(
                    "{at}.targets: `{target}` has a template; targets are hub method names (wildcards are fine)"
                ));
            }
            targets.push(pattern);
        }
        let require = rule.require.unwrap_or(InvokeRequireFile {
            allow_anonymous: false,
            roles: Vec::new(),
            claims: Vec::new(),
            sender_is_member: false,
        });
        if !require.roles.is_empty() || !require.claims.is_empty() {
            return Err(format!(
                "{at}.require: `roles` and `claims` cannot be checked on the upstream path (a SignalR connection carries only its verified user id; X-ASRS-User-Claims is not trusted); put them on the per-operation rules' HTTP functions, or remove them"
            ));
        }
        if require.sender_is_member {
            return Err(format!(
                "{at}.require: `senderIsMember` belongs to `sendToGroup` rules, which the `sendToGroup` method is checked by as well"
            ));
        }
        rules.push(InvokeRule {
            targets,
            allow_anonymous: require.allow_anonymous,
        });
    }
    let on_connect = match on_connect {
        None => OnConnect::default(),
        Some(file) => {
            let mut groups = Vec::with_capacity(file.groups.len());
            for group in &file.groups {
                let pattern =
                    Pattern::parse(group).map_err(|error| format!("onConnect.groups: {error}"))?;
                if !pattern.is_concrete() {
                    return Err(format!(
                        "onConnect.groups: `{group}` has a wildcard; connect grants must name concrete groups (templates are fine)"
                    ));
                }
                if pattern.uses_claims() {
                    return Err(format!(
                        "onConnect.groups: `{group}` reads a claim; an upstream connection carries only its verified user id (X-ASRS-User-Claims is not trusted), use {{userId}}"
                    ));
                }
                if !pattern.has_templates() {
                    GroupName::parse(group)
                        .map_err(|error| format!("onConnect.groups: `{group}`: {error}"))?;
                }
                groups.push(pattern);
            }
            OnConnect {
                groups,
                allow_anonymous: file.allow_anonymous,
            }
        }
    };
    Ok(UpstreamPolicy {
        invoke: rules,
        on_connect,
    })
}

impl Policy {
    /// Whether a connection may call hub method `target` at all; `caller` is `None` for a
    /// connection without a user. Default deny: only an `invoke` rule whose `targets` match
    /// allows it. The method's own operation (join, sendToGroup, …) is decided afterwards by
    /// [`Policy::decide`].
    pub fn decide_invoke(&self, caller: Option<&VerifiedUser>, target: &str) -> Result<(), Denial> {
        let mut reason = Denial::NoInvokeRule(target.chars().take(128).collect());
        for rule in &self.upstream.invoke {
            // Targets have no templates (checked at start-up), so they match without a user.
            let matches = rule.targets.iter().any(|pattern| {
                pattern
                    .without_templates()
                    .is_some_and(|matcher| matcher.matches(target))
            });
            if !matches {
                continue;
            }
            let signed_in = caller.is_some_and(VerifiedUser::is_signed_in);
            if signed_in || rule.allow_anonymous {
                return Ok(());
            }
            reason = Denial::SignedInOnly;
        }
        Err(reason)
    }

    /// The groups a newly connected user joins (`onConnect.groups`, filled from the user; a
    /// template that yields no valid group name is skipped). Anonymous visitors join only when
    /// `onConnect.allowAnonymous` is true.
    pub fn on_connect_groups(&self, user: &VerifiedUser) -> Vec<GroupName> {
        let on_connect = &self.upstream.on_connect;
        if !user.is_signed_in() && !on_connect.allow_anonymous {
            return Vec::new();
        }
        on_connect
            .groups
            .iter()
            .filter_map(|pattern| pattern.fill(user)?.concrete_value())
            .filter_map(|group| GroupName::parse(&group).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::policy::Policy;
    use crate::policy::pattern::tests::user;

    const UPSTREAM: &str = r#"{
      "rules": [],
      "invoke": [
        { "targets": ["joinGroup", "send*"] },
        { "targets": ["ping"], "require": { "allowAnonymous": true } }
      ],
      "onConnect": { "groups": ["user.{userId}", "lobby"] }
    }"#;

    #[test]
    fn invoke_allows_only_named_targets() {
        let policy = Policy::parse(UPSTREAM, "test").expect("valid");
        let alice = user("alice", json!({}));
        for target in ["joinGroup", "sendToGroup", "sendToUser"] {
            assert!(
                policy.decide_invoke(Some(&alice), target).is_ok(),
                "{target}"
            );
        }
        for target in ["leaveGroup", "JoinGroup", "joinGroup2", "admin.send"] {
            assert!(
                policy.decide_invoke(Some(&alice), target).is_err(),
                "{target}"
            );
        }
    }

    #[test]
    fn invoke_needs_a_signed_in_user_unless_the_rule_allows_anonymous() {
        let policy = Policy::parse(UPSTREAM, "test").expect("valid");
        assert!(policy.decide_invoke(None, "joinGroup").is_err());
        assert!(policy.decide_invoke(None, "ping").is_ok());
    }

    #[test]
    fn on_connect_fills_groups_from_the_user() {
        let policy = Policy::parse(UPSTREAM, "test").expect("valid");
        let groups: Vec<String> = policy
            .on_connect_groups(&user("alice", json!({"team": "red"})))
            .iter()
            .map(|group| group.as_str().to_owned())
            .collect();
        assert_eq!(groups, vec!["user.alice", "lobby"]);
    }

    #[test]
    fn sections_an_upstream_caller_cannot_meet_are_refused() {
        let cases = [
            (r#"{"rules": [], "invoke": [{"targets": []}]}"#, "empty"),
            (
                r#"{"rules": [], "invoke": [{"targets": ["x"], "require": {"roles": ["admin"]}}]}"#,
                "cannot be checked on the upstream path",
            ),
            (
                r#"{"rules": [], "invoke": [{"targets": ["{userId}"]}]}"#,
                "template",
            ),
            (
                r#"{"rules": [], "onConnect": {"groups": ["team.{claim:team}"]}}"#,
                "reads a claim",
            ),
            (
                r#"{"rules": [], "onConnect": {"groups": ["room-*"]}}"#,
                "wildcard",
            ),
            (
                r#"{"rules": [], "onConnect": {"groups": ["a/b"]}}"#,
                "onConnect.groups",
            ),
        ];
        for (text, expected) in cases {
            let error = Policy::parse(text, "test").expect_err(text);
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
