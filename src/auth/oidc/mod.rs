//! Single sign-on over OpenID Connect: the authorisation code flow with PKCE,
//! `state` bound to the browser that started it and `nonce` bound to the ID
//! token. The provider's discovery document and signing keys are fetched
//! from the configured issuer (the only outbound connection this adds, and
//! only when `[oidc]` is configured); the ID token's signature, issuer,
//! audience, expiry and nonce are checked by the `openidconnect` crate.
//!
//! This module knows nothing about cookies or routes: `web::oidc` carries the
//! browser key in a cookie and turns outcomes into redirects. It never logs
//! the client secret, a code or a token.

pub mod config;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use config::{Grant, OidcConfig};

use super::session::constant_time_eq;

/// How long a started sign-in may take at the provider.
pub const PENDING_FOR: Duration = Duration::from_secs(600);
/// Sign-ins under way at once; beyond it the oldest is dropped, so anonymous
/// clicks on the button cannot grow memory without bound.
const MAX_PENDING: usize = 1000;
/// How long the discovery document (and so the key set's address) is reused.
const METADATA_FOR: Duration = Duration::from_secs(600);

/// A sign-in handed to the provider, waiting for the browser to come back.
struct Pending {
    state: String,
    nonce: Nonce,
    verifier: PkceCodeVerifier,
    started: Instant,
}

/// The provider as this server talks to it.
pub struct Sso {
    cfg: OidcConfig,
    http: reqwest::Client,
    metadata: tokio::sync::Mutex<Option<(Instant, CoreProviderMetadata)>>,
    /// Keyed by the SHA-256 of the browser key in the sign-in cookie.
    pending: std::sync::Mutex<HashMap<[u8; 32], Pending>>,
}

/// A sign-in to send the browser off with.
pub struct Started {
    /// The provider's authorisation URL (with state, nonce and the PKCE challenge).
    pub url: String,
    /// The secret the browser keeps (in a cookie) and brings back.
    pub browser_key: String,
}

/// Who came back from the provider, verified.
#[derive(Debug)]
pub struct Identity {
    /// The ID token's issuer and subject.
    pub link: super::SsoLink,
    /// The name from `username_claim`.
    pub name: String,
    /// The values of `groups_claim`.
    pub groups: Vec<String>,
    /// What they grant; `None`: refused.
    pub grant: Option<Grant>,
}

/// Why a sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// No sign-in under way for this browser, too old, or a `state` that is not
    /// the one sent: a forged or replayed callback.
    #[error("the sign-in is unknown, expired or its state does not match")]
    State,
    /// The provider refused, could not be reached, or sent a token that does not verify.
    #[error("{0}")]
    Provider(String),
    /// The ID token has no usable user name.
    #[error("{0}")]
    Name(String),
}

