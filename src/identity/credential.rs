//! Where a caller's token may come from, and the one rule for reading it.
//!
//! Every token the handler reads (the bearer token, the visitor token, the Web PubSub app
//! token) may come in one header or one query parameter. [`one_token`] reads all of them with
//! the same rule: one value at most in each place, no comma-joined value (a proxy's way of
//! folding two), and a header and a query value that differ are refused, so no layer can pick a
//! different token than the one verified.
//!
//! `Authorization: Bearer …` first; the `access_token` query parameter as well, but only at
//! `negotiate` ([`QueryToken::for_function`]): browsers cannot set headers on WebSocket or
//! Server-Sent Events requests and the SignalR client sends it there. Everywhere else a token in
//! a URL would only end up in proxy and access logs, so it is refused. Headers such as
//! `x-ms-client-principal-id` are never read: any client can set them.

use crate::identity::IdentityError;
use crate::invocation::HttpRequestData;

/// Whether the `access_token` query parameter may carry the bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryToken {
    /// `negotiate`: the SignalR browser client may send the token in the query.
    Accepted,
    /// Every other function: a token in the query is refused, not ignored.
    Refused,
}

/// How a token is written in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// The header value is the token itself.
    Bare,
    /// `<scheme> <token>`, the scheme matched case-insensitively; anything else is refused.
    Required(&'static str),
    /// `<scheme> <token>` or the bare token.
    Optional(&'static str),
}

/// Where one kind of token may be presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenPlace {
    /// The header that may carry it (matched case-insensitively).
    pub header: &'static str,
    /// How the header writes it.
    pub scheme: Scheme,
    /// The query parameter that may carry it.
    pub query: &'static str,
    /// Whether the query parameter is accepted for this function.
    pub query_token: QueryToken,
}

impl TokenPlace {
    /// The bearer token: `Authorization: Bearer …`, or `access_token` where `query_token` allows.
    pub fn bearer(query_token: QueryToken) -> Self {
        Self {
            header: "Authorization",
            scheme: Scheme::Required("Bearer"),
            query: "access_token",
            query_token,
        }
    }

    /// True when the request carries the header or the query parameter, whatever their values:
    /// the source that reads this place then decides, and refuses a bad one.
    pub fn presented(&self, request: &HttpRequestData) -> bool {
        !request.header_values(self.header).is_empty()
            || !request.query_values(self.query).is_empty()
    }

    /// The one token of `request` in this place (see [`one_token`]).
    pub fn token<'r>(
        &self,
        request: &'r HttpRequestData,
    ) -> Result<Option<&'r str>, CredentialError> {
        one_token(
            self,
            &request.header_values(self.header),
            &request.query_values(self.query),
        )
    }
}

