//! Checking who someone is: password, then second factor, under the login
//! rate limit and the bound on concurrent argon2 work. Used by login and by
//! the account changes that need the password again (starting and turning
//! off a second factor), so every guess at a password or a code, wherever
//! it is made, is counted against the same budget.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::ratelimit::LoginLimiter;
use super::totp::{Accepted, Confirmation, Factor};
use super::{User, Users};

/// How long an attempt waits for a password-verification slot before it is
/// told to come back (uncounted).
pub const VERIFY_QUEUE: Duration = Duration::from_secs(5);

/// An attempt that passed.
#[derive(Debug)]
pub struct Passed {
    /// The user, as stored after the check (a spent code already recorded).
    pub user: User,
    /// The second factor that was checked; `None` if the user has none.
    pub factor: Option<Accepted>,
}

/// Why an attempt did not pass.
#[derive(Debug)]
pub enum Refused {
    /// Too many failures: retry after this many seconds. Not counted.
    Limited(u64),
    /// Too many checks at once: retry shortly. Not counted.
    Busy,
    /// Unknown user or wrong password. Counted.
    WrongPassword,
    /// Right password, but the user has a second factor and none was
    /// given. Not counted (nor cleared: the earlier failures stand).
    FactorRequired,
    /// Right password, wrong or already used second factor. Counted.
    WrongFactor,
    /// The request cannot be done (no enrolment under way, already enabled).
    Invalid(super::UserError),
    /// Storage failure.
    Storage(anyhow::Error),
}

/// What is checked, and for whom.
pub struct Attempt<'a> {
    /// The name as given.
    pub name: &'a str,
    /// The name as the limiter counts it (cut and masked by the caller, so
    /// a huge or odd name cannot bloat memory).
    pub limit_name: &'a str,
    /// Client address, for the limiter.
    pub client: &'a str,
    /// Password as given.
    pub password: String,
    /// Second factor as given.
    pub factor: Factor,
    /// Whether a user without a second factor passes on the password alone
    /// (login: yes; turning a factor off: there is none to turn off).
    pub factor_optional: bool,
    /// Now, ns.
    pub now_ns: i64,
}

/// Checks `a` against `users`: the attempt is counted as a failure before
/// anything is verified (so concurrent guesses cannot all slip under the
/// limit), waits for one of `slots` for the argon2 work, and is given back
/// only when everything asked for was right.
pub async fn check(
    users: &Users,
    limiter: &LoginLimiter,
    slots: &Arc<Semaphore>,
    a: Attempt<'_>,
) -> Result<Passed, Refused> {
    let reservation = limiter
        .begin(a.limit_name, a.client, a.now_ns)
        .map_err(Refused::Limited)?;
    let Ok(Ok(permit)) = tokio::time::timeout(VERIFY_QUEUE, slots.clone().acquire_owned()).await
    else {
        limiter.cancel(reservation);
        return Err(Refused::Busy);
    };
    let users = users.clone();
    let name = a.name.to_owned();
    let (factor, optional, now_ns) = (a.factor, a.factor_optional, a.now_ns);
    let password = a.password;
    let outcome = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let Some(user) = users.verify(&name, &password)? else {
            return Ok(Err(Refused::WrongPassword));
        };
        if user.totp.is_none() {
            return Ok(if optional {
                Ok(Passed { user, factor: None })
            } else {
                Err(Refused::WrongFactor)
            });
        }
        if factor == Factor::None {
            return Ok(Err(Refused::FactorRequired));
        }
        match users.use_factor(&user.name, &factor, now_ns) {
            Ok(Some(acc)) => Ok(Ok(Passed {
                user: users.get(&user.name)?.unwrap_or(user),
                factor: Some(acc),
            })),
            Ok(None) => Ok(Err(Refused::WrongFactor)),
            Err(super::UserError::NotFound) => Ok(Err(Refused::WrongPassword)),
            Err(e) => Err(anyhow::anyhow!("{e}")),
        }
    })
    .await
    .map_err(|e| Refused::Storage(e.into()))
    .and_then(|r: anyhow::Result<_>| r.map_err(Refused::Storage))
    .and_then(|r| r);
    match &outcome {
        Ok(_) => limiter.success(reservation),
        // Asking for the code is neutral: it neither counts nor clears, so
        // alternating "password only" with code guesses launders nothing.
        Err(Refused::FactorRequired) | Err(Refused::Storage(_)) => limiter.cancel(reservation),
        // The reservation stands as the failure.
        Err(_) => drop(reservation),
    }
    outcome
}

/// Checks the code that finishes `name`'s enrolment (see
/// [`Users::check_confirmation`]), counting a wrong code like a failed login so
/// confirmation is no cheaper a place to guess. Nothing is enabled yet: the
/// caller audits, then applies the returned confirmation.
pub fn confirm(
    users: &Users,
    limiter: &LoginLimiter,
    name: &str,
    client: &str,
    code: &str,
    now_ns: i64,
) -> Result<Confirmation, Refused> {
    let reservation = limiter
        .begin(name, client, now_ns)
        .map_err(Refused::Limited)?;
    match users.check_confirmation(name, code, now_ns) {
        Ok(Some(c)) => {
            limiter.success(reservation);
            Ok(c)
        }
        Ok(None) => Err(Refused::WrongFactor),
        Err(super::UserError::Storage(e)) => {
            limiter.cancel(reservation);
            Err(Refused::Storage(e))
        }
        Err(e) => {
            limiter.cancel(reservation);
            Err(Refused::Invalid(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::ratelimit::Limits;
    use crate::auth::Role;
    use crate::clock::NS_PER_SEC;

    #[tokio::test]
    async fn code_guesses_share_the_login_budget() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let users = Users::open(&db, crate::auth::seal::SealKey::random()).unwrap();
        users.add("a", Role::Admin, None, "password1", 0).unwrap();
        let now = 1_800_000_000 * NS_PER_SEC;
        let e = users.begin_totp("a", now).unwrap();
        let t = totp_rs::TOTP::new(
            totp_rs::Algorithm::SHA1,
            6,
            0,
            30,
            totp_rs::Secret::Encoded(e.secret).to_bytes().unwrap(),
        )
        .unwrap();
        users
            .confirm_totp("a", &t.generate(1_800_000_000), now)
            .unwrap()
            .unwrap();
        let limiter = LoginLimiter::new(Limits::default());
        let slots = Arc::new(Semaphore::new(2));
        let attempt = |factor: Factor| Attempt {
            name: "a",
            limit_name: "a",
            client: "1.2.3.4",
            password: "password1".into(),
            factor,
            factor_optional: true,
            now_ns: now,
        };
        // Asking for the code any number of times costs nothing...
        for _ in 0..5 {
            let r = check(&users, &limiter, &slots, attempt(Factor::None)).await;
            assert!(matches!(r, Err(Refused::FactorRequired)), "{r:?}");
        }
        // ...but three wrong codes use the free failures, then the limit bites.
        for _ in 0..3 {
            let r = check(
                &users,
                &limiter,
                &slots,
                attempt(Factor::Code("123".into())),
            )
            .await;
            assert!(matches!(r, Err(Refused::WrongFactor)), "{r:?}");
        }
        let r = check(&users, &limiter, &slots, attempt(Factor::None)).await;
        assert!(matches!(r, Err(Refused::Limited(_))), "{r:?}");
    }
}
