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
//! An upstream caller is its connection's user id (`X-ASRS-User-Id`, the `asrs.s.uid` our
//! negotiate signed) with the forwarded claims its token carried (`X-ASRS-User-Claims`, read
//! only for types in `AUTH_FORWARD_CLAIMS`; see `identity::service_connection`). So these
//! sections may use `{userId}` and `{claim:NAME}`, and an `invoke` rule may require `roles` and
//! `claims` as the per-operation rules do, as long as every claim they name is forwarded: the
//! configuration refuses at start-up a section naming one that is not
//! (`Policy::upstream_claims`), rather than silently deny everything.

use serde::Deserialize;

use crate::identity::VerifiedUser;
use crate::names::GroupName;
use crate::policy::file::{RequireFile, check_claim_requirements};
use crate::policy::pattern::Pattern;
use crate::policy::{Denial, Policy, Requirements};

/// The `invoke` rules and `onConnect` templates, validated.
#[derive(Debug, Default)]
pub(super) struct UpstreamPolicy {
    invoke: Vec<InvokeRule>,
    on_connect: OnConnect,
}

#[derive(Debug)]
struct InvokeRule {
    targets: Vec<Pattern>,
    require: Requirements,
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
    require: Option<RequireFile>,
}

/// An `invoke` rule's `require`: the usual keys; `senderIsMember` is read so that it gets a
/// message saying why it does not belong here, not a bare "unknown field".
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
        let require = rule.require.unwrap_or_default();
        check_claim_requirements(&at, &require.claims)?;
        if require.sender_is_member {
            return Err(format!(
                "{at}.require: `senderIsMember` belongs to `sendToGroup` rules, which the `sendToGroup` method is checked by as well"
            ));
        }
        rules.push(InvokeRule {
            targets,
            require: Requirements {
                allow_anonymous: require.allow_anonymous,
                roles: require.roles,
                claims: require.claims,
                sender_is_member: false,
            },
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
    /// connection without a user. Default deny: only an `invoke` rule whose `targets` match and
    /// whose requirements the caller meets (its forwarded claims) allows it. The method's own
    /// operation (join, sendToGroup, …) is decided afterwards by [`Policy::decide`].
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
            let met = match caller {
                Some(user) => self.requirements_met(&rule.require, user),
                // No user: no claims, so only an anonymous rule without requirements.
                None if !rule.require.allow_anonymous => Err(Denial::SignedInOnly),
                None if !rule.require.roles.is_empty() => {
                    Err(Denial::MissingRole(rule.require.roles.clone()))
                }
                None => match rule.require.claims.first() {
                    Some(condition) => Err(Denial::Claim(condition.claim.clone())),
                    None => Ok(()),
                },
            };
            match met {
                Ok(()) => return Ok(()),
                Err(denial) => reason = denial,
            }
        }
        Err(reason)
    }

    /// Every claim the upstream sections read, with where: `{claim:X}` in `onConnect.groups`,
    /// `invoke[i].require.claims`, and the `rolesClaim` for `invoke[i].require.roles`. Start-up
    /// checks that each is forwarded into the SignalR token, the only claims an upstream caller
    /// has. (The per-operation rules also serve HTTP functions, whose callers have all their
    /// claims; on the upstream path a claim they need that is not forwarded is simply unmet.)
    pub fn upstream_claims(&self) -> Vec<(String, String)> {
        let mut claims = Vec::new();
        for pattern in &self.upstream.on_connect.groups {
            for name in pattern.claim_names() {
                claims.push((
                    format!("onConnect.groups `{}`", pattern.as_str()),
                    name.to_owned(),
                ));
            }
        }
        for (index, rule) in self.upstream.invoke.iter().enumerate() {
            if !rule.require.roles.is_empty() {
                claims.push((
                    format!("invoke[{index}].require.roles (via rolesClaim)"),
                    self.roles_claim.clone(),
                ));
            }
            for condition in &rule.require.claims {
                claims.push((
                    format!("invoke[{index}].require.claims"),
                    condition.claim.clone(),
                ));
            }
        }
        claims
    }

    /// The groups a newly connected user joins (`onConnect.groups`, filled from the user; a
    /// template that yields no valid group name is skipped, and returned among
    /// [`OnConnectGroups::skipped`] so the caller can log it). Anonymous visitors join only when
    /// `onConnect.allowAnonymous` is true.
    pub fn on_connect_groups(&self, user: &VerifiedUser) -> OnConnectGroups<'_> {
        let on_connect = &self.upstream.on_connect;
        let mut joins = OnConnectGroups::default();
        if !user.is_signed_in() && !on_connect.allow_anonymous {
            return joins;
        }
        for pattern in &on_connect.groups {
            match pattern
                .fill(user)
                .and_then(|filled| filled.concrete_value())
                .and_then(|group| GroupName::parse(&group).ok())
            {
                Some(group) => joins.groups.push(group),
                None => joins.skipped.push(pattern.as_str()),
            }
        }
        joins
    }
}

