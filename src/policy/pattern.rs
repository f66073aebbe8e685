//! Group (and user) patterns: `*` matches within a `.`-separated segment, `**` across segments,
//! as Web PubSub's wildcard group roles do; `{userId}` and `{claim:NAME}` are filled from the
//! verified caller.
//!
//! Templates are filled *after* the pattern is parsed, as literal text, and a filled value must be
//! one plain segment: a value containing `.`, `*` or `?` makes the pattern match nothing for that
//! caller. The `.` rule is what keeps users apart: a group name such as `user.alice.smith` reads
//! both as user `alice.smith`'s group and as user `alice`'s subgroup `smith`, so with dotted ids
//! `user.{userId}.**` for `alice` would reach into `alice.smith`'s groups. Wildcard characters are
//! refused because Web PubSub roles built from templates treat them as wildcards. Use a user-id
//! claim without dots (`sub`, `oid`) for templated groups. `\*`, `\{`, `\}` and `\\` write those
//! characters literally.

use crate::identity::VerifiedUser;

/// Longest pattern accepted in a policy file.
const MAX_PATTERN_CHARS: usize = 1024;
/// Longest value (group or user id) the matcher is asked about; names are validated to this.
const MAX_SUBJECT_CHARS: usize = 1024;

/// A parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// `*`: any characters except `.`, possibly none.
    Star,
    /// `**`: any characters, possibly none.
    DoubleStar,
    /// `{userId}`.
    UserId,
    /// `{claim:NAME}`.
    Claim(String),
}

/// Why a pattern was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatternError {
    /// The pattern is the empty string.
    #[error("pattern is empty")]
    Empty,
    /// The pattern is longer than `MAX_PATTERN_CHARS`.
    #[error("pattern is longer than {MAX_PATTERN_CHARS} characters")]
    TooLong,
    /// A `{` template is never closed.
    #[error("pattern {0:?} has an unclosed `{{`")]
    UnclosedTemplate(String),
    /// A template is neither `{userId}` nor `{claim:NAME}`.
    #[error("pattern {0:?} uses unknown template `{{{1}}}` (use {{userId}} or {{claim:NAME}})")]
    UnknownTemplate(String, String),
    /// Three or more `*` in a row, which has no meaning.
    #[error("pattern {0:?} has three or more `*` in a row")]
    TooManyStars(String),
    /// The pattern ends with an escape character that escapes nothing.
    #[error("pattern {0:?} ends with a lone `\\`")]
    DanglingEscape(String),
    /// The pattern contains a control character.
    #[error("pattern {0:?} has a control character")]
    ControlCharacter(String),
}

impl Pattern {
    /// Parses a pattern from a policy file.
    pub fn parse(source: &str) -> Result<Self, PatternError> {
        if source.is_empty() {
            return Err(PatternError::Empty);
        }
        if source.chars().count() > MAX_PATTERN_CHARS {
            return Err(PatternError::TooLong);
        }
        if source.chars().any(char::is_control) {
            return Err(PatternError::ControlCharacter(source.to_owned()));
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = source.chars().peekable();
        let flush = |literal: &mut String, parts: &mut Vec<Part>| {
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(literal)));
            }
        };
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(escaped) => literal.push(escaped),
                    None => return Err(PatternError::DanglingEscape(source.to_owned())),
                },
                '*' => {
                    flush(&mut literal, &mut parts);
                    if chars.peek() == Some(&'*') {
                        chars.next();
                        if chars.peek() == Some(&'*') {
                            return Err(PatternError::TooManyStars(source.to_owned()));
                        }
                        parts.push(Part::DoubleStar);
                    } else {
                        parts.push(Part::Star);
                    }
                }
                '{' => {
                    flush(&mut literal, &mut parts);
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => return Err(PatternError::UnclosedTemplate(source.to_owned())),
                        }
                    }
                    parts.push(match name.as_str() {
                        "userId" => Part::UserId,
                        _ => match name.strip_prefix("claim:") {
                            Some(claim) if !claim.is_empty() => Part::Claim(claim.to_owned()),
                            _ => {
                                return Err(PatternError::UnknownTemplate(source.to_owned(), name));
                            }
                        },
                    });
                }
                other => literal.push(other),
            }
        }
        flush(&mut literal, &mut parts);
        Ok(Self {
            source: source.to_owned(),
            parts,
        })
    }

    /// The pattern as written in the policy.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True if the pattern uses no wildcard, so filling it yields one concrete name.
    pub fn is_concrete(&self) -> bool {
        !self
            .parts
            .iter()
            .any(|part| matches!(part, Part::Star | Part::DoubleStar))
    }

    /// The claims the pattern reads (`{claim:NAME}`), so start-up can check that an upstream
    /// caller carries them (`AUTH_FORWARD_CLAIMS`).
    pub fn claim_names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            Part::Claim(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// True if the pattern has a template at all (`{userId}` or `{claim:NAME}`).
    pub fn has_templates(&self) -> bool {
        self.parts
            .iter()
            .any(|part| matches!(part, Part::UserId | Part::Claim(_)))
    }

    /// The pattern as a matcher when it has no template (nothing to fill), else `None`.
    pub fn without_templates(&self) -> Option<FilledPattern> {
        let elements = self
            .parts
            .iter()
            .map(|part| match part {
                Part::Literal(text) => Some(Element::Literal(text.chars().collect())),
                Part::Star => Some(Element::Star),
                Part::DoubleStar => Some(Element::DoubleStar),
                Part::UserId | Part::Claim(_) => None,
            })
            .collect::<Option<Vec<_>>>()?;
        Some(FilledPattern { elements })
    }

    /// The pattern with templates filled from `user`, wildcards kept, or `None` when a template
    /// refers to a claim the user lacks (the pattern then matches nothing).
    pub fn fill(&self, user: &VerifiedUser) -> Option<FilledPattern> {
        self.fill_with(user.user_id(), &|name| user.claim_strings(name))
    }

    /// [`Pattern::fill`] from a user id and a claim lookup instead of a [`VerifiedUser`]: for
    /// claims a connection held before a refresh, which no longer belong to any credential.
    pub fn fill_with<'c>(
        &self,
        user_id: &str,
        claim: &dyn Fn(&str) -> Vec<&'c str>,
    ) -> Option<FilledPattern> {
        let mut elements = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            elements.push(match part {
                Part::Literal(text) => Element::Literal(text.chars().collect()),
                Part::Star => Element::Star,
                Part::DoubleStar => Element::DoubleStar,
                Part::UserId => Element::Literal(plain_segment(user_id)?),
                Part::Claim(name) => {
                    let values = claim(name);
                    let [value] = values.as_slice() else {
                        return None;
                    };
                    Element::Literal(plain_segment(value)?)
                }
            });
        }
        Some(FilledPattern { elements })
    }
}

