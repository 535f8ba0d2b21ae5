//! Second factor: time-based one-time codes (RFC 6238 with the parameters
//! every authenticator app assumes: HMAC-SHA1, 6 digits, 30 s steps) and
//! single-use recovery codes for a lost phone.
//!
//! Code arithmetic is the `totp-rs` crate's; this module owns what it does
//! not: the stored state, replay protection (a code is accepted once: the
//! step it matched is remembered and that step and earlier ones are refused
//! afterwards), recovery codes (only their SHA-256 is stored: they carry
//! about 59 random bits, so a slow hash would add nothing) and the enrolment
//! payload (`otpauth://` URI and a QR code drawn here as SVG, so the secret
//! never goes to any other service). [`Users`] applies every change to the
//! user row with compare-and-swap, so two logins racing with one code cannot
//! both win. Secrets are never logged: the types' `Debug` hides them.

use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, Secret, TOTP};

use super::session::constant_time_eq;
use super::{User, UserError, Users};
use crate::clock::NS_PER_SEC;

/// Digits per code.
pub const DIGITS: usize = 6;
/// Seconds per step.
pub const STEP_SECONDS: u64 = 30;
/// Steps either side of now that are accepted: phones drift, and a code
/// typed in the last second of its step arrives in the next.
pub const SKEW_STEPS: u64 = 1;
/// Recovery codes issued at enrolment.
pub const RECOVERY_CODES: usize = 10;
/// How long a started enrolment waits for its confirming code.
pub const ENROL_WINDOW_NS: i64 = 15 * 60 * NS_PER_SEC;
/// The name authenticator apps show above the account.
pub const ISSUER: &str = "cleannvr";
/// Recovery code alphabet: lower case without look-alikes (no i l o 0 1).
const RECOVERY_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
/// Characters per recovery code (31^12, about 59 bits).
const RECOVERY_LEN: usize = 12;

/// A user's enabled second factor, stored in the user row.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpState {
    /// The shared secret, base32 (RFC 4648, unpadded).
    pub secret: String,
    /// When it was enabled, ns since the epoch.
    pub enabled_ns: i64,
    /// The last step a code was accepted for; codes of this and earlier
    /// steps are refused, so an overheard code cannot be used again.
    pub last_step: u64,
    /// SHA-256 (hex) of each unused recovery code.
    pub recovery: Vec<String>,
}

impl std::fmt::Debug for TotpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpState")
            .field("enabled_ns", &self.enabled_ns)
            .field("last_step", &self.last_step)
            .field("recovery_left", &self.recovery.len())
            .finish_non_exhaustive()
    }
}

/// An enrolment started but not yet confirmed with a code.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTotp {
    /// The secret offered, base32.
    pub secret: String,
    /// When it was offered, ns.
    pub created_ns: i64,
}

impl std::fmt::Debug for PendingTotp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingTotp")
            .field("created_ns", &self.created_ns)
            .finish_non_exhaustive()
    }
}

/// What the user is shown once, to set up an authenticator app.
pub struct Enrolment {
    /// The secret in base32, for typing in by hand.
    pub secret: String,
    /// `otpauth://totp/...` (what the QR code holds).
    pub uri: String,
    /// The URI as a QR code, an SVG document.
    pub qr_svg: String,
}

/// The second factor a login presents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Factor {
    /// None given.
    None,
    /// A code from the authenticator app.
    Code(String),
    /// A recovery code.
    Recovery(String),
}

/// Which second factor a check accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// An authenticator code.
    Code,
    /// A recovery code, now spent; this many remain.
    Recovery {
        /// Unused recovery codes left.
        left: usize,
    },
}

/// A code that matched the enrolment under way, not yet applied
/// ([`Users::check_confirmation`], then [`Users::enable_totp`]).
pub struct Confirmation {
    secret: String,
    step: u64,
}

impl std::fmt::Debug for Confirmation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Confirmation")
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

fn now_s(now_ns: i64) -> u64 {
    u64::try_from(now_ns / NS_PER_SEC).unwrap_or(0)
}

/// The code an authenticator shows for `secret_b32` at `t_s` (seconds since the epoch),
/// for tests that log in with a second factor.
#[cfg(test)]
pub(crate) fn code_at(secret_b32: &str, t_s: u64) -> String {
    totp(secret_b32).unwrap().generate(t_s)
}

fn totp(secret_b32: &str) -> anyhow::Result<TOTP> {
    let bytes = Secret::Encoded(secret_b32.to_owned())
        .to_bytes()
        .map_err(|_| anyhow::anyhow!("stored TOTP secret is not base32"))?;
    TOTP::new(Algorithm::SHA1, DIGITS, 0, STEP_SECONDS, bytes)
        .map_err(|e| anyhow::anyhow!("stored TOTP secret unusable: {e}"))
}

