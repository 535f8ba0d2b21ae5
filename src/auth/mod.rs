//! Auth: users and roles (argon2id password hashes), server-side sessions
//! and login rate limiting, stored in trees of the index database.
//!
//! This module knows nothing about HTTP: `web` turns cookies and headers
//! into calls here. It never stores a password or a session token, only
//! their hashes, and never logs either.

pub mod cli;
pub mod login;
pub mod oidc;
pub mod prefs;
pub mod ratelimit;
pub mod seal;
pub mod session;
pub mod totp;
pub mod setup;

use std::sync::OnceLock;

use anyhow::Context;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};

/// What a user may do. Ordered from most to least powerful.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including users and settings.
    Admin,
    /// View live and recorded video, and export.
    Operator,
    /// View live and recorded video only.
    Viewer,
}

impl Role {
    /// Parses `admin`, `operator` or `viewer`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "operator" => Some(Role::Operator),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }

    /// Whether the role may export footage.
    pub fn can_export(self) -> bool {
        matches!(self, Role::Admin | Role::Operator)
    }
}

/// A stored user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Cameras this user may see; `None` means all.
    pub cameras: Option<Vec<String>>,
    /// argon2id PHC string (`$argon2id$v=19$...`).
    pub password_hash: String,
    /// When created, ns since the epoch.
    pub created_ns: i64,
    /// The enabled second factor, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp: Option<totp::TotpState>,
    /// A second factor being set up, not yet confirmed with a code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp_pending: Option<totp::PendingTotp>,
    /// May steer PTZ cameras; `None` means the role's default (admins and
    /// operators yes, viewers no).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ptz: Option<bool>,
    /// Set for someone who signs in through the identity provider (`[oidc]`):
    /// who they are there. Such a user has no password here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sso: Option<SsoLink>,
}

/// The provider's name for a single-sign-on user: the ID token's `iss` and `sub`,
/// which together never change for one person (a user name can be reused).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SsoLink {
    /// The issuer URL.
    pub issuer: String,
    /// The subject identifier.
    pub subject: String,
}

/// The stored password hash of single-sign-on users: not a PHC string, so no
/// password ever verifies against it.
pub const NO_PASSWORD: &str = "!sso";

impl User {
    /// Whether this user may steer PTZ cameras (those they may see).
    pub fn can_ptz(&self) -> bool {
        self.ptz.unwrap_or(self.role != Role::Viewer)
    }

    /// Whether this user may see `camera`.
    pub fn may_see(&self, camera: &str) -> bool {
        self.cameras
            .as_ref()
            .is_none_or(|list| list.iter().any(|c| c == camera))
    }

    /// Whether `other` is this user with the same rights and credentials:
    /// what running views and downloads re-check. Spending a code or a
    /// recovery code, or starting an enrolment, is not a change (or every
    /// login with a code would cut the user's views elsewhere); turning the
    /// second factor on or off is.
    pub fn same_access(&self, other: &User) -> bool {
        let enabled = |u: &User| u.totp.as_ref().map(|t| t.enabled_ns);
        self.name == other.name
            && self.role == other.role
            && self.cameras == other.cameras
            && self.password_hash == other.password_hash
            && self.created_ns == other.created_ns
            && enabled(self) == enabled(other)
            && self.ptz == other.ptz
    }
}

/// Why a user operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// Bad name, role or password.
    #[error("{0}")]
    Invalid(String),
    /// No such user.
    #[error("no such user")]
    NotFound,
    /// Name taken, or the change would leave no admin.
    #[error("{0}")]
    Conflict(String),
    /// Storage failure.
    #[error(transparent)]
    Storage(#[from] anyhow::Error),
}

/// Shortest password accepted. Long passphrases beat composition rules.
pub const MIN_PASSWORD: usize = 8;
/// Longest password accepted: argon2 hashes any length, but there is no
/// reason to let a client make the server hash a megabyte.
pub const MAX_PASSWORD: usize = 1024;

/// User names appear in the audit log, URLs and logs: keep them plain.
/// 1-64 of `A-Z a-z 0-9 . _ @ -`, not starting with `.` or `-`.
pub fn valid_user_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'))
}

/// Checks a new password against the length policy.
pub fn check_password(pw: &str) -> Result<(), UserError> {
    if pw.chars().count() < MIN_PASSWORD {
        return Err(UserError::Invalid(format!(
            "password must be at least {MIN_PASSWORD} characters"
        )));
    }
    if pw.len() > MAX_PASSWORD {
        return Err(UserError::Invalid(format!(
            "password must be at most {MAX_PASSWORD} bytes"
        )));
    }
    Ok(())
}