/// What [`Policy::on_connect_groups`] decided for one connection.
#[derive(Debug, Default)]
pub struct OnConnectGroups<'p> {
    /// The groups the user joins, in the policy's order.
    pub groups: Vec<GroupName>,
    /// The templates that yielded no valid group name for this user (a claim missing or with
    /// several values, or a value that breaks the name rules). Skipping is the safe answer, but
    /// silently it looks like a join that never happened, so the caller logs each one. These are
    /// the policy's own text, never the user's value.
    pub skipped: Vec<&'p str>,
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
        let joins = policy.on_connect_groups(&user("alice", json!({"team": "red"})));
        let groups: Vec<&str> = joins.groups.iter().map(|group| group.as_str()).collect();
        assert_eq!(groups, vec!["user.alice", "lobby"]);
        assert!(joins.skipped.is_empty(), "{joins:?}");
    }

    #[test]
    fn on_connect_fills_claim_templates_from_the_forwarded_claims() {
        let policy = Policy::parse(
            r#"{"rules": [], "onConnect": {"groups": ["team.{claim:team}", "user.{userId}"]}}"#,
            "test",
        )
        .expect("valid");
        let groups = |claims| -> (Vec<String>, Vec<String>) {
            let joins = policy.on_connect_groups(&user("alice", claims));
            (
                joins
                    .groups
                    .iter()
                    .map(|group| group.as_str().to_owned())
                    .collect(),
                joins
                    .skipped
                    .iter()
                    .map(|&template| template.to_owned())
                    .collect(),
            )
        };
        let no_team = (
            vec!["user.alice".to_owned()],
            vec!["team.{claim:team}".to_owned()],
        );
        assert_eq!(
            groups(json!({"team": "red"})),
            (vec!["team.red".to_owned(), "user.alice".to_owned()], vec![])
        );
        // No team, several teams, or a value that is not one plain segment (nor a valid group
        // name): no team group, and the template is reported as skipped.
        assert_eq!(groups(json!({})), no_team);
        assert_eq!(groups(json!({"team": ["red", "blue"]})), no_team);
        assert_eq!(groups(json!({"team": "red.admins"})), no_team);
        assert_eq!(groups(json!({"team": "red/admins"})), no_team);
        assert_eq!(
            policy.upstream_claims(),
            [(
                "onConnect.groups `team.{claim:team}`".to_owned(),
                "team".to_owned()
            )]
        );
    }

    #[test]
    fn invoke_requirements_read_the_callers_claims() {
        let policy = Policy::parse(
            r#"{"rolesClaim": "roles", "rules": [], "invoke": [
                {"targets": ["admin*"], "require": {"roles": ["admin"]}},
                {"targets": ["team*"], "require": {"allowAnonymous": true,
                  "claims": [{"claim": "team", "oneOf": ["red", "blue"]}]}}
            ]}"#,
            "test",
        )
        .expect("valid");
        let admin = user("alice", json!({"roles": ["reader", "admin"]}));
        let reader = user("bob", json!({"roles": "reader", "team": "green"}));
        let red = user("carol", json!({"team": "red"}));
        assert!(policy.decide_invoke(Some(&admin), "adminReset").is_ok());
        assert!(policy.decide_invoke(Some(&reader), "adminReset").is_err());
        assert!(policy.decide_invoke(None, "adminReset").is_err());
        assert!(policy.decide_invoke(Some(&red), "teamPing").is_ok());
        assert!(policy.decide_invoke(Some(&reader), "teamPing").is_err());
        assert!(
            policy.decide_invoke(None, "teamPing").is_err(),
            "no user, no claim"
        );
        assert_eq!(
            policy.upstream_claims(),
            [
                (
                    "invoke[0].require.roles (via rolesClaim)".to_owned(),
                    "roles".to_owned()
                ),
                ("invoke[1].require.claims".to_owned(), "team".to_owned()),
            ]
        );
    }

    #[test]
    fn invalid_upstream_sections_are_refused() {
        let cases = [
            (r#"{"rules": [], "invoke": [{"targets": []}]}"#, "empty"),
            (
                r#"{"rules": [], "invoke": [{"targets": ["x"], "require": {"claims": [{"claim": "team"}]}}]}"#,
                "exactly one",
            ),
            (
                r#"{"rules": [], "invoke": [{"targets": ["x"], "require": {"senderIsMember": true}}]}"#,
                "senderIsMember",
            ),
            (
                r#"{"rules": [], "invoke": [{"targets": ["{userId}"]}]}"#,
                "template",
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
