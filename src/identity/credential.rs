//! Where a caller's bearer token may come from.
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

/// True when the request carries an `Authorization` header or an `access_token` query
/// parameter, whatever their value: the JWT source then decides, and refuses a bad one.
pub fn bearer_presented(request: &HttpRequestData) -> bool {
    !request.header_values("Authorization").is_empty()
        || !request.query_values("access_token").is_empty()
}

/// The bearer token of `request`, refusing ambiguous requests (two headers, two query values,
/// or a header and a query value that differ), so no layer can pick a different token than
/// the one verified.
pub fn bearer_token(
    request: &HttpRequestData,
    query_token: QueryToken,
) -> Result<&str, IdentityError> {
    let queries = request.query_values("access_token");
    if query_token == QueryToken::Refused && !queries.is_empty() {
        return Err(IdentityError::QueryTokenNotAllowed);
    }
    let headers = request.header_values("Authorization");
    let from_header = match headers.as_slice() {
        [] => None,
        [value] => Some(parse_bearer(value)?),
        _ => {
            return Err(IdentityError::Unusable(
                "more than one Authorization header",
            ));
        }
    };
    let from_query = match queries.as_slice() {
        [] => None,
        [value] if value.contains(',') => {
            return Err(IdentityError::Unusable(
                "more than one access_token query parameter",
            ));
        }
        [value] => Some(value.trim()),
        _ => {
            return Err(IdentityError::Unusable(
                "more than one access_token query parameter",
            ));
        }
    };
    match (from_header, from_query) {
        (Some(header), Some(query)) if header != query => Err(IdentityError::Unusable(
            "the Authorization header and the access_token query parameter differ",
        )),
        (Some(token), _) | (None, Some(token)) if !token.is_empty() => Ok(token),
        _ => Err(IdentityError::MissingCredential),
    }
}

fn parse_bearer(value: &str) -> Result<&str, IdentityError> {
    let value = value.trim();
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(token.trim()),
        _ => Err(IdentityError::Unusable(
            "the Authorization header is not a Bearer credential",
        )),
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
}
