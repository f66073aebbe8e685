//! Where the policy comes from: `POLICY_FILE`, else `policy.json` at the app root, else the
//! built-in default.

use std::path::Path;

use crate::policy::Policy;
use crate::settings::{ConfigError, Env};

impl Policy {
    /// `POLICY_FILE` (relative to the app root) must exist when set; when unset, `policy.json`
    /// is used if present, else the built-in default, which allows only the caller's own groups.
    pub fn from_env(env: &Env, app_root: &Path) -> Result<Self, ConfigError> {
        match env.get("POLICY_FILE") {
            Some(file) => Self::load(&app_root.join(file), "POLICY_FILE"),
            None => {
                let path = app_root.join("policy.json");
                if path.is_file() {
                    Self::load(&path, "policy.json")
                } else {
                    Ok(Self::default_policy())
                }
            }
        }
    }
}