/// Hashes a password with argon2id (the crate's defaults: 19 MiB, t=2, p=1,
/// OWASP's recommended minimum) and a fresh random salt.
pub fn hash_password(pw: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(pw.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing password: {e}"))?
        .to_string())
}

fn verify_hash(pw: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| Argon2::default().verify_password(pw.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// A hash nobody's password matches, verified against for unknown users so
/// that "no such user" takes as long as "wrong password".
fn dummy_hash() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| hash_password("not a password: timing equalizer").unwrap_or_default())
}

/// A random password for generated accounts (the demo admin): 20
/// characters from an alphabet without look-alikes, about 115 bits.
pub fn random_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    (0..20)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Seals the TOTP secrets that the users tree of `db` stores open (written before
/// secrets were sealed), with the key of `storage_dir`, made only if one is needed:
/// the index migration to schema version 2. Returns how many rows changed.
pub fn seal_stored_secrets(db: &sled::Db, storage_dir: &std::path::Path) -> anyhow::Result<usize> {
    let tree = db.open_tree("users")?;
    let mut any_open = false;
    for row in tree.iter().values() {
        let u: User = serde_json::from_slice(&row?).context("corrupt user row")?;
        any_open |= u.totp.as_ref().is_some_and(|t| !seal::is_sealed(&t.secret))
            || u.totp_pending
                .as_ref()
                .is_some_and(|p| !seal::is_sealed(&p.secret));
    }
    if !any_open {
        return Ok(0);
    }
    Users::open(db, seal::SealKey::for_dir(storage_dir)?)?.seal_open_secrets()
}

/// The `users` tree.
#[derive(Clone)]
pub struct Users {
    db: sled::Db,
    tree: sled::Tree,
    /// Seals the TOTP secrets in each row ([`seal`]); rows in memory hold them open.
    key: seal::SealKey,
    /// Held by every read-modify-write of a row, so an admin's edit cannot
    /// write back a row read before a login spent a code (which would make
    /// that code, or a recovery code, usable again).
    writes: std::sync::Arc<std::sync::Mutex<()>>,
    /// Each user's UI preferences, removed with the user.
    prefs: prefs::PrefsStore,
}

impl Users {
    /// Opens the `users` tree of `db`, whose TOTP secrets `key` seals.
    pub fn open(db: &sled::Db, key: seal::SealKey) -> anyhow::Result<Users> {
        Ok(Users {
            db: db.clone(),
            tree: db.open_tree("users")?,
            key,
            writes: Default::default(),
            prefs: prefs::PrefsStore::open(db)?,
        })
    }

    /// The users' UI preferences.
    pub fn prefs(&self) -> &prefs::PrefsStore {
        &self.prefs
    }

    /// Opens the users of `store`, with the TOTP key of its storage directory
    /// (made on first use).
    pub fn for_store(store: &crate::store::Store) -> anyhow::Result<Users> {
        Users::open(store.db(), seal::SealKey::for_dir(store.dir())?)
    }

    /// A stored row as a user, its TOTP secrets opened.
    fn decode(&self, row: &[u8]) -> anyhow::Result<User> {
        let mut u: User = serde_json::from_slice(row).context("corrupt user row")?;
        if let Some(t) = &mut u.totp {
            t.secret = self.key.open(&u.name, "totp", &t.secret)?;
        }
        if let Some(p) = &mut u.totp_pending {
            p.secret = self.key.open(&u.name, "pending", &p.secret)?;
        }
        Ok(u)
    }

    /// `user` as a stored row, its TOTP secrets sealed.
    fn encode(&self, user: &User) -> anyhow::Result<Vec<u8>> {
        let mut u = user.clone();
        if let Some(t) = &mut u.totp {
            t.secret = self.key.seal(&u.name, "totp", &t.secret)?;
        }
        if let Some(p) = &mut u.totp_pending {
            p.secret = self.key.seal(&u.name, "pending", &p.secret)?;
        }
        Ok(serde_json::to_vec(&u)?)
    }

    /// Looks a user up.
    pub fn get(&self, name: &str) -> anyhow::Result<Option<User>> {
        match self.tree.get(name.as_bytes())? {
            None => Ok(None),
            Some(v) => Ok(Some(self.decode(&v)?)),
        }
    }

    /// Every user, by name.
    pub fn list(&self) -> anyhow::Result<Vec<User>> {
        self.tree.iter().map(|item| self.decode(&item?.1)).collect()
    }

    /// Seals every TOTP secret stored open (rows written before secrets were
    /// sealed, or restored from such a backup); see [`seal_stored_secrets`].
    /// Returns how many rows changed.
    fn seal_open_secrets(&self) -> anyhow::Result<usize> {
        let _w = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        let mut changed = 0;
        for item in self.tree.iter() {
            let (k, v) = item?;
            let mut u: User = serde_json::from_slice(&v).context("corrupt user row")?;
            let mut sealed = false;
            if let Some(t) = u.totp.as_mut().filter(|t| !seal::is_sealed(&t.secret)) {
                t.secret = self.key.seal(&u.name, "totp", &t.secret)?;
                sealed = true;
            }
            if let Some(p) = u
                .totp_pending
                .as_mut()
                .filter(|p| !seal::is_sealed(&p.secret))
            {
                p.secret = self.key.seal(&u.name, "pending", &p.secret)?;
                sealed = true;
            }
            if sealed {
                self.tree.insert(k, serde_json::to_vec(&u)?)?;
                changed += 1;
            }
        }
        if changed > 0 {
            self.db.flush()?;
        }
        Ok(changed)
    }

    /// Whether any admin exists (the UI is refused until one does).
    pub fn any_admin(&self) -> anyhow::Result<bool> {
        Ok(self.list()?.iter().any(|u| u.role == Role::Admin))
    }

    /// Creates a user; fails with `Conflict` if the name is taken.
    pub fn add(
        &self,
        name: &str,
        role: Role,
        cameras: Option<Vec<String>>,
        password: &str,
        now_ns: i64,
    ) -> Result<User, UserError> {
        self.add_audited(name, role, cameras, password, now_ns, |_| Ok(()))
    }

    /// [`Users::add`], calling `audit` with the new user after every check and
    /// before the write: if the audit entry cannot be written, nobody is added.
    pub fn add_audited(
        &self,
        name: &str,
        role: Role,
        cameras: Option<Vec<String>>,
        password: &str,
        now_ns: i64,
        audit: impl FnOnce(&User) -> anyhow::Result<()>,
    ) -> Result<User, UserError> {
        if !valid_user_name(name) {
            return Err(UserError::Invalid(
                "user name must be 1-64 of A-Z a-z 0-9 . _ @ -".into(),
            ));
        }
        check_password(password)?;
        let user = User {
            name: name.to_owned(),
            role,
            cameras,
            password_hash: hash_password(password)?,
            created_ns: now_ns,
            totp: None,
            totp_pending: None,
            ptz: None,
            sso: None,
        };
        let v = self.encode(&user)?;
        // Held from the check to the write, so an audited add is not then
        // refused because another add took the name meanwhile.
        let _w = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        if self
            .tree
            .contains_key(name.as_bytes())
            .map_err(anyhow::Error::from)?
        {
            return Err(UserError::Conflict(format!("user {name} already exists")));
        }
        audit(&user)?;
        // Compare-and-swap from "absent" so two concurrent adds cannot both win.
        match self
            .tree
            .compare_and_swap(name.as_bytes(), None as Option<&[u8]>, Some(v))
            .map_err(anyhow::Error::from)?
        {
            Ok(()) => {}
            Err(_) => return Err(UserError::Conflict(format!("user {name} already exists"))),
        }
        self.db.flush().map_err(anyhow::Error::from)?;
        Ok(user)
    }

    /// Checks a password. Unknown users cost the same time as known ones.
    pub fn verify(&self, name: &str, password: &str) -> anyhow::Result<Option<User>> {
        if password.len() > MAX_PASSWORD || !valid_user_name(name) {
            let pw = if password.len() > MAX_PASSWORD {
                ""
            } else {
                password
            };
            verify_hash(pw, dummy_hash());
            return Ok(None);
        }
        match self.get(name)? {
            // Single sign-on users log in at the provider only; costs what a miss does.
            Some(u) if u.sso.is_some() => {
                verify_hash(password, dummy_hash());
                Ok(None)
            }
            Some(u) if verify_hash(password, &u.password_hash) => Ok(Some(u)),
            Some(_) => Ok(None),
            None => {
                verify_hash(password, dummy_hash());
                Ok(None)
            }
        }
    }

    /// Applies `f` to a stored user and writes it back. Refuses a change
    /// that would leave no admin, so nobody can lock everyone out.
    pub fn update(
        &self,
        name: &str,
        f: impl FnOnce(&mut User) -> Result<(), UserError>,
    ) -> Result<User, UserError> {
        self.update_audited(name, f, |_| Ok(()))
    }

    /// [`Users::update`], calling `audit` with the changed user after every
    /// check and before the write: if the audit entry cannot be written, the
    /// user stays as it was.
    pub fn update_audited(
        &self,
        name: &str,
        f: impl FnOnce(&mut User) -> Result<(), UserError>,
        audit: impl FnOnce(&User) -> anyhow::Result<()>,
    ) -> Result<User, UserError> {
        let _w = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        let mut user = self.get(name)?.ok_or(UserError::NotFound)?;
        let was_admin = user.role == Role::Admin;
        f(&mut user)?;
        if was_admin && user.role != Role::Admin && self.admin_count()? <= 1 {
            return Err(UserError::Conflict("cannot demote the last admin".into()));
        }
        let row = self.encode(&user)?;
        audit(&user)?;
        self.tree
            .insert(name.as_bytes(), row)
            .map_err(anyhow::Error::from)?;
        self.db.flush().map_err(anyhow::Error::from)?;
        Ok(user)
    }

    /// Makes or refreshes the account of someone who signed in at the identity
    /// provider: role and cameras follow the provider's groups at every sign-in.
    /// Refuses (`Conflict`) a name held by a local account or by another person
    /// at the provider, so nobody takes over an account by naming themselves after it.
    pub fn upsert_sso(
        &self,
        name: &str,
        link: &SsoLink,
        role: Role,
        cameras: Option<Vec<String>>,
        now_ns: i64,
    ) -> Result<User, UserError> {
        if !valid_user_name(name) {
            return Err(UserError::Invalid(
                "user name must be 1-64 of A-Z a-z 0-9 . _ @ -".into(),
            ));
        }
        let _w = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.get(name)?;
        let user = match old {
            Some(u) if u.sso.as_ref() != Some(link) => {
                return Err(UserError::Conflict(format!(
                    "the name {name} belongs to {}",
                    if u.sso.is_some() {
                        "another person at the identity provider"
                    } else {
                        "a local account"
                    }
                )))
            }
            Some(mut u) => {
                if u.role == Role::Admin && role != Role::Admin && self.admin_count()? <= 1 {
                    return Err(UserError::Conflict("cannot demote the last admin".into()));
                }
                u.role = role;
                u.cameras = cameras;
                u
            }
            None => User {
                name: name.to_owned(),
                role,
                cameras,
                password_hash: NO_PASSWORD.into(),
                created_ns: now_ns,
                totp: None,
                totp_pending: None,
                ptz: None,
                sso: Some(link.clone()),
            },
        };
        self.tree
            .insert(
                name.as_bytes(),
                serde_json::to_vec(&user).map_err(anyhow::Error::from)?,
            )
            .map_err(anyhow::Error::from)?;
        self.db.flush().map_err(anyhow::Error::from)?;
        Ok(user)
    }

    /// Sets a new password.
    pub fn set_password(&self, name: &str, password: &str) -> Result<User, UserError> {
        self.set_password_audited(name, password, |_| Ok(()))
    }

    /// [`Users::set_password`], audited first as [`Users::update_audited`] is.
    pub fn set_password_audited(
        &self,
        name: &str,
        password: &str,
        audit: impl FnOnce(&User) -> anyhow::Result<()>,
    ) -> Result<User, UserError> {
        check_password(password)?;
        let hash = hash_password(password)?;
        self.update_audited(
            name,
            |u| {
                u.password_hash = hash;
                Ok(())
            },
            audit,
        )
    }

    /// Removes a user; refuses to remove the last admin.
    pub fn remove(&self, name: &str) -> Result<User, UserError> {
        self.remove_audited(name, |_| Ok(()))
    }

    /// [`Users::remove`], calling `audit` with the user after every check and
    /// before the removal: if the audit entry cannot be written, the user stays.
    pub fn remove_audited(
        &self,
        name: &str,
        audit: impl FnOnce(&User) -> anyhow::Result<()>,
    ) -> Result<User, UserError> {
        let _w = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        let user = self.get(name)?.ok_or(UserError::NotFound)?;
        if user.role == Role::Admin && self.admin_count()? <= 1 {
            return Err(UserError::Conflict("cannot remove the last admin".into()));
        }
        audit(&user)?;
        self.tree
            .remove(name.as_bytes())
            .map_err(anyhow::Error::from)?;
        // A later user of the same name starts afresh.
        self.prefs.remove(name)?;
        self.db.flush().map_err(anyhow::Error::from)?;
        Ok(user)
    }

    fn admin_count(&self) -> anyhow::Result<usize> {
        Ok(self
            .list()?
            .iter()
            .filter(|u| u.role == Role::Admin)
            .count())
    }
}

impl From<UserError> for crate::error::Error {
    fn from(e: UserError) -> Self {
        use crate::error::Error;
        match e {
            UserError::Invalid(d) => Error::invalid_argument(d),
            UserError::NotFound => Error::not_found("no such user"),
            UserError::Conflict(d) => Error::conflict(d),
            UserError::Storage(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> (tempfile::TempDir, Users) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        (dir, Users::open(&db, seal::SealKey::random()).unwrap())
    }

    #[test]
    fn add_verify_and_duplicate() {
        let (_d, u) = users();
        let alice = u
            .add("alice", Role::Admin, None, "correct horse", 1)
            .unwrap();
        assert!(alice.password_hash.starts_with("$argon2id$"));
        assert!(!alice.password_hash.contains("correct horse"));
        assert_eq!(
            u.verify("alice", "correct horse").unwrap().unwrap().name,
            "alice"
        );
        assert!(u.verify("alice", "wrong horse!").unwrap().is_none());
        assert!(u.verify("nobody", "correct horse").unwrap().is_none());
        assert!(u.verify("../etc", "x").unwrap().is_none());
        assert!(matches!(
            u.add("alice", Role::Viewer, None, "another pw", 2),
            Err(UserError::Conflict(_))
        ));
    }

    #[test]
    fn names_and_passwords_are_checked() {
        let (_d, u) = users();
        for bad in [
            "",
            "a/b",
            "..",
            ".hidden",
            "-x",
            "a b",
            "é",
            &"x".repeat(65),
            "a\0b",
        ] {
            assert!(!valid_user_name(bad), "{bad:?}");
            assert!(matches!(
                u.add(bad, Role::Viewer, None, "longenough", 0),
                Err(UserError::Invalid(_))
            ));
        }
        assert!(valid_user_name("ops.team-1@council"));
        assert!(matches!(
            u.add("bob", Role::Viewer, None, "short", 0),
            Err(UserError::Invalid(_))
        ));
        assert!(matches!(
            u.add("bob", Role::Viewer, None, &"x".repeat(MAX_PASSWORD + 1), 0),
            Err(UserError::Invalid(_))
        ));
    }

    #[test]
    fn last_admin_is_protected() {
        let (_d, u) = users();
        u.add("root", Role::Admin, None, "password1", 0).unwrap();
        u.add("v", Role::Viewer, Some(vec!["a".into()]), "password1", 0)
            .unwrap();
        assert!(matches!(u.remove("root"), Err(UserError::Conflict(_))));
        assert!(matches!(
            u.update("root", |x| {
                x.role = Role::Viewer;
                Ok(())
            }),
            Err(UserError::Conflict(_))
        ));
        u.add("root2", Role::Admin, None, "password1", 0).unwrap();
        u.remove("root").unwrap();
        assert!(u.any_admin().unwrap());
        assert!(matches!(u.remove("root"), Err(UserError::NotFound)));
        let v = u.get("v").unwrap().unwrap();
        assert!(v.may_see("a") && !v.may_see("b"));
    }

    #[test]
    fn single_sign_on_accounts() {
        let (_d, u) = users();
        u.add("admin", Role::Admin, None, "password1", 0).unwrap();
        let link = SsoLink {
            issuer: "https://idp".into(),
            subject: "s-1".into(),
        };
        // A local account's name cannot be claimed from the provider.
        assert!(matches!(
            u.upsert_sso("admin", &link, Role::Admin, None, 1),
            Err(UserError::Conflict(_))
        ));
        let a = u
            .upsert_sso("alice@c", &link, Role::Viewer, Some(vec!["x".into()]), 1)
            .unwrap();
        assert_eq!((a.role, a.created_ns), (Role::Viewer, 1));
        // The next sign-in follows the provider's groups.
        let a = u
            .upsert_sso("alice@c", &link, Role::Operator, None, 2)
            .unwrap();
        assert_eq!((a.role, a.cameras, a.created_ns), (Role::Operator, None, 1));
        // Another person at the provider with the same name is not alice.
        let other = SsoLink {
            subject: "s-2".into(),
            ..link.clone()
        };
        assert!(matches!(
            u.upsert_sso("alice@c", &other, Role::Admin, None, 3),
            Err(UserError::Conflict(_))
        ));
        // No password logs in as a single-sign-on user.
        assert!(u.verify("alice@c", NO_PASSWORD).unwrap().is_none());
    }

    #[test]
    fn password_change() {
        let (_d, u) = users();
        u.add("a", Role::Admin, None, "password1", 0).unwrap();
        u.set_password("a", "password2").unwrap();
        assert!(u.verify("a", "password1").unwrap().is_none());
        assert!(u.verify("a", "password2").unwrap().is_some());
        let p = random_password();
        assert_eq!(p.len(), 20);
        assert_ne!(p, random_password());
    }
}