/// A fresh 160-bit secret (RFC 4226's recommended length), base32.
pub fn new_secret() -> String {
    let mut b = [0u8; 20];
    rand::rngs::OsRng.fill(&mut b);
    Secret::Raw(b.to_vec()).to_encoded().to_string()
}

/// The step, later than `after`, within [`SKEW_STEPS`] of `now_ns` whose
/// code is `code`; `None` if there is none. Spaces in `code` are ignored.
pub fn matching_step(
    secret_b32: &str,
    code: &str,
    now_ns: i64,
    after: u64,
) -> anyhow::Result<Option<u64>> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let t = totp(secret_b32)?;
    let now_step = now_s(now_ns) / STEP_SECONDS;
    let mut found = None;
    // Every candidate is computed and compared, matched or not, so the time
    // taken says nothing about which step (if any) matched.
    for step in now_step.saturating_sub(SKEW_STEPS)..=now_step + SKEW_STEPS {
        let ok = constant_time_eq(t.generate(step * STEP_SECONDS).as_bytes(), code.as_bytes());
        if ok && step > after && found.is_none() {
            found = Some(step);
        }
    }
    Ok(found)
}

/// The `otpauth://` URI for `account` (Google Authenticator's key URI
/// format, which every app reads).
pub fn uri(secret_b32: &str, account: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret_b32}&issuer={issuer}\
         &algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        issuer = enc(ISSUER),
        account = enc(account),
    )
}

/// `data` as a QR code in SVG (black on white, with the quiet zone).
pub fn qr_svg(data: &str) -> anyhow::Result<String> {
    let code = qrcode::QrCode::new(data.as_bytes())
        .map_err(|e| anyhow::anyhow!("making the QR code: {e}"))?;
    Ok(code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build())
}

/// Recovery codes as shown (`xxxx-xxxx-xxxx`) and their stored hashes.
pub fn new_recovery_codes() -> (Vec<String>, Vec<String>) {
    let mut rng = rand::rngs::OsRng;
    (0..RECOVERY_CODES)
        .map(|_| {
            let raw: String = (0..RECOVERY_LEN)
                .map(|_| RECOVERY_ALPHABET[rng.gen_range(0..RECOVERY_ALPHABET.len())] as char)
                .collect();
            let shown = format!("{}-{}-{}", &raw[..4], &raw[4..8], &raw[8..]);
            let hash = recovery_hash(&shown);
            (shown, hash)
        })
        .unzip()
}

/// SHA-256 (hex) of a recovery code, ignoring case, spaces and dashes.
pub fn recovery_hash(code: &str) -> String {
    let norm: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    hex::encode(Sha256::digest(norm.as_bytes()))
}