impl Failure {
    /// A short code for the login page's message.
    pub fn code(&self) -> &'static str {
        match self {
            Failure::State => "state",
            Failure::Provider(_) => "provider",
            Failure::Name(_) => "name",
        }
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn key_hash(browser_key: &str) -> [u8; 32] {
    Sha256::digest(browser_key.as_bytes()).into()
}

impl Sso {
    /// Builds the HTTP client (rustls; the system's roots plus `ca_file`;
    /// redirects not followed, as OpenID Connect expects of a client).
    pub fn new(cfg: OidcConfig) -> anyhow::Result<Sso> {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(20));
        if let Some(ca) = &cfg.ca_file {
            let pem = std::fs::read(ca)
                .with_context(|| format!("reading [oidc] ca_file {}", ca.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("[oidc] ca_file {} is not PEM", ca.display()))?
            {
                b = b.add_root_certificate(cert);
            }
        }
        Ok(Sso {
            http: b.build().context("building the [oidc] HTTP client")?,
            cfg,
            metadata: Default::default(),
            pending: Default::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OidcConfig {
        &self.cfg
    }

    /// The provider's discovery document (with its key set), fetched again
    /// after [`METADATA_FOR`] or when `fresh` (a token's key was not in it).
    async fn metadata(&self, fresh: bool) -> Result<CoreProviderMetadata, Failure> {
        let mut cached = self.metadata.lock().await;
        if let Some((at, md)) = cached.as_ref() {
            if !fresh && at.elapsed() < METADATA_FOR {
                return Ok(md.clone());
            }
        }
        let issuer = IssuerUrl::new(self.cfg.issuer.clone())
            .map_err(|e| Failure::Provider(format!("issuer {}: {e}", self.cfg.issuer)))?;
        let md = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| {
                Failure::Provider(format!("discovery at {}: {}", self.cfg.issuer, chain(&e)))
            })?;
        *cached = Some((Instant::now(), md.clone()));
        Ok(md)
    }

    fn client(
        &self,
        md: CoreProviderMetadata,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        Failure,
    > {
        let redirect = RedirectUrl::new(self.cfg.redirect_url.clone())
            .map_err(|e| Failure::Provider(format!("redirect_url: {e}")))?;
        Ok(CoreClient::from_provider_metadata(
            md,
            ClientId::new(self.cfg.client_id.clone()),
            self.cfg.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect))
    }

    /// Starts a sign-in: a fresh state, nonce and PKCE verifier, kept here
    /// under a new browser key.
    pub async fn start(&self) -> Result<Started, Failure> {
        let client = self.client(self.metadata(false).await?)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for s in &self.cfg.scopes {
            req = req.add_scope(Scope::new(s.clone()));
        }
        let (url, state, nonce) = req.url();
        let browser_key = CsrfToken::new_random().secret().clone();
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|_, p| p.started.elapsed() < PENDING_FOR);
        if pending.len() >= MAX_PENDING {
            if let Some(oldest) = pending
                .iter()
                .min_by_key(|(_, p)| p.started)
                .map(|(k, _)| *k)
            {
                pending.remove(&oldest);
            }
        }
        pending.insert(
            key_hash(&browser_key),
            Pending {
                state: state.secret().clone(),
                nonce,
                verifier,
                started: Instant::now(),
            },
        );
        Ok(Started {
            url: url.to_string(),
            browser_key,
        })
    }

    /// Finishes the sign-in the browser holding `browser_key` started: the
    /// returned `state` must be the one sent (each is used once), then the
    /// code is exchanged with the PKCE verifier and the ID token verified.
    pub async fn finish(
        &self,
        browser_key: Option<&str>,
        state: &str,
        code: &str,
    ) -> Result<Identity, Failure> {
        let p = browser_key
            .and_then(|k| {
                self.pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key_hash(k))
            })
            .ok_or(Failure::State)?;
        if p.started.elapsed() >= PENDING_FOR
            || !constant_time_eq(state.as_bytes(), p.state.as_bytes())
        {
            return Err(Failure::State);
        }
        let client = self.client(self.metadata(false).await?)?;
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| Failure::Provider(format!("no token endpoint: {e}")))?
            .set_pkce_verifier(p.verifier)
            .request_async(&self.http)
            .await
            .map_err(|e| Failure::Provider(format!("token request: {}", chain(&e))))?;
        let id_token = token
            .id_token()
            .ok_or_else(|| Failure::Provider("the token response has no ID token".into()))?;
        // Signature (against the provider's published keys), issuer, audience,
        // expiry and nonce. A key the cached set lacks may be a rotation: fetch
        // the provider's keys again once before refusing.
        if let Err(first) = id_token.claims(&client.id_token_verifier(), &p.nonce) {
            let fresh = self.client(self.metadata(true).await?)?;
            id_token
                .claims(&fresh.id_token_verifier(), &p.nonce)
                .map_err(|e| {
                    Failure::Provider(format!("ID token refused: {} (before: {first})", chain(&e)))
                })?;
        }
        // The token is verified; read the claims cleannvr maps (groups or roles
        // and the user name) from its payload as plain JSON, since they are
        // provider-specific and not among the crate's standard claims.
        let payload = id_token
            .to_string()
            .split('.')
            .nth(1)
            .and_then(|b| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(b)
                    .ok()
            })
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .ok_or_else(|| Failure::Provider("ID token payload is not JSON".into()))?;
        let text = |v: &Value| v.as_str().map(str::to_owned);
        let issuer = payload.get("iss").and_then(text).unwrap_or_default();
        let subject = payload.get("sub").and_then(text).unwrap_or_default();
        let name = claim(&payload, &self.cfg.username_claim)
            .and_then(text)
            .ok_or_else(|| {
                Failure::Name(format!(
                    "the ID token has no {} claim (username_claim)",
                    self.cfg.username_claim
                ))
            })?;
        if !super::valid_user_name(&name) {
            return Err(Failure::Name(format!(
                "the {} claim {:?} is not a user name cleannvr accepts (1-64 of A-Z a-z 0-9 . _ @ -)",
                self.cfg.username_claim,
                shown(&name)
            )));
        }
        let groups = groups(&payload, &self.cfg.groups_claim);
        let grant = self.cfg.grant(&groups);
        Ok(Identity {
            link: super::SsoLink { issuer, subject },
            name,
            groups,
            grant,
        })
    }
}

/// A value from the provider as logs and the audit trail show it: cut, and
/// control characters masked, so it cannot forge lines.
pub fn shown(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The claim at a dotted path (`realm_access.roles`), or at the whole name when
/// the provider uses dots in it.
fn claim<'a>(payload: &'a Value, path: &str) -> Option<&'a Value> {
    payload
        .get(path)
        .or_else(|| path.split('.').try_fold(payload, |v, part| v.get(part)))
}

/// A groups claim as strings: an array of strings, or one string.
fn groups(payload: &Value, path: &str) -> Vec<String> {
    match claim(payload, path) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn groups_from_arrays_strings_and_paths() {
        let p = json!({
            "groups": ["/cctv", "finance", 7],
            "roles": "NVR.Admin",
            "realm_access": {"roles": ["nvr-viewer"]},
            "odd.name": ["x"],
        });
        assert_eq!(groups(&p, "groups"), ["/cctv", "finance"]);
        assert_eq!(groups(&p, "roles"), ["NVR.Admin"]);
        assert_eq!(groups(&p, "realm_access.roles"), ["nvr-viewer"]);
        assert_eq!(groups(&p, "odd.name"), ["x"]);
        assert!(groups(&p, "missing").is_empty());
    }
}
