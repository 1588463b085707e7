//! Shim of the original project's `manifest` crate: only what scope_lock.rs
//! uses (ScopeRule, Permission, paths::scope_lock_path), with the same JSON
//! form as the tables the original writes.
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Access level of a rule; `Read < Write`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    Read,
    Write,
}

fn default_recursive() -> bool {
    true
}

/// One allow rule: `target` (and everything below it when `recursive`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ScopeRule {
    pub target: PathBuf,
    pub permission: Permission,
    #[serde(default = "default_recursive")]
    pub recursive: bool,
}

pub mod paths {
    use std::path::PathBuf;

    fn var(name: &str) -> Option<PathBuf> {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    }

    /// `$INSOMNIA_RUNTIME_DIR/scope.lock`, else `$INSOMNIA_HOME/run/scope.lock`,
    /// else `$XDG_RUNTIME_DIR/insomnia/scope.lock`, else
    /// `$HOME/.insomnia/run/scope.lock`; an empty variable counts as unset.
    pub fn scope_lock_path() -> Option<PathBuf> {
        if let Some(d) = var("INSOMNIA_RUNTIME_DIR") {
            return Some(d.join("scope.lock"));
        }
        if let Some(d) = var("INSOMNIA_HOME") {
            return Some(d.join("run").join("scope.lock"));
        }
        if let Some(d) = var("XDG_RUNTIME_DIR") {
            return Some(d.join("insomnia").join("scope.lock"));
        }
        var("HOME").map(|d| d.join(".insomnia").join("run").join("scope.lock"))
    }
}
