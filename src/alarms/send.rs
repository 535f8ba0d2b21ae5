//! Delivery of raised and cleared alarms: e-mail through the configured SMTP
//! relay (`lettre`) and an HTTP POST of JSON to the configured webhook, each
//! with a deadline and retries, and only to LAN addresses: a name is resolved
//! when sending and refused if any address it gives is not on the LAN, and
//! the connection goes to the address that was checked. Nothing else leaves
//! the server. Credentials are never logged (errors name the relay, not the account).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::config::{is_lan, AlarmsConfig, EmailConfig, Security, WebhookConfig};
use super::Notice;
use crate::clock::rfc3339;

/// Deliveries waiting per channel. When full (a relay down for long while
/// alarms keep changing), new notices are dropped with a log line rather
/// than blocking the watcher: the alarm itself is still stored and shown.
const QUEUE: usize = 64;

/// Hands notices to the delivery tasks.
pub struct Sender {
    email: Option<mpsc::Sender<Notice>>,
    webhook: Option<mpsc::Sender<Notice>>,
}

impl Sender {
    /// Starts one delivery task per configured channel.
    pub fn start(cfg: &AlarmsConfig, shutdown: CancellationToken) -> Sender {
        let email = cfg.email.clone().map(|c| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(email_loop(c, rx, shutdown.clone()));
            tx
        });
        let webhook = cfg.webhook.clone().map(|c| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(webhook_loop(c, rx, shutdown.clone()));
            tx
        });
        Sender { email, webhook }
    }

    /// Queues `n` for every channel without waiting.
    pub fn deliver(&self, n: Notice) {
        for (name, ch) in [("e-mail", &self.email), ("webhook", &self.webhook)] {
            if let Some(tx) = ch {
                if tx.try_send(n.clone()).is_err() {
                    warn!(
                        alarm = n.alarm.id,
                        "alarm {name} queue full: this notice is not sent"
                    );
                }
            }
        }
    }
}

/// Tries `attempt` up to `1 + retries` times, 1 s, 2 s, 4 s... apart.
async fn with_retries<F, Fut>(
    what: &str,
    alarm: u64,
    retries: u32,
    shutdown: &CancellationToken,
    mut attempt: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut wait = Duration::from_secs(1);
    for n in 0..=retries {
        match attempt().await {
            Ok(()) => {
                info!(alarm, "alarm {what} delivered");
                return;
            }
            Err(e) if n == retries => {
                error!(
                    alarm,
                    "alarm {what} not delivered after {} attempts: {e:#}",
                    n + 1
                );
                return;
            }
            Err(e) => warn!(
                alarm,
                "alarm {what} attempt {} failed, retrying: {e:#}",
                n + 1
            ),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(Duration::from_secs(60));
    }
}

/// The one address of `host` to connect to, after checking that every address
/// it resolves to is on the LAN.
pub async fn lan_address(host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("resolving {host}"))?
        .collect();
    if let Some(a) = addrs.iter().find(|a| !is_lan(a.ip())) {
        bail!(
            "{host} resolves to {}, which is not on the LAN: alarms go only to the local network",
            a.ip()
        );
    }
    addrs
        .first()
        .copied()
        .ok_or_else(|| anyhow!("{host} has no address"))
}

async fn email_loop(cfg: EmailConfig, mut rx: mpsc::Receiver<Notice>, shutdown: CancellationToken) {
    loop {
        let n = tokio::select! {
            _ = shutdown.cancelled() => return,
            n = rx.recv() => match n { Some(n) => n, None => return },
        };
        with_retries("e-mail", n.alarm.id, cfg.retries, &shutdown, || {
            send_email(&cfg, &n)
        })
        .await;
    }
}

/// Subject and plain-text body of the mail for `n`.
pub fn email_text(n: &Notice) -> (String, String) {
    let a = &n.alarm;
    let head = if n.event == "raised" {
        "ALARM"
    } else {
        "Cleared"
    };
    let about = a
        .camera
        .as_deref()
        .map(|c| format!(" camera {c}"))
        .unwrap_or_default();
    let subject = format!("[cleannvr] {head}: {}{about}", a.kind.as_str());
    let mut body = format!(
        "{head}: {}\n\n{}\n\nKind: {}\n",
        a.kind.as_str(),
        a.message,
        a.kind.as_str()
    );
    if let Some(c) = &a.camera {
        body += &format!("Camera: {c}\n");
    }
    body += &format!("Raised: {}\n", rfc3339(a.raised_ns));
    if let Some(t) = a.cleared_ns {
        body += &format!("Cleared: {}\n", rfc3339(t));
    }
    if let Some(u) = &a.acked_by {
        body += &format!("Acknowledged by: {u}\n");
    }
    body += &format!(
        "Alarm id: {}\n\nAcknowledge it under the bell in cleannvr's web UI.\n",
        a.id
    );
    (subject, body)
}

