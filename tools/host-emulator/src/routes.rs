//! Route templates as the Functions host accepts them in `function.json` `route`: literal
//! segments (matched case-insensitively), `{name}`, `{name?}` (last segment only), `{name:int}` /
//! `{name:alpha}` / `{name:guid}` constraints, and a `{*rest}` / `{**rest}` catch-all (last
//! segment only, may be empty). Anything else is refused when the app is read, so a route the
//! emulator cannot match the way ASP.NET would is an error, not a silent mismatch.

use std::cmp::Ordering;

/// A parsed route template.
#[derive(Debug, Clone)]
pub struct RouteTemplate {
    text: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Parameter {
        name: String,
        constraint: Option<Constraint>,
        optional: bool,
    },
    CatchAll {
        name: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Constraint {
    Int,
    Alpha,
    Guid,
}

/// Route values captured by a match, in template order. An optional parameter or catch-all
/// that matched nothing is `None`: the host sends it as `null` in `Params`
/// (docs/protocol/functions-host.md §1.3, errata).
pub type RouteValues = Vec<(String, Option<String>)>;

impl RouteTemplate {
    /// Parses a template such as `groups/{group}/send` or `app/{*path}`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim().trim_matches('/');
        let mut segments = Vec::new();
        let parts: Vec<&str> = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split('/').collect()
        };
        for (index, part) in parts.iter().enumerate() {
            let last = index + 1 == parts.len();
            let segment = parse_segment(part)
                .map_err(|reason| format!("route `{text}`: segment `{part}`: {reason}"))?;
            let must_be_last = matches!(
                segment,
                Segment::CatchAll { .. } | Segment::Parameter { optional: true, .. }
            );
            if must_be_last && !last {
                return Err(format!(
                    "route `{text}`: `{part}` may only be the last segment"
                ));
            }
            segments.push(segment);
        }
        Ok(Self {
            text: trimmed.to_owned(),
            segments,
        })
    }

    /// The template as written (without surrounding slashes).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Matches a request path relative to the route prefix, e.g. `groups/room-1/send`.
    /// Segments are percent-decoded; a catch-all keeps its slashes.
    pub fn matches(&self, path: &str) -> Option<RouteValues> {
        let path = path.trim_matches('/');
        let parts: Vec<&str> = if path.is_empty() {
            Vec::new()
        } else {
            path.split('/').collect()
        };
        let mut values = Vec::new();
        let mut index = 0;
        for segment in &self.segments {
            match segment {
                Segment::Literal(literal) => {
                    let part = parts.get(index)?;
                    if !decode(part).eq_ignore_ascii_case(literal) {
                        return None;
                    }
                    index += 1;
                }
                Segment::Parameter {
                    name,
                    constraint,
                    optional,
                } => match parts.get(index) {
                    Some(part) => {
                        let value = decode(part);
                        if value.is_empty() || !constraint.is_none_or(|c| c.accepts(&value)) {
                            return None;
                        }
                        values.push((name.clone(), Some(value)));
                        index += 1;
                    }
                    None if *optional => values.push((name.clone(), None)),
                    None => return None,
                },
                Segment::CatchAll { name } => {
                    let rest = parts[index.min(parts.len())..]
                        .iter()
                        .map(|part| decode(part))
                        .collect::<Vec<_>>()
                        .join("/");
                    values.push((name.clone(), Some(rest).filter(|rest| !rest.is_empty())));
                    index = parts.len();
                }
            }
        }
        (index == parts.len()).then_some(values)
    }

    /// Orders templates as ASP.NET routing does: literals before parameters before catch-alls,
    /// segment by segment, so `groups/all` wins over `groups/{name}`.
    pub fn precedence_cmp(&self, other: &Self) -> Ordering {
        let rank = |segment: &Segment| match segment {
            Segment::Literal(_) => 0,
            Segment::Parameter {
                constraint: Some(_),
                ..
            } => 1,
            Segment::Parameter { .. } => 2,
            Segment::CatchAll { .. } => 3,
        };
        for (mine, theirs) in self.segments.iter().zip(&other.segments) {
            match rank(mine).cmp(&rank(theirs)) {
                Ordering::Equal => continue,
                unequal => return unequal,
            }
        }
        other.segments.len().cmp(&self.segments.len())
    }
}

