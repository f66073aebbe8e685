//! When a SignalR connection's login ends: the close-on-authentication-expiry claims.
//!
//! A token's `exp` is checked only when a client connects, so without more an open WebSocket
//! outlives the login it was issued for. The service closes a connection whose token carries
//! `asrs.s.coae` = `"true"` at `asrs.s.aeo` (unix seconds as a decimal string; the SDK writes the
//! two together or not at all: `docs/protocol/signalr-identity-2026.md` §1.1), with a close
//! message that lets the client reconnect through negotiate. Every token the handler issues
//! carries both, unless `SIGNALR_CLOSE_ON_AUTH_EXPIRY=false`.
//!
//! The end of a login is the credential's own expiry where it has one (a JWT's or visitor
//! token's `exp`). App Service principals and client certificates carry none the handler can
//! trust as the end of a *session* (a certificate's `notAfter` is months away), so for them the
//! end is `now + SIGNALR_SESSION_LIFETIME_SECONDS` (default: the minted token's lifetime), and
//! the client comes back through negotiate or `refresh`, where the source is checked again.

use crate::identity::{IdentitySource, VerifiedUser};
use crate::settings::{ConfigError, Env};
use crate::signalr::access_token::MINTED_TOKEN_LIFETIME_SECONDS;

/// The claim that asks the service to close the connection at [`AEO_CLAIM`].
pub const COAE_CLAIM: &str = "asrs.s.coae";
/// The deadline claim: unix seconds, as a decimal string.
pub const AEO_CLAIM: &str = "asrs.s.aeo";
/// Turns the claims off (`false`); on by default.
pub const CLOSE_ON_EXPIRY_SETTING: &str = "SIGNALR_CLOSE_ON_AUTH_EXPIRY";
/// Session length for sources without an expiry.
pub const SESSION_LIFETIME_SETTING: &str = "SIGNALR_SESSION_LIFETIME_SECONDS";
/// Longest accepted session length (one day): a session that outlives a working day is a login
/// nobody re-checks.
const MAX_SESSION_SECONDS: u64 = 24 * 3600;

/// Whether issued tokens carry the close-on-expiry claims, and the session length for sources
/// without an expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthExpiry {
    /// `SIGNALR_CLOSE_ON_AUTH_EXPIRY=false`: no claims; connections live until they close, and
    /// `refresh` answers `404 refresh_disabled` (there is no deadline to move).
    Off,
    /// Tokens carry `asrs.s.coae`/`asrs.s.aeo`.
    CloseAtEnd {
        /// `SIGNALR_SESSION_LIFETIME_SECONDS`: the login length of sources without an expiry.
        session_seconds: u64,
    },
}

impl AuthExpiry {
    /// Reads `SIGNALR_CLOSE_ON_AUTH_EXPIRY` and `SIGNALR_SESSION_LIFETIME_SECONDS`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let on = env.bool(CLOSE_ON_EXPIRY_SETTING, true)?;
        let session = env
            .seconds(
                SESSION_LIFETIME_SETTING,
                MINTED_TOKEN_LIFETIME_SECONDS,
                MAX_SESSION_SECONDS,
            )?
            .as_secs();
        if !on {
            // A session length that does nothing is a setting the operator believes in.
            if env.get(SESSION_LIFETIME_SETTING).is_some() {
                return Err(ConfigError::new(
                    SESSION_LIFETIME_SETTING,
                    format!(
                        "is set but {CLOSE_ON_EXPIRY_SETTING}=false turns session ends off; unset one of them"
                    ),
                ));
            }
            return Ok(Self::Off);
        }
        if session == 0 {
            return Err(ConfigError::new(
                SESSION_LIFETIME_SETTING,
                format!(
                    "must be at least 1 second (connections of App Service and certificate users would close at once); to turn session ends off set {CLOSE_ON_EXPIRY_SETTING}=false"
                ),
            ));
        }
        Ok(Self::CloseAtEnd {
            session_seconds: session,
        })
    }

    /// The session length when the claims are on, `None` when they are off.
    pub fn session_on(self) -> Option<u64> {
        match self {
            Self::Off => None,
            Self::CloseAtEnd { session_seconds } => Some(session_seconds),
        }
    }

    /// The end of `user`'s login (unix seconds) when the claims are on, seen at `now`.
    pub fn deadline(self, user: &VerifiedUser, now: u64) -> Option<u64> {
        let Self::CloseAtEnd { session_seconds } = self else {
            return None;
        };
        Some(match user.source() {
            IdentitySource::Jwt | IdentitySource::AnonymousVisitor => user.expires_at(),
            // A connection's user on an upstream request is never issued a token; if one were,
            // nothing about its login's end is known here, so it gets the session length.
            IdentitySource::AppService
            | IdentitySource::StaticWebApps
            | IdentitySource::ClientCertificate
            | IdentitySource::ServiceConnection => {
                now.saturating_add(session_seconds).min(user.expires_at())
            }
        })
    }
}

/// `seconds` since the epoch as the ISO 8601 UTC text `:refreshAuth` takes for `expireTime`
/// (`YYYY-MM-DDTHH:MM:SSZ`).
pub fn iso8601_utc(seconds: u64) -> String {
    let days = seconds / 86_400;
    let in_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar (Howard
/// Hinnant's `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<AuthExpiry, ConfigError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let lookup = move |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        AuthExpiry::from_env(&Env::new(&lookup))
    }

    #[test]
    fn on_by_default_with_the_token_lifetime_as_session() {
        assert_eq!(
            env(&[]).expect("valid"),
            AuthExpiry::CloseAtEnd {
                session_seconds: MINTED_TOKEN_LIFETIME_SECONDS
            }
        );
        assert_eq!(
            env(&[(CLOSE_ON_EXPIRY_SETTING, "false")]).expect("valid"),
            AuthExpiry::Off
        );
    }

    #[test]
    fn bad_settings_stop_start_up_naming_the_setting() {
        for (pairs, setting) in [
            (
                vec![(CLOSE_ON_EXPIRY_SETTING, "yes")],
                CLOSE_ON_EXPIRY_SETTING,
            ),
            (
                vec![(SESSION_LIFETIME_SETTING, "0")],
                SESSION_LIFETIME_SETTING,
            ),
            (
                vec![(SESSION_LIFETIME_SETTING, "-5")],
                SESSION_LIFETIME_SETTING,
            ),
            (
                vec![(SESSION_LIFETIME_SETTING, "86401")],
                SESSION_LIFETIME_SETTING,
            ),
            (
                vec![
                    (CLOSE_ON_EXPIRY_SETTING, "false"),
                    (SESSION_LIFETIME_SETTING, "600"),
                ],
                SESSION_LIFETIME_SETTING,
            ),
        ] {
            let error = env(&pairs).expect_err("refused");
            assert_eq!(error.setting(), setting, "{pairs:?}");
        }
    }

    #[test]
    fn the_deadline_is_the_credential_end_or_the_session_length() {
        let expiry = AuthExpiry::CloseAtEnd {
            session_seconds: 600,
        };
        // `for_tests` users are JWT users with no expiry: their own end wins.
        let user = VerifiedUser::for_tests("alice", serde_json::json!({}));
        assert_eq!(expiry.deadline(&user, 1000), Some(u64::MAX));
        assert_eq!(AuthExpiry::Off.deadline(&user, 1000), None);
    }

    #[test]
    fn expire_times_are_iso_8601_utc() {
        assert_eq!(iso8601_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601_utc(1_782_907_200), "2026-07-01T12:00:00Z");
        assert_eq!(iso8601_utc(4_102_444_799), "2099-12-31T23:59:59Z");
    }
}
