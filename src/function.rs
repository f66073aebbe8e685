//! The functions this handler implements: one [`Function`] variant per function folder.
//!
//! The folder name is the route the host POSTs to; [`Function::from_name`] resolves it once, at
//! start-up (`bindings::read_app`) and per invocation (`functions::invoke`), and everything else
//! matches on the variant. What a function needs from its `function.json` and from the request
//! is declared here once, in [`Function::needs`].
//!
//! Adding a function: a folder with a `function.json`, a variant here (name and needs), a module
//! in `functions/` and its arm in `functions::invoke` (an exhaustive `match`, so the compiler
//! asks for it).

/// One function folder the handler serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Function {
    /// `negotiate`: the verified user's SignalR client token.
    Negotiate,
    /// `addToGroup`: the caller (or, for admins, another user) joins a group.
    AddToGroup,
    /// `removeFromGroup`: leaves a group.
    RemoveFromGroup,
    /// `removeFromAllGroups`: leaves every group.
    RemoveFromAllGroups,
    /// `sendToGroup`: a message to a group, stamped with its verified sender.
    SendToGroup,
    /// `sendToUser`: a message to one user, stamped with its verified sender.
    SendToUser,
    /// `index`: the demo page's static files from `www/`.
    Index,
    /// `connect`: the Web PubSub event handler.
    Connect,
    /// `refresh`: a live connection's login renewed without reconnecting (ASP.NET Core 11's
    /// client contract on top of the service's `:refreshAuth`).
    Refresh,
    /// `upstream`: the SignalR Service's upstream (connection events and client invocations).
    Upstream,
}

/// What a function needs from its `function.json` and accepts from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// A `signalR` output binding with a literal `hubName`: the function emits SignalR items.
    pub signalr_output: bool,
    /// Reads the `signalRConnectionInfo` input when `function.json` has one; without it the
    /// handler mints tokens itself and needs `SIGNALR_HUB_NAME`.
    pub connection_info: bool,
    /// Called by browsers with a JSON body: `application/json` is required and an ambient
    /// credential from a cross-site context is refused (`functions::verified_json_request`).
    pub json_body: bool,
    /// Accepts the bearer token in the `access_token` query (browsers cannot set headers on
    /// WebSocket and Server-Sent Events requests; everywhere else a token in a URL is refused).
    pub access_token_query: bool,
}

impl Needs {
    const NOTHING: Self = Self {
        signalr_output: false,
        connection_info: false,
        json_body: false,
        access_token_query: false,
    };
    /// The group and message functions: a JSON body in, SignalR items out.
    const JSON_TO_SIGNALR: Self = Self {
        signalr_output: true,
        json_body: true,
        ..Self::NOTHING
    };
}

impl Function {
    /// Every function, in the order the README lists them.
    pub const ALL: [Self; 10] = [
        Self::Negotiate,
        Self::AddToGroup,
        Self::RemoveFromGroup,
        Self::RemoveFromAllGroups,
        Self::SendToGroup,
        Self::SendToUser,
        Self::Index,
        Self::Connect,
        Self::Refresh,
        Self::Upstream,
    ];

    /// The folder name, which is also the route.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Negotiate => "negotiate",
            Self::AddToGroup => "addToGroup",
            Self::RemoveFromGroup => "removeFromGroup",
            Self::RemoveFromAllGroups => "removeFromAllGroups",
            Self::SendToGroup => "sendToGroup",
            Self::SendToUser => "sendToUser",
            Self::Index => "index",
            Self::Connect => "connect",
            Self::Refresh => "refresh",
            Self::Upstream => "upstream",
        }
    }

    /// The function served at `name` (exact, case-sensitive, as the host routes).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|function| function.name() == name)
    }

    /// What the function needs.
    pub const fn needs(self) -> Needs {
        match self {
            Self::Negotiate => Needs {
                connection_info: true,
                access_token_query: true,
                ..Needs::NOTHING
            },
            Self::AddToGroup
            | Self::RemoveFromGroup
            | Self::RemoveFromAllGroups
            | Self::SendToGroup
            | Self::SendToUser => Needs::JSON_TO_SIGNALR,
            Self::Index | Self::Connect => Needs::NOTHING,
            // The `signalR` output names the hub (`:refreshAuth`, membership checks) and
            // carries the re-authorization's group removals. No JSON body: the client sends
            // none.
            Self::Refresh => Needs {
                signalr_output: true,
                ..Needs::NOTHING
            },
            // Emits group actions and messages; its body is the service's, not a browser's.
            Self::Upstream => Needs {
                signalr_output: true,
                ..Needs::NOTHING
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_nothing_else_resolves() {
        for function in Function::ALL {
            assert_eq!(Function::from_name(function.name()), Some(function));
        }
        for other in ["", "Negotiate", "negotiate/", "negotiate ", "admin"] {
            assert_eq!(Function::from_name(other), None, "{other:?}");
        }
    }

    #[test]
    fn only_negotiate_reads_a_token_from_the_query() {
        assert!(Function::Negotiate.needs().access_token_query);
        assert!(!Function::SendToGroup.needs().access_token_query);
        let query = Function::ALL
            .into_iter()
            .filter(|function| function.needs().access_token_query);
        assert_eq!(query.collect::<Vec<_>>(), vec![Function::Negotiate]);
    }
}