impl Constraint {
    fn accepts(self, value: &str) -> bool {
        match self {
            Constraint::Int => value.parse::<i32>().is_ok(),
            Constraint::Alpha => value.chars().all(|c| c.is_ascii_alphabetic()),
            Constraint::Guid => is_guid(value),
        }
    }
}

fn parse_segment(part: &str) -> Result<Segment, String> {
    let Some(inner) = part
        .strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
    else {
        if part.contains('{') || part.contains('}') {
            return Err("a parameter must be the whole segment".into());
        }
        if part.is_empty() {
            return Err("empty segment".into());
        }
        return Ok(Segment::Literal(decode(part)));
    };
    if let Some(name) = inner.strip_prefix("**").or_else(|| inner.strip_prefix('*')) {
        check_name(name)?;
        return Ok(Segment::CatchAll {
            name: name.to_owned(),
        });
    }
    let (inner, optional) = match inner.strip_suffix('?') {
        Some(rest) => (rest, true),
        None => (inner, false),
    };
    let (name, constraint) = match inner.split_once(':') {
        Some((name, constraint)) => (
            name,
            Some(match constraint.to_ascii_lowercase().as_str() {
                "int" => Constraint::Int,
                "alpha" => Constraint::Alpha,
                "guid" => Constraint::Guid,
                other => return Err(format!("the route constraint `{other}` is not supported")),
            }),
        ),
        None => (inner, None),
    };
    check_name(name)?;
    Ok(Segment::Parameter {
        name: name.to_owned(),
        constraint,
        optional,
    })
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Err(format!("`{name}` is not a valid parameter name"));
    }
    Ok(())
}

fn decode(part: &str) -> String {
    percent_encoding::percent_decode_str(part)
        .decode_utf8_lossy()
        .into_owned()
}

fn is_guid(value: &str) -> bool {
    let value = value.trim_start_matches('{').trim_end_matches('}');
    let groups: Vec<&str> = value.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    (groups.len() == 5
        && groups.iter().zip(lengths).all(|(group, length)| {
            group.len() == length && group.chars().all(|c| c.is_ascii_hexdigit())
        }))
        || (value.len() == 32 && value.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(text: &str) -> RouteTemplate {
        RouteTemplate::parse(text).expect("valid template")
    }

    #[test]
    fn literals_match_case_insensitively() {
        assert_eq!(template("negotiate").matches("Negotiate"), Some(vec![]));
        assert_eq!(template("negotiate").matches("negotiate/extra"), None);
    }

    #[test]
    fn parameters_and_catch_all_capture_decoded_values() {
        let values = template("groups/{group}/send").matches("groups/room%201/send");
        assert_eq!(values, Some(vec![("group".into(), Some("room 1".into()))]));
        let values = template("app/{*path}").matches("app/css/site.css");
        assert_eq!(
            values,
            Some(vec![("path".into(), Some("css/site.css".into()))])
        );
        let values = template("app/{*path}").matches("app/");
        assert_eq!(values, Some(vec![("path".into(), None)]));
        assert_eq!(template("app/{*path}").matches("other/x"), None);
    }

    #[test]
    fn optional_and_constrained_parameters() {
        assert_eq!(
            template("items/{id?}").matches("items"),
            Some(vec![("id".into(), None)])
        );
        assert_eq!(template("items/{id:int}").matches("items/abc"), None);
        assert_eq!(
            template("items/{id:int}").matches("items/42"),
            Some(vec![("id".into(), Some("42".into()))])
        );
    }

    #[test]
    fn unsupported_templates_are_refused() {
        for bad in [
            "a{b}c",
            "{*rest}/more",
            "{id?}/x",
            "{id:regex(x)}",
            "{}",
            "a//b",
        ] {
            assert!(
                RouteTemplate::parse(bad).is_err(),
                "{bad} should be refused"
            );
        }
    }

    #[test]
    fn literal_routes_take_precedence_over_parameters() {
        let literal = template("groups/all");
        let parameter = template("groups/{name}");
        let catch_all = template("groups/{*rest}");
        assert_eq!(literal.precedence_cmp(&parameter), Ordering::Less);
        assert_eq!(parameter.precedence_cmp(&catch_all), Ordering::Less);
    }
}
