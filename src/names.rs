//! The rules for every name that ends up in a SignalR Service URL path: hub names, group names
//! and user ids (targets named by callers and ids verified by an identity source).
//!
//! The service's SDK builds paths such as `/api/hubs/{hub}/users/{userId}/groups/{group}` from
//! these names with `Uri.EscapeDataString`, which leaves `.` alone; .NET's `Uri` then removes
//! dot segments (RFC 3986 §5.2.4), so a user or group named `..` turns a send to one user into a
//! hub-wide broadcast. Escaping is not enough, because every layer between the caller and the
//! service may decode, normalise or map characters differently (WHATWG parsers also read `%2e`
//! as a dot and `\` as `/`). So a name that any URL parser could normalise or reinterpret is
//! refused here, never escaped and passed on:
//!
//! - made only of dots (or dot look-alikes that compatibility mappings turn into dots);
//! - containing `/`, `\` or `%` (or their full-width and "best fit" look-alikes). Every `%` is
//!   refused, not only `%` followed by two hex digits: non-standard `%uXXXX` escapes and
//!   double-decoding layers make any `%` a possible escape;
//! - starting or ending with whitespace, empty, all whitespace, longer than the service's limit,
//!   or containing control characters;
//! - made only of invisible or format characters (U+200B, U+2060, U+FEFF, …);
//! - for user ids, also starting or ending with an invisible character, so `alice\u{200b}` cannot
//!   pass for `alice` (emoji variation selectors and tag characters may still end an id).
//!
//! The dot, separator and escape rules are checked on the name as given and on its NFKC form
//! (Unicode compatibility normalisation), so a character that some layer maps to `..`, `/` or `%`
//! (`︰`, `℀`, `／`, …) is refused too.
//!
//! Callers turn a [`NameError`] into 400 for a name from a request body and 401 for an id from an
//! identity source. The REST client still percent-encodes each segment it builds from these
//! types, so nothing that passes can be read as more than one segment.

