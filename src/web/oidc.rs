//! Single sign-on routes: the login page's button (`GET /api/oidc`), the
//! start (`GET /api/oidc/login`, off to the provider) and the provider's
//! return (`GET /api/oidc/callback`). The flow itself is `auth::oidc`; here
//! the browser key rides in a cookie and every outcome becomes a redirect to
//! the UI, which says in plain words why a sign-in was refused.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ApiQuery};
use super::{client_of, App};
use crate::audit::{Action, Event};
use crate::auth::oidc::{shown, Failure};
use crate::auth::UserError;

/// The cookie that binds a sign-in to the browser that started it.
const COOKIE: &str = "cleannvr_oidc";

/// `SameSite=Lax`, unlike the session cookie: the provider's redirect back is a
/// cross-site navigation, on which a `Strict` cookie is not sent. Scoped to the
/// callback, `HttpOnly`, and only as long as a sign-in may take.
fn key_cookie(value: &str, max_age_s: u64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; HttpOnly; Secure; SameSite=Lax; Path=/api/oidc/callback; Max-Age={max_age_s}"
    ))
    .expect("cookie is ASCII")
}

fn browser_key(headers: &HeaderMap) -> Option<String> {
    super::cookie(headers, COOKIE)
}

fn redirect(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    r.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/")),
    );
    r
}

/// Back to the login page with a reason code for its message.
fn refused_redirect(code: &str) -> Response {
    redirect(&format!("/?sso_error={code}"))
}

/// `GET /api/oidc`: whether the login page shows "Sign in with …", and its words.
pub async fn info(State(app): State<Arc<App>>) -> Json<Value> {
    Json(match &app.sso {
        Some(s) => json!({ "enabled": true, "label": s.config().label }),
        None => json!({ "enabled": false }),
    })
}

/// `GET /api/oidc/login`: starts a sign-in and sends the browser to the provider.
pub async fn login(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    let sso = app
        .sso
        .clone()
        .ok_or_else(|| ApiError::not_found("single sign-on is not configured ([oidc])"))?;
    match sso.start().await {
        Ok(started) => {
            let mut r = redirect(&started.url);
            r.headers_mut().insert(
                header::SET_COOKIE,
                key_cookie(
                    &started.browser_key,
                    crate::auth::oidc::PENDING_FOR.as_secs(),
                ),
            );
            Ok(r)
        }
        Err(e) => {
            tracing::warn!("single sign-on could not start: {e}");
            Ok(refused_redirect(e.code()))
        }
    }
}

/// What the provider appends to the redirect URL.
#[derive(Deserialize)]
pub struct Callback {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// `GET /api/oidc/callback`: checks the state against this browser's sign-in,
/// exchanges the code, verifies the ID token and maps its groups. A match
/// opens a session exactly as a password login does; no match is refused and
/// audited, and no account is made.
pub async fn callback(
    State(app): State<Arc<App>>,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let sso = app
        .sso
        .clone()
        .ok_or_else(|| ApiError::not_found("single sign-on is not configured ([oidc])"))?;
    let client = client_of(req.extensions());
    let key = browser_key(req.headers());
    let (mut parts, _) = req.into_parts();
    let ApiQuery(q) =
        <ApiQuery<Callback> as axum::extract::FromRequestParts<_>>::from_request_parts(
            &mut parts, &app,
        )
        .await?;
    let outcome = match (&q.error, &q.code, &q.state) {
        (Some(err), _, _) => {
            // The provider said no (the person cancelled, or the app is not
            // assigned to them); the sign-in is over either way.
            let _ = sso.finish(key.as_deref(), "", "").await;
            Err(Failure::Provider(format!(
                "the provider answered {}",
                shown(err)
            )))
        }
        (None, Some(code), Some(state)) => sso.finish(key.as_deref(), state, code).await,
        _ => Err(Failure::State),
    };
    let mut resp = match outcome {
        Err(f) => {
            refuse(&app, "", &client, &format!("oidc: {f}")).await;
            if let Failure::Provider(_) = f {
                tracing::warn!("single sign-on failed: {f}");
            }
            refused_redirect(f.code())
        }
        Ok(id) => {
            let who = format!(
                "oidc: subject={} groups=[{}]",
                shown(&id.link.subject),
                id.groups
                    .iter()
                    .map(|g| shown(g))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            match id.grant {
                None => {
                    refuse(
                        &app,
                        &id.name,
                        &client,
                        &format!("{who}: no group maps to a role"),
                    )
                    .await;
                    refused_redirect("no_role")
                }
                Some(grant) => {
                    let (name, link, now) = (id.name.clone(), id.link.clone(), app.clock.now_ns());
                    let upsert = app
                        .blocking(move |a| {
                            Ok::<_, ApiError>(a.users.upsert_sso(
                                &name,
                                &link,
                                grant.role,
                                grant.cameras,
                                now,
                            ))
                        })
                        .await?;
                    match upsert {
                        Ok(user) => {
                            let how = format!("oidc subject={}", shown(&id.link.subject));
                            let new = super::api::open_session(&app, &user, client, &how).await?;
                            let lt = app.sessions.lifetimes();
                            let mut r = redirect("/");
                            r.headers_mut().append(
                                header::SET_COOKIE,
                                super::api::session_cookie(
                                    &new.token,
                                    lt.absolute_ns / crate::clock::NS_PER_SEC,
                                ),
                            );
                            r
                        }
                        Err(UserError::Storage(e)) => return Err(e.into()),
                        Err(e) => {
                            refuse(&app, &id.name, &client, &format!("{who}: {e}")).await;
                            refused_redirect("taken")
                        }
                    }
                }
            }
        }
    };
    // The sign-in is spent whatever happened: drop its cookie.
    resp.headers_mut()
        .append(header::SET_COOKIE, key_cookie("", 0));
    Ok(resp)
}

/// Audits a refused sign-in (`login_failed`). A refusal that cannot be audited
/// is still a refusal.
async fn refuse(app: &Arc<App>, name: &str, client: &str, detail: &str) {
    if let Err(e) = app
        .record(Event {
            actor: shown(name),
            role: None,
            action: Action::LoginFailed,
            target: String::new(),
            client: client.to_owned(),
            detail: detail.to_owned(),
        })
        .await
    {
        tracing::warn!("auditing a refused sign-in: {e:?}");
    }
}
