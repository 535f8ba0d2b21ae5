//! The caller's own second factor: start enrolment (password again), confirm
//! it with a code (recovery codes returned once), turn it off (password and
//! a code), renew the recovery codes (password and an authenticator code). The checks live in `auth::login` and `auth::totp`; these shape
//! requests and answers and write the audit entries.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{factor_of, record_factor, refused};
use super::error::{ApiError, ApiJson};
use super::{App, Caller};
use crate::audit::{Action, Event};
use crate::auth::login::{self, Attempt};
use crate::auth::totp::Factor;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    password: String,
}

/// `POST /api/me/totp/enrol` `{password}` → `{secret, uri, qr_svg}`: a new
/// secret, pending until confirmed. The password is asked again so that a
/// stolen session cannot tie the account to the thief's phone.
pub async fn enrol(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
    ApiJson(b): ApiJson<EnrolRequest>,
) -> Result<Json<Value>, ApiError> {
    if c.user.totp.is_some() {
        return Err(ApiError::conflict(
            "a second factor is already enabled; disable it first",
        ));
    }
    let attempt = Attempt {
        name: &c.user.name,
        limit_name: &c.user.name,
        client: &c.client,
        password: b.password,
        factor: Factor::None,
        factor_optional: true,
        now_ns: app.clock.now_ns(),
    };
    if let Err(why) = login::check(&app.users, &app.limiter, &app.verify_slots, attempt).await {
        return Err(refused(&app, c.user.name.clone(), c.client.clone(), why).await);
    }
    let name = c.user.name.clone();
    let e = app
        .blocking(move |app| app.users.begin_totp(&name, app.clock.now_ns()))
        .await?;
    Ok(Json(json!({
        "secret": e.secret,
        "uri": e.uri,
        "qr_svg": e.qr_svg,
        "digits": crate::auth::totp::DIGITS,
        "period_seconds": crate::auth::totp::STEP_SECONDS,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    code: String,
}

/// `POST /api/me/totp/confirm` `{code}` → `{recovery_codes}`: the second
/// factor is on from now, and these codes are never shown again.
pub async fn confirm(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
    ApiJson(b): ApiJson<ConfirmRequest>,
) -> Result<Json<Value>, ApiError> {
    let confirmed = {
        let app = app.clone();
        let (name, client) = (c.user.name.clone(), c.client.clone());
        tokio::task::spawn_blocking(move || {
            login::confirm(
                &app.users,
                &app.limiter,
                &name,
                &client,
                &b.code,
                app.clock.now_ns(),
            )
        })
        .await?
    };
    let confirmed = match confirmed {
        Ok(x) => x,
        Err(why) => return Err(refused(&app, c.user.name.clone(), c.client.clone(), why).await),
    };
    // Audited before the change: if the entry cannot be written, the second factor
    // stays off (and the enrolment pending) and the caller is told it failed.
    app.record(Event {
        actor: c.user.name.clone(),
        role: Some(c.user.role.as_str().into()),
        action: Action::TotpEnable,
        target: c.user.name.clone(),
        client: c.client.clone(),
        detail: format!(
            "recovery_codes={} other_sessions=ended",
            crate::auth::totp::RECOVERY_CODES
        ),
    })
    .await?;
    // Sessions opened with the password alone end; this one proved the code.
    let (name, token) = (c.user.name.clone(), c.token.clone());
    let codes = app
        .blocking(move |app| -> Result<_, ApiError> {
            let codes = app
                .users
                .enable_totp(&name, &confirmed, app.clock.now_ns())?;
            app.sessions.revoke_others(&name, &token)?;
            Ok(codes)
        })
        .await?;
    Ok(Json(json!({ "recovery_codes": codes })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisableRequest {
    password: String,
    #[serde(default)]
    totp_code: Option<String>,
    #[serde(default)]
    recovery_code: Option<String>,
}

/// `POST /api/me/totp/disable` `{password, totp_code | recovery_code}` → 204.
pub async fn disable(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
    ApiJson(b): ApiJson<DisableRequest>,
) -> Result<StatusCode, ApiError> {
    if c.user.totp.is_none() {
        return Err(ApiError::conflict("no second factor is enabled"));
    }
    let attempt = Attempt {
        name: &c.user.name,
        limit_name: &c.user.name,
        client: &c.client,
        password: b.password,
        factor: factor_of(b.totp_code, b.recovery_code)?,
        factor_optional: false,
        now_ns: app.clock.now_ns(),
    };
    let passed = match login::check(&app.users, &app.limiter, &app.verify_slots, attempt).await {
        Ok(p) => p,
        Err(why) => return Err(refused(&app, c.user.name.clone(), c.client.clone(), why).await),
    };
    record_factor(&app, &c.user.name, &c.client, passed.factor).await?;
    // Audited before the change: if the entry cannot be written, the second factor
    // stays on.
    app.record(Event {
        actor: c.user.name.clone(),
        role: Some(c.user.role.as_str().into()),
        action: Action::TotpDisable,
        target: c.user.name.clone(),
        client: c.client.clone(),
        detail: "other_sessions=ended".into(),
    })
    .await?;
    let (name, token) = (c.user.name.clone(), c.token.clone());
    app.blocking(move |app| -> Result<_, ApiError> {
        app.users.clear_totp(&name)?;
        Ok(app.sessions.revoke_others(&name, &token)?)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryRequest {
    password: String,
    totp_code: String,
}

/// `POST /api/me/totp/recovery` `{password, totp_code}` → `{recovery_codes}`: ten new
/// recovery codes, shown once; the old ones stop working. Password and a current
/// authenticator code (not a recovery code: whoever holds only those cannot renew
/// them), both counted against the login budget like any other guess.
pub async fn renew_recovery(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
    ApiJson(b): ApiJson<RecoveryRequest>,
) -> Result<Json<Value>, ApiError> {
    if c.user.totp.is_none() {
        return Err(ApiError::conflict("no second factor is enabled"));
    }
    let attempt = Attempt {
        name: &c.user.name,
        limit_name: &c.user.name,
        client: &c.client,
        password: b.password,
        factor: Factor::Code(b.totp_code),
        factor_optional: false,
        now_ns: app.clock.now_ns(),
    };
    if let Err(why) = login::check(&app.users, &app.limiter, &app.verify_slots, attempt).await {
        return Err(refused(&app, c.user.name.clone(), c.client.clone(), why).await);
    }
    // Audited first, like every other action: if the entry cannot be written, the old
    // codes stay and the caller is told it failed.
    app.record(Event {
        actor: c.user.name.clone(),
        role: Some(c.user.role.as_str().into()),
        action: Action::RecoveryCodesRenewed,
        target: c.user.name.clone(),
        client: c.client.clone(),
        detail: format!("recovery_codes={}", crate::auth::totp::RECOVERY_CODES),
    })
    .await?;
    let name = c.user.name.clone();
    let codes = app
        .blocking(move |app| app.users.regenerate_recovery(&name))
        .await?;
    Ok(Json(json!({ "recovery_codes": codes })))
}