/// Longest hub name the service accepts (docs/protocol/signalr-service.md §4.4).
pub const MAX_HUB_CHARS: usize = 128;
/// Longest group name the service accepts (docs/protocol/signalr-service.md §4.4).
pub const MAX_GROUP_CHARS: usize = 1024;
/// Longest user id accepted, matching the service's 1024-character user name limit.
pub const MAX_USER_ID_CHARS: usize = 1024;
/// Prefix of every anonymous visitor's user id. No signed-in source may produce an id with it,
/// so an anonymous visitor can never share a signed-in user's id.
pub const ANONYMOUS_PREFIX: &str = "anon:";

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Why a name was refused. The text names the field and the rule, never more than the caller
/// sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty or all whitespace.
    #[error("`{0}` must not be empty or all whitespace")]
    Empty(&'static str),
    /// Over the service's limit.
    #[error("`{0}` must be at most {1} characters")]
    TooLong(&'static str, usize),
    /// Contains a control character.
    #[error("`{0}` must not contain control characters")]
    Control(&'static str),
    /// Leading or trailing whitespace, which parsers and stores trim differently.
    #[error("`{0}` must not start or end with whitespace")]
    SurroundingWhitespace(&'static str),
    /// Made only of dots: a URL parser reads it as the `.` or `..` path segment.
    #[error("`{0}` must not be made only of dots")]
    DotSegment(&'static str),
    /// Contains a character URL parsers reinterpret as a separator or an escape.
    #[error("`{0}` must not contain `/`, `\\` or `%` (or a look-alike of them)")]
    PathCharacter(&'static str),
    /// Made only of invisible or format characters: looks empty, differs from every real id.
    #[error("`{0}` must not be made only of invisible or format characters")]
    Invisible(&'static str),
    /// A user id that starts or ends with an invisible character, and so displays as another id.
    #[error("`{0}` must not start or end with an invisible or format character")]
    SurroundingInvisible(&'static str),
    /// Not the service's hub pattern.
    #[error(
        "`hub` must be 1-{MAX_HUB_CHARS} characters, a letter first, then letters, digits or _ ` , . [ ]"
    )]
    HubPattern,
}

/// A hub name in the service's pattern `^[A-Za-z][A-Za-z0-9_`,.[\]]{0,127}$`
/// (docs/protocol/signalr-service.md §4.4). The
/// pattern already excludes every character the path rules refuse, and a letter first excludes
/// dot segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubName(String);

impl HubName {
    /// Validates a hub name from configuration.
    pub fn parse(value: &str) -> Result<Self, NameError> {
        let mut chars = value.chars();
        let valid = value.len() <= MAX_HUB_CHARS
            && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || "_`,.[]".contains(c));
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(NameError::HubPattern)
        }
    }

    /// The name as configured.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated group name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupName(String);

impl GroupName {
    /// Validates a group name from a caller.
    pub fn parse(value: &str) -> Result<Self, NameError> {
        check_path_name(value, "group", MAX_GROUP_CHARS)?;
        Ok(Self(value.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated user id: the one rule set for ids verified by an identity source and ids that
/// callers name as targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserId(String);

impl UserId {
    /// Validates a user id.
    pub fn parse(value: &str) -> Result<Self, NameError> {
        check_path_name(value, "userId", MAX_USER_ID_CHARS)?;
        let starts = value.chars().next().is_some_and(is_invisible);
        let ends = value
            .chars()
            .next_back()
            .is_some_and(|c| is_invisible(c) && !may_end_an_emoji(c));
        if starts || ends {
            return Err(NameError::SurroundingInvisible("userId"));
        }
        Ok(Self(value.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for an id in the anonymous namespace, compared the way a person reads it: NFKD
    /// (so full-width `ａｎｏｎ：` is `anon:`), invisible characters and combining marks dropped
    /// (so `an\u{200b}on:x` and `anon\u{301}:x` display as `anon:x` and count as such), and
    /// case folded (so `ANON:x` cannot sit beside `anon:x` in a case-insensitive store).
    /// Cross-script look-alikes (a Cyrillic `а`) would need Unicode's confusables table and are
    /// not caught; they do not collide with a visitor's id, they only resemble one.
    pub fn is_anonymous(&self) -> bool {
        let visible: String = self
            .0
            .nfkd()
            .filter(|c| !is_invisible(*c) && !is_combining_mark(*c))
            .flat_map(char::to_lowercase)
            .take(ANONYMOUS_PREFIX.len())
            .collect();
        visible == ANONYMOUS_PREFIX
    }
}

/// A validated user id named as a target by a caller (never an identity: that is
/// `identity::VerifiedUser`, which gives its own id as a target with `VerifiedUser::as_target`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUser(UserId);

impl TargetUser {
    /// Validates a user id from a caller.
    pub fn parse(value: &str) -> Result<Self, NameError> {
        UserId::parse(value).map(Self)
    }

    /// A target from an id that already passed the user-id rules.
    pub fn from_id(id: UserId) -> Self {
        Self(id)
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// Characters that URL parsers, servers or compatibility mappings (NFKC, Windows "best fit")
/// may turn into a path separator or an escape: `/`, `\`, `%` and their look-alikes.
const PATH_CHARACTERS: &[char] = &[
    '/', '\\', '%', '\u{2044}', '\u{2215}', '\u{29F8}', '\u{FF0F}', '\u{2216}', '\u{29F9}',
    '\u{FE68}', '\u{FF3C}', '\u{FE6A}', '\u{FF05}',
];

/// `.` and the characters that compatibility mappings turn into dots (one-dot leader, two-dot
/// leader, ellipsis, small and full-width full stops).
const DOT_CHARACTERS: &[char] = &[
    '.', '\u{2024}', '\u{2025}', '\u{2026}', '\u{FE52}', '\u{FF0E}',
];

/// The rules every name in a URL path follows.
fn check_path_name(value: &str, field: &'static str, max: usize) -> Result<(), NameError> {
    if value.trim().is_empty() {
        return Err(NameError::Empty(field));
    }
    if value.chars().count() > max {
        return Err(NameError::TooLong(field, max));
    }
    if value.chars().any(char::is_control) {
        return Err(NameError::Control(field));
    }
    if value.starts_with(char::is_whitespace) || value.ends_with(char::is_whitespace) {
        return Err(NameError::SurroundingWhitespace(field));
    }
    // NFKC maps no ASCII character to anything else, so an ASCII name (nearly every one) is
    // its own normal form and skips the Unicode tables.
    let normalised: std::borrow::Cow<'_, str> = if value.is_ascii() {
        std::borrow::Cow::Borrowed(value)
    } else {
        std::borrow::Cow::Owned(value.nfkc().collect())
    };
    if value.contains(PATH_CHARACTERS) || normalised.contains(PATH_CHARACTERS) {
        return Err(NameError::PathCharacter(field));
    }
    // Invisible characters are ignored here: a layer that strips them would leave only dots.
    let only_dots = |name: &str| {
        let mut visible = name.chars().filter(|c| !is_invisible(*c)).peekable();
        visible.peek().is_some() && visible.all(|c| DOT_CHARACTERS.contains(&c))
    };
    if only_dots(value) || only_dots(&normalised) {
        return Err(NameError::DotSegment(field));
    }
    if value.chars().all(|c| c.is_whitespace() || is_invisible(c)) {
        return Err(NameError::Invisible(field));
    }
    Ok(())
}

/// Invisible and format characters: Unicode's `Cf` category plus the fillers and variation
/// selectors that render as nothing. A small explicit table (Unicode 15), rather than a Unicode
/// database crate: it only has to recognise ids that look empty, and whitespace is
/// `char::is_whitespace`.
fn is_invisible(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x034F
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x2800
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF0..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
}

/// Variation selectors and tag characters: invisible, but they legitimately end emoji
/// sequences (`❤\u{fe0f}`, subdivision flags), so they may end a user id.
fn may_end_an_emoji(c: char) -> bool {
    matches!(u32::from(c), 0xFE00..=0xFE0F | 0xE0020..=0xE007F | 0xE0100..=0xE01EF)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// `check_path_name` skips NFKC for ASCII names: every ASCII character, alone or beside any
    /// other, is its own normal form (exhaustive over single characters and pairs).
    #[test]
    fn ascii_text_is_its_own_nfkc_form() {
        for a in 0u8..128 {
            let one = char::from(a).to_string();
            assert_eq!(one.nfkc().collect::<String>(), one);
            for b in 0u8..128 {
                let two: String = [char::from(a), char::from(b)].into_iter().collect();
                assert_eq!(two.nfkc().collect::<String>(), two);
            }
        }
    }

    #[test]
    fn group_names_keep_the_existing_rules() {
        assert!(GroupName::parse("room-1").is_ok());
        assert!(GroupName::parse("user.alice.notes").is_ok());
        assert!(GroupName::parse(&"g".repeat(1024)).is_ok());
        for bad in ["", "   ", "a\u{7}b", &"g".repeat(1025)] {
            assert!(GroupName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_a_url_parser_could_normalise_are_refused() {
        let cases = [
            ".",
            "..",
            "...",
            "\u{FF0E}\u{FF0E}",
            "\u{2025}",
            ".\u{200b}.",
            "a/b",
            "a\\b",
            "%2e%2e",
            "a%2Fb",
            "50%",
            "%u002e",
            "a\u{FF0F}b",
            " bob",
            "bob ",
            "bob\u{3000}",
        ];
        for bad in cases {
            assert!(GroupName::parse(bad).is_err(), "group {bad:?}");
            assert!(UserId::parse(bad).is_err(), "user {bad:?}");
            assert!(TargetUser::parse(bad).is_err(), "target {bad:?}");
        }
        for good in ["a.b", ".a", "a..", "anon:v-1", "device:7", "Zoë", "a b"] {
            assert!(UserId::parse(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn user_ids_of_only_invisible_characters_are_refused() {
        for bad in [
            "\u{200b}",
            "\u{2060}\u{feff}",
            "\u{200b} \u{200d}",
            "\u{e0041}",
        ] {
            assert_eq!(
                UserId::parse(bad),
                Err(NameError::Invisible("userId")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_anonymous_namespace_ignores_case_and_invisible_characters() {
        for id in [
            "anon:v-1",
            "ANON:x",
            "an\u{200b}on:x",
            "\u{ff41}\u{ff4e}\u{ff4f}\u{ff4e}:x",
            "anon\u{ff1a}x",
            "anon\u{301}:x",
        ] {
            assert!(UserId::parse(id).expect("valid").is_anonymous(), "{id:?}");
        }
        for id in ["anonymous", "ano:n", "x-anon:y"] {
            assert!(!UserId::parse(id).expect("valid").is_anonymous(), "{id:?}");
        }
    }

    #[test]
    fn user_ids_may_not_start_or_end_with_an_invisible_character() {
        for bad in [
            "alice\u{200b}",
            "\u{200b}alice",
            "\u{feff}anon:x",
            "bob\u{2060}",
        ] {
            assert_eq!(
                UserId::parse(bad),
                Err(NameError::SurroundingInvisible("userId")),
                "{bad:?}"
            );
        }
        for good in [
            "\u{2764}\u{fe0f}",
            "a\u{200d}b",
            "team\u{1f3f4}\u{e0067}\u{e007f}",
        ] {
            assert!(UserId::parse(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn names_whose_compatibility_form_is_a_dot_segment_or_a_separator_are_refused() {
        // U+FE19 and U+FE30 become `...` and `..` under NFKC; U+2100/U+2101/U+2105/U+2106 contain `/`.
        for bad in [
            "\u{fe19}", "\u{fe30}", "\u{2100}", "\u{2101}", "\u{2105}", "\u{2106}",
        ] {
            assert!(GroupName::parse(bad).is_err(), "group {bad:?}");
            assert!(UserId::parse(bad).is_err(), "user {bad:?}");
        }
    }

    #[test]
    fn group_names_of_only_invisible_characters_are_refused() {
        for bad in ["\u{200b}", "\u{feff}", "\u{200b} \u{2060}"] {
            assert_eq!(
                GroupName::parse(bad),
                Err(NameError::Invisible("group")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn hub_names_follow_the_service_pattern() {
        for good in ["chat", "Chat_2", "a", "a.b[c]", "x`,[]", &"a".repeat(128)] {
            assert!(HubName::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1chat",
            "my-hub",
            "chat room",
            "..",
            "a/b",
            &"a".repeat(129),
        ] {
            assert!(HubName::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_name_of_only_dots_is_refused(name in "[.\u{FF0E}\u{2024}]{1,40}") {
            prop_assert!(GroupName::parse(&name).is_err());
            prop_assert!(UserId::parse(&name).is_err());
            prop_assert!(HubName::parse(&name).is_err());
        }

        #[test]
        fn any_name_with_a_slash_or_backslash_is_refused(
            before in "\\PC{0,12}",
            separator in "[/\\\\]",
            after in "\\PC{0,12}",
        ) {
            let name = format!("{before}{separator}{after}");
            prop_assert!(GroupName::parse(&name).is_err());
            prop_assert!(UserId::parse(&name).is_err());
            prop_assert!(HubName::parse(&name).is_err());
        }
    }
}