/// A template value as one literal segment, or `None` when it could be read as more than one
/// segment or as a wildcard (see the module docs).
fn plain_segment(value: &str) -> Option<Vec<char>> {
    let plain = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_control() || matches!(c, '.' | '*' | '?'));
    plain.then(|| value.chars().collect())
}

/// A pattern with its templates filled: only literals and wildcards remain.
#[derive(Debug, Clone)]
pub struct FilledPattern {
    elements: Vec<Element>,
}

#[derive(Debug, Clone)]
enum Element {
    Literal(Vec<char>),
    Star,
    DoubleStar,
}

impl FilledPattern {
    /// True if `subject` (a group name or user id) matches.
    ///
    /// Dynamic programming over (element, position): linear in pattern × subject length, so a
    /// pattern full of `**` cannot make matching exponential.
    pub fn matches(&self, subject: &str) -> bool {
        let subject: Vec<char> = subject.chars().collect();
        if subject.len() > MAX_SUBJECT_CHARS {
            return false;
        }
        let n = subject.len();
        // reachable[i]: the elements matched so far can end at position i.
        let mut reachable = vec![false; n + 1];
        reachable[0] = true;
        for element in &self.elements {
            let mut next = vec![false; n + 1];
            match element {
                Element::Literal(text) => {
                    for start in 0..=n {
                        if reachable[start] && subject[start..].starts_with(text) {
                            next[start + text.len()] = true;
                        }
                    }
                }
                Element::Star => {
                    for start in 0..=n {
                        if !reachable[start] {
                            continue;
                        }
                        next[start] = true;
                        let mut end = start;
                        while end < n && subject[end] != '.' {
                            end += 1;
                            next[end] = true;
                        }
                    }
                }
                Element::DoubleStar => {
                    if let Some(first) = reachable.iter().position(|&r| r) {
                        next[first..].iter_mut().for_each(|r| *r = true);
                    }
                }
            }
            reachable = next;
        }
        reachable[n]
    }