/// One attempt to mail `n` through the relay (public for the tests that run
/// it against a real SMTP server over STARTTLS and implicit TLS).
pub async fn send_email(cfg: &EmailConfig, n: &Notice) -> anyhow::Result<()> {
    use lettre::message::{header::ContentType, Mailbox};
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

    let port = cfg.port();
    let deadline = Duration::from_secs(cfg.timeout_seconds.into());
    let addr = lan_address(&cfg.relay, port).await?;
    let (subject, body) = email_text(n);
    let mut m = Message::builder()
        .from(cfg.from.parse::<Mailbox>().context("from")?)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN);
    for t in &cfg.to {
        m = m.to(t.parse::<Mailbox>().context("to")?);
    }
    let message = m.body(body).context("building the mail")?;
    // Connect to the checked address; TLS still verifies the relay's name.
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr.ip().to_string())
        .port(port)
        .timeout(Some(deadline));
    if cfg.security != Security::None {
        let mut p = TlsParameters::builder(cfg.relay.clone());
        if let Some(ca) = &cfg.ca_file {
            let pem = tokio::fs::read(ca)
                .await
                .with_context(|| format!("reading {}", ca.display()))?;
            p = p.add_root_certificate(
                Certificate::from_pem(&pem).with_context(|| format!("{}", ca.display()))?,
            );
        }
        let p = p.build_rustls().context("TLS settings")?;
        b = b.tls(match cfg.security {
            Security::Tls => Tls::Wrapper(p),
            _ => Tls::Required(p),
        });
    }
    if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
        b = b.credentials(Credentials::new(u.clone(), p.clone()));
    }
    let relay = format!("{}:{port}", cfg.relay);
    tokio::time::timeout(deadline * 3, b.build().send(message))
        .await
        .map_err(|_| anyhow!("no answer from {relay} in time"))?
        .map_err(|e| anyhow!("sending through {relay}: {e}"))?;
    Ok(())
}

async fn webhook_loop(
    cfg: WebhookConfig,
    mut rx: mpsc::Receiver<Notice>,
    shutdown: CancellationToken,
) {
    loop {
        let n = tokio::select! {
            _ = shutdown.cancelled() => return,
            n = rx.recv() => match n { Some(n) => n, None => return },
        };
        let body = serde_json::json!({ "event": n.event, "alarm": n.alarm.json() }).to_string();
        let deadline = Duration::from_secs(cfg.timeout_seconds.into());
        with_retries("webhook", n.alarm.id, cfg.retries, &shutdown, || async {
            tokio::time::timeout(deadline, post_json(&cfg.url, body.clone()))
                .await
                .map_err(|_| anyhow!("no answer within {} s", deadline.as_secs()))?
        })
        .await;
    }
}

/// One POST of `body` to `url`; Ok on a 2xx status.
async fn post_json(url: &str, body: String) -> anyhow::Result<()> {
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper_util::rt::TokioIo;

    let u = url::Url::parse(url).context("webhook url")?;
    let host = u
        .host_str()
        .ok_or_else(|| anyhow!("webhook url has no host"))?;
    let port = u.port_or_known_default().unwrap_or(80);
    let addr = lan_address(host, port).await?;
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {host}:{port}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake")?;
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let path = match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_owned(),
    };
    let host_header = match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    let req = hyper::Request::post(path)
        .header(hyper::header::HOST, host_header)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::CONTENT_LENGTH, body.len())
        .header(
            hyper::header::USER_AGENT,
            concat!("cleannvr/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(Bytes::from(body)))?;
    let resp = sender.send_request(req).await.context("HTTP")?;
    conn.abort();
    let status = resp.status();
    if !status.is_success() {
        bail!("{host}:{port} answered {status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn public_addresses_are_refused_when_sending() {
        assert!(lan_address("127.0.0.1", 25).await.is_ok());
        let e = lan_address("8.8.8.8", 25).await.unwrap_err().to_string();
        assert!(e.contains("not on the LAN"), "{e}");
    }
}
