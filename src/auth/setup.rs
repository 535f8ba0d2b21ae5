//! The first-run setup code. While no admin exists, `cleannvr run` logs a
//! one-time code; whoever can read the server's log (so, whoever runs it)
//! types it into the browser's setup page to create the first admin.
//!
//! The code is a credential that lands in a log, so it is made worthless
//! soon: it lives in memory only (a restart issues a new one), is used up by
//! the first admin it creates, and expires after [`SETUP_CODE_TTL_NS`].
//! Only its SHA-256 is kept, compared in constant time. Rate limiting is the
//! caller's (the web handler uses the login limiter).

use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::session::constant_time_eq;
use crate::clock::NS_PER_SEC;

/// How long a setup code stays valid after it is issued.
pub const SETUP_CODE_TTL_NS: i64 = 3600 * NS_PER_SEC;

/// Characters of a code: no look-alikes (0/O, 1/I/L), upper case only.
const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
/// 16 characters of 31: about 79 bits, far past guessing at login rates.
const CODE_CHARS: usize = 16;

/// The outstanding code, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    digest: [u8; 32],
    /// When it stops working, ns since the epoch.
    pub expires_ns: i64,
}

/// Why a presented code was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No code is outstanding (already used, or an admin existed at start).
    NoCode,
    /// The code's hour is over.
    Expired,
    /// Not the code.
    Wrong,
}

impl Refusal {
    /// What to tell the person at the setup page (and the audit log).
    pub fn message(self) -> &'static str {
        match self {
            Refusal::NoCode => "no setup code is outstanding; restart cleannvr to get a new one",
            Refusal::Expired => "the setup code has expired; restart cleannvr to get a new one",
            Refusal::Wrong => "wrong setup code",
        }
    }
}

/// Holder of the one outstanding setup code.
#[derive(Debug, Default)]
pub struct SetupCode(Mutex<Option<Pending>>);

/// Upper case, without the dashes and spaces people type or paste.
fn normalize(code: &str) -> Vec<u8> {
    code.bytes()
        .filter(|b| !matches!(b, b'-' | b' ' | b'\t'))
        .map(|b| b.to_ascii_uppercase())
        .collect()
}

fn digest(code: &str) -> [u8; 32] {
    Sha256::digest(normalize(code)).into()
}

impl SetupCode {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Pending>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Issues a fresh code (replacing any other), valid for an hour from
    /// `now_ns`. Returns it as `ABCD-EFGH-JKMN-PQRS`, to be logged once.
    pub fn issue(&self, now_ns: i64) -> (String, Pending) {
        use rand::Rng;
        let mut rng = rand::rngs::OsRng;
        let raw: Vec<u8> = (0..CODE_CHARS)
            .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())])
            .collect();
        let code = raw
            .chunks(4)
            .map(|c| std::str::from_utf8(c).expect("ASCII"))
            .collect::<Vec<_>>()
            .join("-");
        let pending = Pending {
            digest: digest(&code),
            expires_ns: now_ns.saturating_add(SETUP_CODE_TTL_NS),
        };
        *self.lock() = Some(pending);
        (code, pending)
    }

    /// The outstanding code's expiry, if one is outstanding and unexpired.
    pub fn valid_until(&self, now_ns: i64) -> Option<i64> {
        self.lock()
            .filter(|p| now_ns < p.expires_ns)
            .map(|p| p.expires_ns)
    }

    /// Takes the code if `presented` is it and it has not expired, so no
    /// concurrent request can use it too. Give it back with [`Self::restore`]
    /// if what it was taken for then fails.
    pub fn take_if(&self, presented: &str, now_ns: i64) -> Result<Pending, Refusal> {
        let mut slot = self.lock();
        let p = slot.ok_or(Refusal::NoCode)?;
        // Compared before the expiry, so a wrong code is told "wrong" and
        // learns nothing about whether the real one still works.
        if !constant_time_eq(&digest(presented), &p.digest) {
            return Err(Refusal::Wrong);
        }
        if now_ns >= p.expires_ns {
            *slot = None;
            return Err(Refusal::Expired);
        }
        *slot = None;
        Ok(p)
    }

    /// Puts back a code taken by [`Self::take_if`] whose use failed (a name
    /// already taken, a storage error), unless another was issued since.
    pub fn restore(&self, p: Pending) {
        let mut slot = self.lock();
        if slot.is_none() {
            *slot = Some(p);
        }
    }

    /// Withdraws the code (an admin now exists some other way).
    pub fn withdraw(&self) {
        *self.lock() = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000 * NS_PER_SEC;

    #[test]
    fn a_code_works_once_within_its_hour() {
        let s = SetupCode::default();
        assert_eq!(s.take_if("anything", T0), Err(Refusal::NoCode));
        let (code, p) = s.issue(T0);
        assert_eq!(code.len(), 19, "{code}");
        assert!(code.bytes().all(|b| b == b'-' || ALPHABET.contains(&b)));
        assert_eq!(p.expires_ns, T0 + SETUP_CODE_TTL_NS);
        assert_eq!(s.valid_until(T0), Some(p.expires_ns));
        assert_eq!(s.take_if("", T0), Err(Refusal::Wrong));
        assert_eq!(s.take_if(&code[..18], T0), Err(Refusal::Wrong));
        // Typed in lower case, without dashes, with a stray space: still it.
        let typed = format!(" {}", code.replace('-', "").to_ascii_lowercase());
        let taken = s.take_if(&typed, T0 + 1).unwrap();
        assert_eq!(s.take_if(&code, T0 + 2), Err(Refusal::NoCode));
        assert_eq!(s.valid_until(T0 + 2), None);
        // A failed use gives it back; a second give-back changes nothing.
        s.restore(taken);
        assert!(s.take_if(&code, T0 + 3).is_ok());
        assert_ne!(s.issue(T0).0, code, "codes are random");
    }

    #[test]
    fn a_code_expires_and_can_be_withdrawn() {
        let s = SetupCode::default();
        let (code, _) = s.issue(T0);
        let end = T0 + SETUP_CODE_TTL_NS;
        assert_eq!(s.valid_until(end - 1), Some(end));
        assert_eq!(s.valid_until(end), None);
        assert_eq!(s.take_if("WRONG-CODE", end), Err(Refusal::Wrong));
        assert_eq!(s.take_if(&code, end), Err(Refusal::Expired));
        assert_eq!(s.take_if(&code, T0), Err(Refusal::NoCode), "gone for good");
        let (code, _) = s.issue(T0);
        s.withdraw();
        assert_eq!(s.take_if(&code, T0), Err(Refusal::NoCode));
    }
}
