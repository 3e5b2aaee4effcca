//! API and enrolment tokens, and roles.
//!
//! A token is `onp_<id>_<secret>` (API) or `onpe_<id>_<secret>`
//! (enrolment): the id finds the record, the secret (32 random bytes,
//! base32) is checked against its stored SHA-256 in constant time. Only
//! the hash is stored; the secret is shown once, when it is made.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::store::{Token, Write};
use crate::bundle::validate::hex;

/// What a token may do. Each role can do what the ones before it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything but tokens' secrets and the audit log.
    Viewer,
    /// Applies and deletes records, acknowledges alerts; later forwards
    /// ports and resets nodes.
    Operator,
    /// Manages users, tokens and enrolment; reads the audit log.
    Admin,
}

impl Role {
    /// Parses `viewer`, `operator`, `admin`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// The name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user.
    pub user: String,
    /// The token's role.
    pub role: Role,
    /// The token's id.
    pub token_id: String,
}

impl Principal {
    /// The control plane itself (bootstrap, demo).
    pub fn system() -> Principal {
        Principal {
            user: "system".into(),
            role: Role::Admin,
            token_id: String::new(),
        }
    }

    /// `user/<name>`, for the audit log.
    pub fn actor(&self) -> String {
        format!("user/{}", self.user)
    }

    /// Ok when the role is at least `need`; else the refusal.
    pub fn require(&self, need: Role, what: &str) -> Result<(), String> {
        if self.role >= need {
            Ok(())
        } else {
            Err(format!(
                "{what} needs the {need} role; the token of user {:?} has {}",
                self.user, self.role
            ))
        }
    }
}

/// The two kinds of token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// `onp_`: an API token.
    Api,
    /// `onpe_`: a one-time enrolment token.
    Enrol,
}

impl TokenKind {
    fn prefix(self) -> &'static str {
        match self {
            TokenKind::Api => "onp",
            TokenKind::Enrol => "onpe",
        }
    }

    /// `api` or `enrol`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Api => "api",
            TokenKind::Enrol => "enrol",
        }
    }
}

const B32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A new token: `(id, the token string, the hash to store)`.
pub fn new_token(kind: TokenKind) -> Result<(String, String, String), String> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| format!("random source: {e}"))?;
    let s: String = secret
        .iter()
        .map(|b| B32[usize::from(b & 31)] as char)
        .collect();
    let id = super::id::new();
    let token = format!("{}_{id}_{s}", kind.prefix());
    let hash = hash_secret(&s);
    Ok((id, token, hash))
}

/// The stored hash of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Splits a token into its kind, id and secret; `None` when it is not
/// one of ours.
pub fn split(token: &str) -> Option<(TokenKind, &str, &str)> {
    let token = token.trim();
    let (prefix, rest) = token.split_once('_')?;
    let kind = match prefix {
        "onp" => TokenKind::Api,
        "onpe" => TokenKind::Enrol,
        _ => return None,
    };
    let (id, secret) = rest.split_once('_')?;
    if !super::id::is_id(id) || secret.is_empty() {
        return None;
    }
    Some((kind, id, secret))
}

/// How fresh an API token's `usedAt` is kept, in seconds: a use is
/// written back only when the recorded one is older than this, so a busy
/// token costs one store write a minute, not one per request.
pub const USED_AT_RESOLUTION: i64 = 60;

/// Records that the API token `t` authenticated at `now` (Unix seconds):
/// sets its `usedAt` and gives the write that stores it, when the recorded
/// use is [`USED_AT_RESOLUTION`] old or more (or in the future: a clock
/// set back); `None` when it is recent enough already.
pub fn note_use(t: &mut Token, now: i64) -> Option<Write> {
    if t.kind != TokenKind::Api.as_str()
        || (t.used_at <= now && now - t.used_at < USED_AT_RESOLUTION)
    {
        return None;
    }
    t.used_at = now;
    Some(Write::TokenUsed {
        id: t.id.clone(),
        at: now,
    })
}

/// Whether `secret` hashes to `stored`, in time independent of where
/// they differ.
pub fn check(secret: &str, stored: &str) -> bool {
    let h = hash_secret(secret);
    h.len() == stored.len()
        && h.bytes()
            .zip(stored.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_check() {
        let (id, tok, hash) = new_token(TokenKind::Enrol).unwrap();
        let (kind, tid, secret) = split(&tok).unwrap();
        assert_eq!(kind, TokenKind::Enrol);
        assert_eq!(tid, id);
        assert!(check(secret, &hash));
        assert!(!check("x", &hash));
        assert!(split("onp_notanid_secret").is_none());
        assert!(split("Bearer abc").is_none());
    }

    #[test]
    fn an_api_tokens_use_is_written_at_most_once_a_minute() {
        let mut t = Token {
            id: "t1".into(),
            kind: "api".into(),
            ..Default::default()
        };
        let w = note_use(&mut t, 1_000).unwrap();
        assert!(matches!(w, Write::TokenUsed { ref id, at: 1_000 } if id == "t1"));
        assert_eq!(t.used_at, 1_000);
        // Within the minute: nothing to write, the first use stands.
        assert!(note_use(&mut t, 1_000 + USED_AT_RESOLUTION - 1).is_none());
        assert_eq!(t.used_at, 1_000);
        // A minute on: written again.
        assert!(note_use(&mut t, 1_000 + USED_AT_RESOLUTION).is_some());
        assert_eq!(t.used_at, 1_000 + USED_AT_RESOLUTION);
        // A clock set back: the use is recorded at the new time.
        assert!(note_use(&mut t, 500).is_some());
        assert_eq!(t.used_at, 500);
        // Enrolment tokens' usedAt is their one use, never moved.
        let mut e = Token {
            kind: "enrol".into(),
            ..Default::default()
        };
        assert!(note_use(&mut e, 1_000).is_none());
        assert_eq!(e.used_at, 0);
    }

    #[test]
    fn roles_order() {
        let p = Principal {
            user: "v".into(),
            role: Role::Viewer,
            token_id: String::new(),
        };
        let e = p.require(Role::Operator, "apply").unwrap_err();
        assert_eq!(
            e,
            "apply needs the operator role; the token of user \"v\" has viewer"
        );
        assert!(Principal::system().require(Role::Admin, "x").is_ok());
    }
}