impl Users {
    /// Applies `f` to the stored row of `name` under the write lock (shared
    /// with [`Users::update`]), with compare-and-swap as well so a writer
    /// that skips the lock cannot be overwritten. `f` returning `Ok(None)`
    /// writes nothing.
    fn swap_user<T>(
        &self,
        name: &str,
        mut f: impl FnMut(&mut User) -> Result<Option<T>, UserError>,
    ) -> Result<Option<T>, UserError> {
        let _w = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let old = self
                .tree
                .get(name.as_bytes())
                .map_err(anyhow::Error::from)?
                .ok_or(UserError::NotFound)?;
            let mut user: User = self
                .decode(&old)
                .map_err(|e| e.context(format!("user row {name}")))?;
            let Some(out) = f(&mut user)? else {
                return Ok(None);
            };
            let new = self.encode(&user)?;
            if self
                .tree
                .compare_and_swap(name.as_bytes(), Some(old), Some(new))
                .map_err(anyhow::Error::from)?
                .is_ok()
            {
                self.db.flush().map_err(anyhow::Error::from)?;
                return Ok(Some(out));
            }
        }
    }

    /// Starts enrolment: a new secret is kept as pending (replacing any
    /// earlier unconfirmed one) and returned for the user's app. Refused
    /// while a second factor is enabled: disable (or reset) it first.
    pub fn begin_totp(&self, name: &str, now_ns: i64) -> Result<Enrolment, UserError> {
        let secret = new_secret();
        self.swap_user(name, |u| {
            if u.totp.is_some() {
                return Err(UserError::Conflict(
                    "a second factor is already enabled; disable it first".into(),
                ));
            }
            u.totp_pending = Some(PendingTotp {
                secret: secret.clone(),
                created_ns: now_ns,
            });
            Ok(Some(()))
        })?;
        let uri = uri(&secret, name);
        Ok(Enrolment {
            qr_svg: qr_svg(&uri)?,
            uri,
            secret,
        })
    }

    /// Checks `code` against the enrolment under way for `name`, changing nothing:
    /// the caller audits the change, then applies it with [`Users::enable_totp`].
    /// `Ok(None)`: wrong code (the enrolment stays pending).
    pub fn check_confirmation(
        &self,
        name: &str,
        code: &str,
        now_ns: i64,
    ) -> Result<Option<Confirmation>, UserError> {
        let u = self.get(name)?.ok_or(UserError::NotFound)?;
        if u.totp.is_some() {
            return Err(UserError::Conflict(
                "a second factor is already enabled".into(),
            ));
        }
        let pending = u
            .totp_pending
            .filter(|p| now_ns - p.created_ns < ENROL_WINDOW_NS)
            .ok_or_else(|| {
                UserError::Invalid("no enrolment under way (or it expired): start again".into())
            })?;
        Ok(
            matching_step(&pending.secret, code, now_ns, 0)?.map(|step| Confirmation {
                secret: pending.secret,
                step,
            }),
        )
    }

    /// Enables the second factor that `c` confirmed and returns the recovery codes,
    /// the only time they exist in clear. Refused (`Conflict`) if the enrolment was
    /// replaced or finished meanwhile.
    pub fn enable_totp(
        &self,
        name: &str,
        c: &Confirmation,
        now_ns: i64,
    ) -> Result<Vec<String>, UserError> {
        let (shown, hashes) = new_recovery_codes();
        self.swap_user(name, |u| {
            let same = u
                .totp_pending
                .as_ref()
                .is_some_and(|p| constant_time_eq(p.secret.as_bytes(), c.secret.as_bytes()));
            if u.totp.is_some() || !same {
                return Err(UserError::Conflict(
                    "the enrolment changed meanwhile: start again".into(),
                ));
            }
            u.totp = Some(TotpState {
                secret: c.secret.clone(),
                enabled_ns: now_ns,
                last_step: c.step,
                recovery: hashes.clone(),
            });
            u.totp_pending = None;
            Ok(Some(()))
        })?;
        Ok(shown)
    }

    /// [`Users::check_confirmation`] then [`Users::enable_totp`], with nothing
    /// recorded between (for tests and tools that audit nothing).
    pub fn confirm_totp(
        &self,
        name: &str,
        code: &str,
        now_ns: i64,
    ) -> Result<Option<Vec<String>>, UserError> {
        match self.check_confirmation(name, code, now_ns)? {
            Some(c) => self.enable_totp(name, &c, now_ns).map(Some),
            None => Ok(None),
        }
    }

    /// Checks and spends a second factor of `name`: an authenticator code
    /// not used before, or an unused recovery code. `Ok(None)`: wrong, used,
    /// or the user has no second factor.
    pub fn use_factor(
        &self,
        name: &str,
        factor: &Factor,
        now_ns: i64,
    ) -> Result<Option<Accepted>, UserError> {
        self.swap_user(name, |u| {
            let Some(t) = u.totp.as_mut() else {
                return Ok(None);
            };
            match factor {
                Factor::None => Ok(None),
                Factor::Code(code) => {
                    let Some(step) = matching_step(&t.secret, code, now_ns, t.last_step)? else {
                        return Ok(None);
                    };
                    t.last_step = step;
                    Ok(Some(Accepted::Code))
                }
                Factor::Recovery(code) => {
                    let h = recovery_hash(code);
                    let Some(i) = t
                        .recovery
                        .iter()
                        .position(|x| constant_time_eq(x.as_bytes(), h.as_bytes()))
                    else {
                        return Ok(None);
                    };
                    t.recovery.remove(i);
                    Ok(Some(Accepted::Recovery {
                        left: t.recovery.len(),
                    }))
                }
            }
        })
    }

    /// Replaces the recovery codes of `name` with new ones, returned (the only time they
    /// exist in clear); every earlier code stops working. Refused without a second factor.
    pub fn regenerate_recovery(&self, name: &str) -> Result<Vec<String>, UserError> {
        let (shown, hashes) = new_recovery_codes();
        self.swap_user(name, |u| {
            let t = u
                .totp
                .as_mut()
                .ok_or_else(|| UserError::Conflict("no second factor is enabled".into()))?;
            t.recovery = hashes.clone();
            Ok(Some(()))
        })?;
        Ok(shown)
    }

    /// Removes the second factor (and any pending enrolment) of `name`.
    /// Returns whether one was enabled.
    pub fn clear_totp(&self, name: &str) -> Result<bool, UserError> {
        Ok(self
            .swap_user(name, |u| {
                let had = u.totp.is_some();
                u.totp = None;
                u.totp_pending = None;
                Ok(Some(had))
            })?
            .unwrap_or(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    const S: i64 = NS_PER_SEC;

    /// RFC 6238 appendix B's SHA-1 vectors (8 digits there; the last 6 here).
    #[test]
    fn rfc6238_vectors() {
        let secret = Secret::Raw(b"12345678901234567890".to_vec())
            .to_encoded()
            .to_string();
        for (t, code) in [
            (59i64, "287082"),
            (1111111109, "081804"),
            (1111111111, "050471"),
            (1234567890, "005924"),
            (2000000000, "279037"),
        ] {
            let step = matching_step(&secret, code, t * S, 0).unwrap();
            assert_eq!(step, Some(t as u64 / 30), "t={t}");
        }
    }

    fn users() -> (tempfile::TempDir, Users) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let u = Users::open(&db, crate::auth::seal::SealKey::random()).unwrap();
        u.add("alice", Role::Admin, None, "password1", 0).unwrap();
        (dir, u)
    }

    #[test]
    fn enrol_login_replay_and_recovery() {
        let (_d, u) = users();
        let t0 = 1_800_000_000i64;
        let e = u.begin_totp("alice", t0 * S).unwrap();
        assert!(e.uri.starts_with("otpauth://totp/cleannvr:alice?secret="));
        assert!(e.qr_svg.contains("<svg"));
        assert!(u.get("alice").unwrap().unwrap().totp.is_none());
        let wrong = if code_at(&e.secret, t0 as u64) == "000000" {
            "111111"
        } else {
            "000000"
        };
        assert_eq!(u.confirm_totp("alice", wrong, t0 * S).unwrap(), None);
        let codes = u
            .confirm_totp("alice", &code_at(&e.secret, t0 as u64), t0 * S)
            .unwrap()
            .unwrap();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let row = u.get("alice").unwrap().unwrap();
        let stored = serde_json::to_string(&row).unwrap();
        assert!(
            !stored.contains(&codes[0]),
            "recovery codes stored in clear"
        );
        assert!(!format!("{row:?}").contains(&e.secret), "secret in Debug");
        assert!(matches!(
            u.begin_totp("alice", t0 * S),
            Err(UserError::Conflict(_))
        ));

        // The confirming code cannot log in; the next step's can, once.
        let c0 = Factor::Code(code_at(&e.secret, t0 as u64));
        assert_eq!(u.use_factor("alice", &c0, t0 * S).unwrap(), None);
        let t1 = t0 + 30;
        let c1 = Factor::Code(code_at(&e.secret, t1 as u64));
        assert_eq!(
            u.use_factor("alice", &c1, t1 * S).unwrap(),
            Some(Accepted::Code)
        );
        assert_eq!(u.use_factor("alice", &c1, t1 * S).unwrap(), None);
        // A code from 2 steps ago is too old.
        let t3 = t1 + 90;
        let old = Factor::Code(code_at(&e.secret, (t3 - 60) as u64));
        assert_eq!(u.use_factor("alice", &old, t3 * S).unwrap(), None);

        let r = Factor::Recovery(codes[3].to_uppercase().replace('-', " "));
        assert_eq!(
            u.use_factor("alice", &r, t3 * S).unwrap(),
            Some(Accepted::Recovery { left: 9 })
        );
        assert_eq!(u.use_factor("alice", &r, t3 * S).unwrap(), None);

        // New recovery codes: the old ones stop working, the new ones work once.
        let fresh = u.regenerate_recovery("alice").unwrap();
        assert_eq!(fresh.len(), RECOVERY_CODES);
        let old = Factor::Recovery(codes[4].clone());
        assert_eq!(u.use_factor("alice", &old, t3 * S).unwrap(), None);
        let new = Factor::Recovery(fresh[0].clone());
        assert_eq!(
            u.use_factor("alice", &new, t3 * S).unwrap(),
            Some(Accepted::Recovery { left: 9 })
        );

        assert!(u.clear_totp("alice").unwrap());
        assert!(!u.clear_totp("alice").unwrap());
        assert!(matches!(
            u.regenerate_recovery("alice"),
            Err(UserError::Conflict(_))
        ));
        assert_eq!(u.use_factor("alice", &c1, t3 * S).unwrap(), None);
    }

    #[test]
    fn enrolment_expires() {
        let (_d, u) = users();
        let e = u.begin_totp("alice", 0).unwrap();
        let late = ENROL_WINDOW_NS + S;
        let code = code_at(&e.secret, (late / S) as u64);
        assert!(matches!(
            u.confirm_totp("alice", &code, late),
            Err(UserError::Invalid(_))
        ));
    }
}