    /// The single concrete value of a wildcard-free pattern.
    pub fn concrete_value(&self) -> Option<String> {
        let mut value = String::new();
        for element in &self.elements {
            match element {
                Element::Literal(text) => value.extend(text),
                Element::Star | Element::DoubleStar => return None,
            }
        }
        Some(value)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;
    use crate::identity::VerifiedUser;

    pub(crate) fn user(id: &str, claims: serde_json::Value) -> VerifiedUser {
        VerifiedUser::for_tests(id, claims)
    }

    fn matches(pattern: &str, user_id: &str, subject: &str) -> bool {
        Pattern::parse(pattern)
            .expect("valid pattern")
            .fill(&user(
                user_id,
                json!({"tenant": "contoso", "roles": ["a", "b"]}),
            ))
            .is_some_and(|filled| filled.matches(subject))
    }

    #[test]
    fn single_star_stays_within_a_segment() {
        assert!(matches("room-*", "u", "room-1"));
        assert!(matches("room-*", "u", "room-"));
        assert!(!matches("room-*", "u", "room-1.admin"));
        assert!(matches("team.*.chat", "u", "team.red.chat"));
        assert!(!matches("team.*.chat", "u", "team.red.blue.chat"));
        assert!(!matches("room-*", "u", "lobby"));
    }

    #[test]
    fn double_star_crosses_segments() {
        assert!(matches("team.**", "u", "team.red.blue"));
        assert!(matches("team.**", "u", "team."));
        assert!(!matches("team.**", "u", "teams.red"));
        assert!(matches("**", "u", "anything.at.all"));
        assert!(matches("a.**.z", "u", "a.b.c.z"));
    }

    #[test]
    fn templates_fill_from_the_verified_user() {
        assert!(matches("user.{userId}", "alice", "user.alice"));
        assert!(!matches("user.{userId}", "alice", "user.bob"));
        assert!(matches(
            "tenant.{claim:tenant}.*",
            "alice",
            "tenant.contoso.general"
        ));
        assert!(!matches(
            "tenant.{claim:tenant}.*",
            "alice",
            "tenant.fabrikam.general"
        ));
        // A missing or multi-valued claim matches nothing.
        assert!(!matches("x.{claim:missing}", "alice", "x."));
        assert!(!matches("x.{claim:roles}", "alice", "x.a"));
    }

    #[test]
    fn a_user_id_cannot_widen_its_own_pattern() {
        // Wildcard characters in a user id match nothing at all.
        assert!(!matches("user.{userId}", "*", "user.*"));
        assert!(!matches("user.{userId}", "*", "user.bob"));
        assert!(!matches("user.{userId}", "**", "user.bob.secrets"));
        assert!(!matches("user.{userId}.inbox", "a.**", "user.a.b.c.inbox"));
        assert!(!matches("user.{userId}", "a?", "user.ab"));
        // Braces are literal text, never a second template.
        assert!(!matches("user.{userId}", "{claim:tenant}", "user.contoso"));
        assert!(matches(
            "user.{userId}",
            "{claim:tenant}",
            "user.{claim:tenant}"
        ));
    }

    #[test]
    fn a_dotted_id_matches_nothing_so_users_cannot_reach_each_others_groups() {
        // `alice` must not reach `alice.smith`'s personal groups through `user.{userId}.**`...
        assert!(matches("user.{userId}.**", "alice", "user.alice.notes"));
        assert!(!matches("user.{userId}", "alice", "user.alice.smith"));
        // ...and `alice.smith` gets no templated groups, so there are none of theirs to reach.
        assert!(!matches("user.{userId}", "alice.smith", "user.alice.smith"));
        assert!(!matches(
            "user.{userId}.**",
            "alice.smith",
            "user.alice.smith.inbox"
        ));
        // The same holds for claim values.
        let dotted_team = user("u", json!({"team": "red.blue"}));
        let pattern = Pattern::parse("team.{claim:team}.**").expect("valid");
        assert!(pattern.fill(&dotted_team).is_none());
    }

    #[test]
    fn escapes_write_wildcards_and_braces_literally() {
        assert!(matches(r"literal\*", "u", "literal*"));
        assert!(!matches(r"literal\*", "u", "literalX"));
        assert!(matches(r"\{userId\}", "u", "{userId}"));
        assert!(!matches(r"\{userId\}", "u", "u"));
    }

    #[test]
    fn malformed_patterns_are_refused() {
        assert_eq!(Pattern::parse(""), Err(PatternError::Empty));
        assert!(matches!(
            Pattern::parse("a{userId"),
            Err(PatternError::UnclosedTemplate(_))
        ));
        assert!(matches!(
            Pattern::parse("a.{user}"),
            Err(PatternError::UnknownTemplate(..))
        ));
        assert!(matches!(
            Pattern::parse("a.{claim:}"),
            Err(PatternError::UnknownTemplate(..))
        ));
        assert!(matches!(
            Pattern::parse("a.***"),
            Err(PatternError::TooManyStars(_))
        ));
        assert!(matches!(
            Pattern::parse("a\\"),
            Err(PatternError::DanglingEscape(_))
        ));
        assert!(matches!(
            Pattern::parse("a\nb"),
            Err(PatternError::ControlCharacter(_))
        ));
    }

    #[test]
    fn many_double_stars_match_in_bounded_time() {
        let pattern = "**a**a**a**a**a**a**a**a**a**a**b";
        assert!(!matches(pattern, "u", &"a".repeat(1000)));
    }
}