/// Why a request's token could not be read. The `Display` text is for logs: it names the
/// place, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// A token in a query parameter this function does not accept.
    #[error("the {0} query parameter is not accepted here")]
    QueryNotAllowed(&'static str),
    /// The header came more than once, or as one comma-joined value.
    #[error("more than one {0} header")]
    RepeatedHeader(&'static str),
    /// The query parameter came more than once, or as one comma-joined value.
    #[error("more than one {0} query parameter")]
    RepeatedQuery(&'static str),
    /// The header lacks the required scheme.
    #[error("the {header} header is not a {scheme} credential")]
    WrongScheme {
        /// The header's name.
        header: &'static str,
        /// The scheme it must use.
        scheme: &'static str,
    },
    /// The header and the query parameter carry different tokens.
    #[error("the {header} header and the {query} query parameter differ")]
    HeaderAndQueryDiffer {
        /// The header's name.
        header: &'static str,
        /// The query parameter's name.
        query: &'static str,
    },
    /// The token is presented but empty.
    #[error("the token in {0} is empty")]
    Empty(&'static str),
}

/// The one token among a request's `headers` values of `place.header` and `queries` values of
/// `place.query`: `Ok(None)` when neither is present. Refused: the query where
/// `place.query_token` refuses it, two header values or two query values (also comma-joined
/// into one), a header without the required scheme, a header and a query value that differ, and
/// an empty token. Values are trimmed.
pub fn one_token<'r>(
    place: &TokenPlace,
    headers: &[&'r str],
    queries: &[&'r str],
) -> Result<Option<&'r str>, CredentialError> {
    if place.query_token == QueryToken::Refused && !queries.is_empty() {
        return Err(CredentialError::QueryNotAllowed(place.query));
    }
    let from_header = match headers {
        [] => None,
        [value] if value.contains(',') => {
            return Err(CredentialError::RepeatedHeader(place.header));
        }
        [value] => Some(strip_scheme(place, value.trim())?),
        _ => return Err(CredentialError::RepeatedHeader(place.header)),
    };
    let from_query = match queries {
        [] => None,
        [value] if value.contains(',') => {
            return Err(CredentialError::RepeatedQuery(place.query));
        }
        [value] => Some(value.trim()),
        _ => return Err(CredentialError::RepeatedQuery(place.query)),
    };
    let token = match (from_header, from_query) {
        (Some(header), Some(query)) if header != query => {
            return Err(CredentialError::HeaderAndQueryDiffer {
                header: place.header,
                query: place.query,
            });
        }
        (Some(token), _) => token,
        (None, Some(token)) => token,
        (None, None) => return Ok(None),
    };
    if token.is_empty() {
        let place = if from_header.is_some() {
            place.header
        } else {
            place.query
        };
        return Err(CredentialError::Empty(place));
    }
    Ok(Some(token))
}

fn strip_scheme<'r>(place: &TokenPlace, value: &'r str) -> Result<&'r str, CredentialError> {
    let with_scheme = |scheme: &str| match value.split_once(' ') {
        Some((written, token)) if written.eq_ignore_ascii_case(scheme) => Some(token.trim()),
        _ => None,
    };
    match place.scheme {
        Scheme::Bare => Ok(value),
        Scheme::Optional(scheme) => Ok(with_scheme(scheme).unwrap_or(value)),
        Scheme::Required(scheme) => with_scheme(scheme).ok_or(CredentialError::WrongScheme {
            header: place.header,
            scheme,
        }),
    }
}

/// True when the request carries an `Authorization` header or an `access_token` query
/// parameter, whatever their value: the JWT source then decides, and refuses a bad one.
pub fn bearer_presented(request: &HttpRequestData) -> bool {
    TokenPlace::bearer(QueryToken::Accepted).presented(request)
}

/// The bearer token of `request`, by the rule of [`one_token`].
pub fn bearer_token(
    request: &HttpRequestData,
    query_token: QueryToken,
) -> Result<&str, IdentityError> {
    match TokenPlace::bearer(query_token).token(request) {
        Ok(Some(token)) => Ok(token),
        Ok(None) | Err(CredentialError::Empty(_)) => Err(IdentityError::MissingCredential),
        Err(CredentialError::QueryNotAllowed(_)) => Err(IdentityError::QueryTokenNotAllowed),
        Err(error) => Err(IdentityError::Credential(error)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request(headers: serde_json::Value, query: serde_json::Value) -> HttpRequestData {
        HttpRequestData::from_value(&json!({"Method": "POST", "Headers": headers, "Query": query}))
            .expect("valid")
    }

    #[test]
    fn takes_the_header_or_the_query() {
        let header = request(json!({"authorization": ["bearer abc"]}), json!({}));
        assert_eq!(
            bearer_token(&header, QueryToken::Refused).expect("token"),
            "abc"
        );
        let query = request(json!({}), json!({"access_token": "xyz"}));
        assert_eq!(
            bearer_token(&query, QueryToken::Accepted).expect("token"),
            "xyz"
        );
        let same = request(
            json!({"Authorization": ["Bearer t"]}),
            json!({"access_token": "t"}),
        );
        assert_eq!(
            bearer_token(&same, QueryToken::Accepted).expect("token"),
            "t"
        );
    }

    #[test]
    fn the_query_token_is_refused_where_only_the_header_is_accepted() {
        let query = request(json!({}), json!({"access_token": "xyz"}));
        assert!(matches!(
            bearer_token(&query, QueryToken::Refused),
            Err(IdentityError::QueryTokenNotAllowed)
        ));
        let both = request(
            json!({"Authorization": ["Bearer t"]}),
            json!({"access_token": "t"}),
        );
        assert!(bearer_token(&both, QueryToken::Refused).is_err());
    }

    #[test]
    fn refuses_missing_ambiguous_and_non_bearer_credentials() {
        let cases = [
            (json!({}), json!({}), "missing"),
            (json!({"Authorization": ["Bearer "]}), json!({}), "empty"),
            (
                json!({"Authorization": ["Basic dXNlcjpwYXNz"]}),
                json!({}),
                "basic",
            ),
            (
                json!({"Authorization": ["Bearer a", "Bearer b"]}),
                json!({}),
                "two headers",
            ),
            (
                json!({}),
                json!({"access_token": "a,b"}),
                "two query values",
            ),
            (
                json!({"Authorization": ["Bearer a"]}),
                json!({"access_token": "b"}),
                "differ",
            ),
            (
                json!({"x-ms-client-principal-id": ["alice"]}),
                json!({}),
                "principal header only",
            ),
        ];
        for (headers, query, description) in cases {
            assert!(
                bearer_token(&request(headers, query), QueryToken::Accepted).is_err(),
                "{description}"
            );
        }
    }

    const VISITOR: TokenPlace = TokenPlace {
        header: "X-Visitor-Token",
        scheme: Scheme::Bare,
        query: "visitor_token",
        query_token: QueryToken::Accepted,
    };

    #[test]
    fn one_token_refuses_every_ambiguity_for_every_place() {
        let bearer = TokenPlace::bearer(QueryToken::Accepted);
        let app = TokenPlace {
            header: "X-App-Token",
            scheme: Scheme::Optional("Bearer"),
            query: "app_token",
            query_token: QueryToken::Accepted,
        };
        for place in [bearer, VISITOR, app] {
            let header = |token: &'static str| match place.scheme {
                Scheme::Required(_) => format!("Bearer {token}"),
                _ => token.to_owned(),
            };
            let (a, b) = (header("a"), header("b"));
            let cases: [(Vec<&str>, Vec<&str>, CredentialError); 6] = [
                (
                    vec![&a, &a],
                    vec![],
                    CredentialError::RepeatedHeader(place.header),
                ),
                (
                    vec![&a, &b],
                    vec![],
                    CredentialError::RepeatedHeader(place.header),
                ),
                (
                    vec!["a,b"],
                    vec![],
                    CredentialError::RepeatedHeader(place.header),
                ),
                (
                    vec![],
                    vec!["a", "a"],
                    CredentialError::RepeatedQuery(place.query),
                ),
                (
                    vec![],
                    vec!["a,b"],
                    CredentialError::RepeatedQuery(place.query),
                ),
                (
                    vec![&a],
                    vec!["b"],
                    CredentialError::HeaderAndQueryDiffer {
                        header: place.header,
                        query: place.query,
                    },
                ),
            ];
            for (headers, queries, expected) in cases {
                assert_eq!(
                    one_token(&place, &headers, &queries),
                    Err(expected),
                    "{place:?}: {headers:?} {queries:?}"
                );
            }
            assert_eq!(one_token(&place, &[&a], &["a"]), Ok(Some("a")), "{place:?}");
            assert_eq!(one_token(&place, &[], &[" a "]), Ok(Some("a")), "{place:?}");
            assert_eq!(one_token(&place, &[], &[]), Ok(None), "{place:?}");
            assert_eq!(
                one_token(&place, &[], &[" "]),
                Err(CredentialError::Empty(place.query)),
                "{place:?}"
            );
        }
    }

    #[test]
    fn one_token_applies_the_place_s_scheme_and_query_rule() {
        let bearer = TokenPlace::bearer(QueryToken::Refused);
        assert_eq!(
            one_token(&bearer, &[], &["t"]),
            Err(CredentialError::QueryNotAllowed("access_token"))
        );
        assert_eq!(
            one_token(&bearer, &["Basic dXNlcjpwYXNz"], &[]),
            Err(CredentialError::WrongScheme {
                header: "Authorization",
                scheme: "Bearer"
            })
        );
        assert_eq!(one_token(&bearer, &["bEaReR  t "], &[]), Ok(Some("t")));
        let optional = TokenPlace {
            scheme: Scheme::Optional("Bearer"),
            ..VISITOR
        };
        assert_eq!(one_token(&optional, &["Bearer t"], &[]), Ok(Some("t")));
        assert_eq!(one_token(&optional, &["t"], &["t"]), Ok(Some("t")));
        assert_eq!(
            one_token(&VISITOR, &["Bearer t"], &[]),
            Ok(Some("Bearer t")),
            "a bare place takes the value as it is"
        );
    }
}
