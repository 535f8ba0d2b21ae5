//! Server-side sessions. The browser holds a random token; the database
//! holds only its SHA-256, so a copy of the database cannot be replayed as
//! a login. Sessions end after an idle period or an absolute lifetime,
//! whichever comes first, and on logout.

use std::sync::Arc;

use anyhow::Context;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::{Clock, NS_PER_SEC};

/// How often `last_seen` is written back: a write per request would turn
/// every video range request into a database write, and the idle timeout
/// does not need better than a minute's precision.
const TOUCH_EVERY_NS: i64 = 60 * NS_PER_SEC;

/// Session lifetimes.
#[derive(Clone, Copy, Debug)]
pub struct Lifetimes {
    /// A session unused for this long ends.
    pub idle_ns: i64,
    /// A session ends this long after login, however busy.
    pub absolute_ns: i64,
}

/// A stored session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The user it belongs to.
    pub user: String,
    /// Token that state-changing requests must echo in `X-CSRF-Token`.
    /// Readable by page script (returned by login and `/api/me`), unlike
    /// the cookie, which is what makes it proof of a same-origin caller.
    pub csrf: String,
    /// Login time, ns.
    pub created_ns: i64,
    /// Last use, ns (updated at most once a minute).
    pub last_seen_ns: i64,
    /// Client address at login, for the audit trail.
    pub client: String,
}

/// A session just created: the token goes in the cookie and is never stored.
#[derive(Debug)]
pub struct NewSession {
    /// Cookie value.
    pub token: String,
    /// The stored session.
    pub session: Session,
}

