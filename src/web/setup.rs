//! First-run setup over the web: `GET /api/setup` says whether the server
//! still needs its first admin, `POST /api/setup` creates that admin with
//! the one-time code `run` logged ([`crate::auth::setup`]) and logs them in.
//! Both are public (there is nobody to log in as yet); once an admin exists
//! the POST is refused with 409, and every refusal is audited.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{FromRequest, State};
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::{info, warn};

use super::error::{ApiError, ApiJson};
use super::{api, client_of, App};
use crate::audit::{Action, Event};
use crate::auth::setup::Refusal;
use crate::auth::{check_password, valid_user_name, Role};
use crate::clock::rfc3339;

/// The rate limiter's name for setup attempts: not a valid user name (it
/// has spaces), so it shares no budget with any account.
const LIMITER_NAME: &str = "first-run setup";

/// If no admin exists, issues a setup code and logs it with the address
/// to open. Called once the web server's address is known.
pub fn announce(app: &App, scheme: &str, addr: SocketAddr) -> anyhow::Result<()> {
    if app.users.any_admin()? {
        return Ok(());
    }
    let (code, pending) = app.setup.issue(app.clock.now_ns());
    let host = if addr.ip().is_unspecified() {
        "THIS-SERVER".to_owned()
    } else if addr.is_ipv6() {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    };
    warn!(
        "no admin user yet: open {scheme}://{host}:{port}/ and enter the one-time setup code \
         {code} to create the first admin. The code works once, until {until}; restarting \
         cleannvr issues a new one",
        port = addr.port(),
        until = rfc3339(pending.expires_ns),
    );
    Ok(())
}

/// `GET /api/setup`: `{required, code_valid_until}`. `required` is true
/// while no admin exists; `code_valid_until` is null once the code is used
/// up or expired (the page then says to restart cleannvr).
pub async fn status(State(app): State<Arc<App>>) -> Result<Json<Value>, ApiError> {
    let required = !app.users.any_admin()?;
    let until = required
        .then(|| app.setup.valid_until(app.clock.now_ns()))
        .flatten();
    Ok(Json(json!({
        "required": required,
        "code_valid_until": until.map(rfc3339),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupRequest {
    code: String,
    username: String,
    password: String,
}

/// `POST /api/setup`: `{code, username, password}` → the first admin, logged
/// in (the same reply as `POST /api/login`). 409 once an admin exists, 403
/// for a wrong, used or expired code, 429 when rate limited.
pub async fn create(
    State(app): State<Arc<App>>,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let client = client_of(req.extensions());
    let ApiJson(b): ApiJson<SetupRequest> = ApiJson::from_request(req, &app).await?;
    // Plain input checks first: they reveal nothing and must not use up the code.
    if !valid_user_name(&b.username) {
        return Err(ApiError::invalid_argument(
            "user name must be 1-64 of A-Z a-z 0-9 . _ @ -",
        ));
    }
    check_password(&b.password)?;
    let now = app.clock.now_ns();
    let reservation = match app.limiter.begin(LIMITER_NAME, &client, now) {
        Ok(r) => r,
        Err(wait) => {
            warn!(client = %client, "first-run setup refused by rate limit");
            return Err(ApiError::too_many(wait));
        }
    };
    let refuse = |detail: &str| Event {
        actor: b.username.clone(),
        role: None,
        action: Action::SetupRefused,
        target: String::new(),
        client: client.clone(),
        detail: detail.to_owned(),
    };
    if app.users.any_admin()? {
        // An admin made some other way (the CLI) ends the code too.
        app.setup.withdraw();
        app.record(refuse("an admin already exists")).await?;
        return Err(ApiError::conflict(
            "setup is done: an admin already exists; log in instead",
        ));
    }
    let pending = match app.setup.take_if(&b.code, now) {
        Ok(p) => p,
        Err(r) => {
            app.record(refuse(r.message())).await?;
            if r == Refusal::Expired {
                info!("the setup code has expired; restart cleannvr for a new one");
            }
            return Err(ApiError::permission_denied(r.message()));
        }
    };
    // The code is ours alone now; argon2 off the async threads.
    let added = {
        let app = app.clone();
        let name = b.username.clone();
        tokio::task::spawn_blocking(move || {
            app.users.add(&name, Role::Admin, None, &b.password, now)
        })
        .await?
    };
    let user = match added {
        Ok(u) => u,
        Err(e) => {
            // A name a non-admin already has, or a storage error: the code
            // was not what failed, so it stays usable.
            app.setup.restore(pending);
            app.limiter.cancel(reservation);
            return Err(e.into());
        }
    };
    app.limiter.success(reservation);
    info!(user = %user.name, "first admin created with the setup code; the code is used up");
    app.record(Event {
        actor: user.name.clone(),
        role: Some(user.role.as_str().into()),
        action: Action::UserAdd,
        target: user.name.clone(),
        client: client.clone(),
        detail: "role=admin cameras=all (first-run setup)".into(),
    })
    .await?;
    api::start_session(&app, &user, client, "setup").await
}