/// The `sessions` tree.
#[derive(Clone)]
pub struct Sessions {
    tree: sled::Tree,
    clock: Arc<dyn Clock>,
    lifetimes: Lifetimes,
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

fn token_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Sessions {
    /// Opens the `sessions` tree of `db`.
    pub fn open(
        db: &sled::Db,
        clock: Arc<dyn Clock>,
        lifetimes: Lifetimes,
    ) -> anyhow::Result<Self> {
        Ok(Sessions {
            tree: db.open_tree("sessions")?,
            clock,
            lifetimes,
        })
    }

    /// The lifetimes in force.
    pub fn lifetimes(&self) -> Lifetimes {
        self.lifetimes
    }

    /// Starts a session for `user` (256-bit token, 128-bit CSRF token).
    pub fn create(&self, user: &str, client: &str) -> anyhow::Result<NewSession> {
        self.prune()?;
        let now = self.clock.now_ns();
        let token = random_hex(32);
        let session = Session {
            user: user.to_owned(),
            csrf: random_hex(16),
            created_ns: now,
            last_seen_ns: now,
            client: client.to_owned(),
        };
        self.tree
            .insert(token_key(&token), serde_json::to_vec(&session)?)
            .context("storing session")?;
        self.tree.flush().context("flushing session")?;
        Ok(NewSession { token, session })
    }

    fn expired(&self, s: &Session, now: i64) -> bool {
        now - s.last_seen_ns >= self.lifetimes.idle_ns
            || now - s.created_ns >= self.lifetimes.absolute_ns
    }

    /// The live session for `token`, refreshing its idle timer; `None`
    /// (and the row deleted) if unknown or expired.
    pub fn get(&self, token: &str) -> anyhow::Result<Option<Session>> {
        // Tokens we issue are 64 hex chars; anything else cannot match, so
        // do not even hash it.
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let key = token_key(token);
        let Some(v) = self.tree.get(key)? else {
            return Ok(None);
        };
        let Ok(mut s) = serde_json::from_slice::<Session>(&v) else {
            self.tree.remove(key)?;
            return Ok(None);
        };
        let now = self.clock.now_ns();
        if self.expired(&s, now) {
            self.tree.remove(key)?;
            return Ok(None);
        }
        if now - s.last_seen_ns >= TOUCH_EVERY_NS {
            s.last_seen_ns = now;
            self.tree.insert(key, serde_json::to_vec(&s)?)?;
        }
        Ok(Some(s))
    }

    /// The live session for `token` without refreshing its idle timer (for
    /// re-checks by long-running responses, which are not the user's doing).
    pub fn peek(&self, token: &str) -> anyhow::Result<Option<Session>> {
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let Some(v) = self.tree.get(token_key(token))? else {
            return Ok(None);
        };
        let s = serde_json::from_slice::<Session>(&v).ok();
        Ok(s.filter(|s| !self.expired(s, self.clock.now_ns())))
    }

    /// Ends the session for `token` (logout).
    pub fn revoke(&self, token: &str) -> anyhow::Result<Option<Session>> {
        let old = self.tree.remove(token_key(token))?;
        self.tree.flush()?;
        Ok(old.and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Ends every session of `user` (removed, or password changed). Returns how many.
    pub fn revoke_user(&self, user: &str) -> anyhow::Result<usize> {
        self.revoke_except(user, None)
    }

    /// Ends every session of `user` except the one for `keep` (the second
    /// factor turned on or off: sessions opened under the old rule end, the
    /// one that made the change goes on). Returns how many ended.
    pub fn revoke_others(&self, user: &str, keep: &str) -> anyhow::Result<usize> {
        self.revoke_except(user, Some(&token_key(keep)))
    }

    /// Ends every session of `user` (and every unreadable one) but the one stored
    /// under `keep`.
    fn revoke_except(&self, user: &str, keep: Option<&[u8]>) -> anyhow::Result<usize> {
        let mut n = 0;
        for item in self.tree.iter() {
            let (k, v) = item?;
            if keep.is_some_and(|keep| k.as_ref() == keep) {
                continue;
            }
            let owner = serde_json::from_slice::<Session>(&v).map(|s| s.user).ok();
            if owner.as_deref().is_none_or(|o| o == user) {
                self.tree.remove(k)?;
                n += 1;
            }
        }
        self.tree.flush()?;
        Ok(n)
    }

    /// Deletes expired sessions (run at each login so abandoned sessions do
    /// not pile up; the count is bounded by logins per lifetime).
    pub fn prune(&self) -> anyhow::Result<usize> {
        let now = self.clock.now_ns();
        let mut n = 0;
        for item in self.tree.iter() {
            let (k, v) = item?;
            let dead = serde_json::from_slice::<Session>(&v)
                .map(|s| self.expired(&s, now))
                .unwrap_or(true);
            if dead {
                self.tree.remove(k)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Number of stored sessions.
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// Whether no sessions are stored.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }
}

/// Compares two secrets in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const MIN: i64 = 60 * NS_PER_SEC;

    fn sessions() -> (tempfile::TempDir, Arc<ManualClock>, Sessions) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let clock = Arc::new(ManualClock::new(1_000 * NS_PER_SEC));
        let s = Sessions::open(
            &db,
            clock.clone(),
            Lifetimes {
                idle_ns: 30 * MIN,
                absolute_ns: 8 * 60 * MIN,
            },
        )
        .unwrap();
        (dir, clock, s)
    }

    #[test]
    fn idle_expiry_is_refreshed_by_use() {
        let (_d, clock, s) = sessions();
        let n = s.create("alice", "127.0.0.1").unwrap();
        assert_eq!(n.token.len(), 64);
        for _ in 0..10 {
            clock.advance(20 * MIN);
            assert!(
                s.get(&n.token).unwrap().is_some(),
                "used every 20 min, stays alive"
            );
        }
        clock.advance(31 * MIN);
        assert!(s.get(&n.token).unwrap().is_none(), "idle for 31 min");
        assert!(s.is_empty(), "expired row is deleted");
    }

    #[test]
    fn absolute_expiry_and_revocation() {
        let (_d, clock, s) = sessions();
        let n = s.create("alice", "x").unwrap();
        for _ in 0..23 {
            clock.advance(20 * MIN);
            assert!(s.get(&n.token).unwrap().is_some());
        }
        clock.advance(20 * MIN); // 8 h since login
        assert!(s.get(&n.token).unwrap().is_none());

        let a = s.create("alice", "x").unwrap();
        let b = s.create("bob", "x").unwrap();
        s.revoke(&a.token).unwrap();
        assert!(s.get(&a.token).unwrap().is_none());
        assert!(s.get(&b.token).unwrap().is_some());
        assert_eq!(s.revoke_user("bob").unwrap(), 1);
        assert!(s.get(&b.token).unwrap().is_none());

        let keep = s.create("carol", "x").unwrap();
        let other = s.create("carol", "y").unwrap();
        let dave = s.create("dave", "x").unwrap();
        assert_eq!(s.revoke_others("carol", &keep.token).unwrap(), 1);
        assert!(s.get(&keep.token).unwrap().is_some());
        assert!(s.get(&other.token).unwrap().is_none());
        assert!(s.get(&dave.token).unwrap().is_some());
    }

    #[test]
    fn only_hashes_are_stored_and_junk_tokens_miss() {
        let (_d, _c, s) = sessions();
        let n = s.create("alice", "x").unwrap();
        for item in s.tree.iter() {
            let (k, v) = item.unwrap();
            assert!(!String::from_utf8_lossy(&k).contains(&n.token));
            assert!(!String::from_utf8_lossy(&v).contains(&n.token));
        }
        for junk in [
            "",
            "x",
            &"g".repeat(64),
            &n.token[..63],
            &format!("{}0", n.token),
        ] {
            assert!(s.get(junk).unwrap().is_none(), "{junk:?}");
        }
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"abc", b"ab"));
    }
}
