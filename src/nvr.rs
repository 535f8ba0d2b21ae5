//! Wiring: opens the index, starts one camera supervisor per camera (see
//! `supervisor`), the retention loop and the web server, and shuts them down
//! in order (cameras first, so every recorder finishes and indexes its last
//! segment).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::cameras::CameraAdmin;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::status::StatusBoard;
use crate::store::{check, retention, Store};
use crate::supervisor::fleet::Fleet;
use crate::supervisor::Shared;
use crate::web::{self, App, Counters};

/// How often retention runs when nothing asks for it sooner.
const RETENTION_INTERVAL: Duration = Duration::from_secs(30);
/// How often the audit chain head is signed when it has grown.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);

/// How `run_with` differs between `run` and `demo`.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// When no admin exists, create `admin` with a random password printed
    /// once to stderr (`cleannvr demo`: zero setup).
    pub demo_admin: bool,
    /// The config file `config` came from: camera changes from the API are
    /// written back to it, and its edits are picked up on SIGHUP and when it
    /// changes. `None`: cameras cannot be changed while running.
    pub config_path: Option<std::path::PathBuf>,
    /// Once the index refuses writes (see `reopen`), stop with
    /// [`crate::reopen::IndexBroken`] and, should stopping hang, re-execute
    /// the process after [`crate::reopen::STOP_GRACE`]. Only for the `cleannvr`
    /// binary, whose caller re-executes on that error; without it the server
    /// still stops with that error.
    pub reexec_on_index_failure: bool,
}

/// Runs the NVR until `shutdown` is cancelled. `bound` receives the web
/// server's address once it is listening.
pub async fn run(
    config: Config,
    shutdown: CancellationToken,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> anyhow::Result<()> {
    run_with(config, shutdown, bound, Options::default()).await
}

/// [`run`] with [`Options`].
pub async fn run_with(
    config: Config,
    shutdown: CancellationToken,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
    options: Options,
) -> anyhow::Result<()> {
    // First of all: SIGHUP's default action ends the process, and an operator (or a
    // config tool) may send it while the index opens and the cameras start. Once
    // registered, tokio keeps the handler for the life of the process.
    let hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!("cannot listen for SIGHUP ({e}); config edits are still picked up when the file changes");
            None
        }
    };
    crate::transcode::limiter().set_budget(
        config
            .server
            .transcode_cpu_budget
            .unwrap_or_else(crate::transcode::default_budget),
    );
    let dir = config.storage.dir.clone();
    let store = Arc::new(
        tokio::task::spawn_blocking(move || Store::open(&dir))
            .await?
            .context("opening the index")?,
    );
    if let Ok(why) = std::env::var(crate::reopen::REASON_ENV) {
        warn!(
            error = %why,
            "restarted in place to reopen the index, which had stopped accepting writes"
        );
    }
    let recovered = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || check::recover_all(&store)).await??
    };
    let archive = {
        let (store, cfg) = (store.clone(), config.clone());
        tokio::task::spawn_blocking(move || crate::archive::connect(&store, &cfg))
            .await?
            .context("[archive]")?
    };
    if let Some(a) = &archive {
        info!(archive = ?a, after = ?a.after, "archive tier on");
        tokio::spawn(crate::archive::run(
            store.clone(),
            a.clone(),
            shutdown.clone(),
        ));
    }
    if !recovered.is_empty() {
        info!(
            segments = recovered.len(),
            "recovered segments left unfinished or unindexed"
        );
    }
    let status = Arc::new(StatusBoard::default());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let kick = Arc::new(Notify::new());
    let counters = Arc::new(Counters::default());
    // Ingest publishes to the hub, the web server's viewers read it.
    let live = Arc::new(crate::live::LiveHub::default());
    let app = Arc::new(App::new(
        config.clone(),
        store.clone(),
        status.clone(),
        clock.clone(),
        counters.clone(),
        live.clone(),
    )?);
    match &app.signer {
        Ok(signer) => info!(
            fingerprint = %signer.fingerprint(),
            key = %signer.path.display(),
            "export signing key (Ed25519; the fingerprint is the SHA-256 of the public key)"
        ),
        Err(e) => error!(
            "export signing key unavailable, exports are refused until it is fixed              (recording goes on): {e}"
        ),
    }
    // Admin commands (`cleannvr user`, `status`, ...) while recording goes on.
    crate::control::server::start(app.clone(), shutdown.clone());
    let clock_log = Arc::new(crate::timesync::Log::open(store.db())?);
    let synced = note_clock(&clock_log, clock.now_ns(), None);
    if options.demo_admin {
        // Only when no admin exists, so the password is printed once and a
        // data directory someone has since set up is never taken over.
        let app = app.clone();
        let created = tokio::task::spawn_blocking(move || -> anyhow::Result<Option<String>> {
            if app.users.any_admin()? {
                return Ok(None);
            }
            let pw = crate::auth::random_password();
            let now = app.clock.now_ns();
            app.users
                .add("admin", crate::auth::Role::Admin, None, &pw, now)?;
            Ok(Some(pw))
        })
        .await??;
        match created {
            Some(pw) => eprintln!("demo login: user admin password {pw}"),
            None => info!(
                "demo: an admin user already exists in this data directory (its password was \
                 printed when it was created); use a fresh --data directory to start over"
            ),
        }
    }

    // One supervisor per camera: each can be started, changed and stopped alone.
    let shared = Shared {
        store: store.clone(),
        status: status.clone(),
        live: live.clone(),
        clock: clock.clone(),
        opener: Arc::new(crate::ingest::rtsp::RetinaOpener),
        retention: kick.clone(),
        segment_seconds: config.storage.segment_seconds,
        ingest: Arc::new(
            crate::ingest::paced::IngestThreads::per_core(Duration::from_millis(
                config.server.ingest_read_ms.into(),
            ))
            .context("starting the ingest threads")?,
        ),
    };
    let fleet = Arc::new(Fleet::new(shared, app.cameras.clone(), shutdown.clone()));
    fleet.apply(config.cameras.clone()).await;
    let admin = Arc::new(CameraAdmin::new(fleet.clone(), options.config_path.clone()));
    let _ = app.camera_admin.set(admin.clone());
    if options.config_path.is_some() {
        tokio::spawn(reload_loop(app.clone(), admin, hup, shutdown.clone()));
    }

    tokio::spawn(crate::alarms::watch::run(
        app.clone(),
        kick.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(crate::camera_states::run(app.clone(), shutdown.clone()));
    let retention_task = tokio::spawn(retention_loop(app.clone(), kick.clone(), shutdown.clone()));
    let checkpoint_task = tokio::spawn(checkpoint_loop(app.clone(), shutdown.clone()));
    let index_watch = tokio::spawn(crate::reopen::watch(
        store.clone(),
        shutdown.clone(),
        options.reexec_on_index_failure,
    ));
    tokio::spawn(clock_loop(
        clock_log,
        clock.clone(),
        synced,
        shutdown.clone(),
    ));

    let identity = {
        let tls = config.server.tls.clone();
        let dir = config.storage.dir.clone();
        tokio::task::spawn_blocking(move || web::tls::load(&tls, &dir))
            .await?
            .context("setting up TLS")?
    };
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| format!("binding web server to {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    let scheme = match &identity {
        Some(id) => {
            info!(
                "TLS certificate {} ({}) SHA-256 fingerprint {}",
                id.cert_path.display(),
                if id.generated {
                    "generated now"
                } else {
                    "loaded"
                },
                id.fingerprint
            );
            "https"
        }
        None => {
            warn!("TLS is off (`tls = false`): serve only behind a TLS-terminating proxy");
            "http"
        }
    };
    info!("web server listening on {scheme}://{addr}");
    // No admin yet: log the one-time code for the browser's setup page.
    if let Err(e) = web::setup::announce(&app, scheme, addr) {
        warn!("cannot tell whether an admin exists, so no setup code was issued: {e:#}");
    }
    if let Some(tx) = bound {
        let _ = tx.send(addr);
    }
    // The web server's budget comes out of what the recorders leave: see web::conn.
    let nofile = web::conn::raise_nofile_limit();
    let budget = web::conn::ConnBudget::new(nofile, app.cameras.all().len()).with_write_stall(
        Duration::from_secs(app.config.server.write_stall_seconds.into()),
    );
    let limits = budget.limits();
    info!(
        nofile,
        connections = limits.connections,
        per_address = limits.per_addr,
        write_stall_s = limits.write_stall.as_secs(),
        "web connection budget"
    );
    // Cameras added or removed while running move descriptors between the recorders'
    // reserve and the web server's budget.
    tokio::spawn(follow_cameras(
        app.cameras.clone(),
        budget.clone(),
        shutdown.clone(),
    ));
    let web = tokio::spawn(web::serve(
        listener,
        identity.map(|i| i.config),
        web::router(app),
        budget,
        counters.clone(),
        shutdown.clone(),
    ));

    shutdown.cancelled().await;
    info!("shutting down");
    fleet.join().await;
    let _ = retention_task.await;
    if let Ok(Err(e)) = web.await {
        warn!(error = %e, "web server");
    }
    // The last checkpoint covers everything audited until the web server stopped.
    let _ = checkpoint_task.await;
    info!("stopped");
    if let Ok(Some(why)) = index_watch.await {
        return Err(crate::reopen::IndexBroken(why).into());
    }
    Ok(())
}

/// Recomputes the web server's connection budget whenever the camera list changes.
async fn follow_cameras(
    cameras: Arc<crate::supervisor::fleet::CameraList>,
    budget: web::conn::ConnBudget,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = cameras.replaced() => {}
        }
        let n = cameras.all().len();
        let before = budget.limits().connections;
        let l = budget.set_cameras(n);
        if l.connections != before {
            info!(
                cameras = n,
                connections = l.connections,
                per_address = l.per_addr,
                "web connection budget changed with the cameras"
            );
        }
    }
}

/// How often the config file is looked at for edits (SIGHUP applies them at once).
const CONFIG_POLL: Duration = Duration::from_secs(2);

/// Applies edits of the config file's cameras on SIGHUP and when the file
/// changes; each camera change is audited as made by `config-file`.
async fn reload_loop(
    app: Arc<App>,
    admin: Arc<CameraAdmin>,
    mut hup: Option<tokio::signal::unix::Signal>,
    shutdown: CancellationToken,
) {
    loop {
        let forced = tokio::select! {
            _ = shutdown.cancelled() => return,
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
            _ = crate::clock::tick(CONFIG_POLL) => false,
        };
        if forced {
            info!("SIGHUP: reading the config file again");
        }
        match admin.reload(forced).await {
            Ok(changes) => {
                for ch in changes {
                    info!(camera = %ch.camera, "camera changed in the config file");
                    let ev = crate::audit::Event {
                        actor: "config-file".into(),
                        role: None,
                        action: crate::audit::Action::CameraChange,
                        target: ch.camera.clone(),
                        client: "server".into(),
                        detail: ch.detail,
                    };
                    let app2 = app.clone();
                    let r = tokio::task::spawn_blocking(move || {
                        app2.audit.append(app2.clock.now_ns(), ev)
                    })
                    .await;
                    if !matches!(r, Ok(Ok(_))) {
                        error!(camera = %ch.camera, "auditing a camera change from the config file failed");
                    }
                }
            }
            Err(e) => error!("config file not applied, cameras unchanged: {e}"),
        }
    }
}

/// Signs a checkpoint of the audit chain head every [`CHECKPOINT_INTERVAL`] when it has
/// grown (`audit::checkpoint`), and once more at shutdown, so at most a minute of
/// entries is covered by the HMAC chain alone.
async fn checkpoint_loop(app: Arc<App>, shutdown: CancellationToken) {
    loop {
        let stop = tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = crate::clock::tick(CHECKPOINT_INTERVAL) => false,
        };
        let app2 = app.clone();
        match tokio::task::spawn_blocking(move || app2.audit.checkpoint(app2.clock.now_ns())).await
        {
            Ok(Err(e)) => error!(error = %format!("{e:#}"), "signing an audit checkpoint"),
            Err(e) => error!(error = %e, "audit checkpoint task"),
            Ok(Ok(_)) => {}
        }
        if stop {
            return;
        }
    }
}

/// Records the kernel's NTP state every [`crate::timesync::INTERVAL_NS`] for the
/// time-accuracy statement of exports.
async fn clock_loop(
    log: Arc<crate::timesync::Log>,
    clock: Arc<dyn Clock>,
    mut synced: Option<bool>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = crate::clock::tick(Duration::from_nanos(crate::timesync::INTERVAL_NS as u64)) => {}
        }
        let (log, now, before) = (log.clone(), clock.now_ns(), synced);
        if let Ok(s) = tokio::task::spawn_blocking(move || note_clock(&log, now, before)).await {
            synced = s.or(synced);
        }
    }
}

/// Reads and stores one clock-synchronisation sample; logs the state at start (`before`
/// is `None`) and when it changes, not at every sample. Returns the state read.
fn note_clock(log: &crate::timesync::Log, now_ns: i64, before: Option<bool>) -> Option<bool> {
    let Some(sample) = crate::timesync::read_kernel(now_ns) else {
        if before.is_none() {
            warn!("cannot read the kernel's NTP state: exports will say the clock's accuracy is unknown");
        }
        return None;
    };
    if let Err(e) = log.note(sample) {
        warn!(error = %format!("{e:#}"), "recording the clock's NTP state");
    }
    if before != Some(sample.synced) {
        if sample.synced {
            info!(
                max_error_us = sample.maxerror_us,
                "server clock is synchronised by NTP"
            );
        } else {
            warn!("server clock is NOT synchronised by NTP: exports will say so");
        }
    }
    Some(sample.synced)
}

/// Retention every [`RETENTION_INTERVAL`] or when the recorder asks: footage by
/// age, size and the volume floor (which keeps the unused export quota free, so
/// exports never cost footage), then expired exports. Every deletion is audited:
/// one entry per camera per pass, one per expired export.
async fn retention_loop(app: Arc<App>, kick: Arc<Notify>, shutdown: CancellationToken) {
    loop {
        // Read every pass: cameras are added and changed while the server runs.
        let policies: HashMap<String, retention::Policy> = app
            .cameras
            .all()
            .iter()
            .map(|c| {
                (
                    c.id.clone(),
                    retention::Policy {
                        retain_days: c.retain_days,
                        retain_bytes: c.retain_bytes,
                        retain_event_days: c.retain_event_days,
                    },
                )
            })
            .collect();
        let app2 = app.clone();
        let r = tokio::task::spawn_blocking(move || retention_pass(&app2, &policies)).await;
        match r {
            Ok(Err(e)) => {
                error!(error = %format!("{e:#}"), "retention");
                app.counters.set_retention_error(Some(format!("{e:#}")));
            }
            Err(e) => error!(error = %e, "retention task"),
            Ok(Ok(out)) => {
                app.counters.retention(out.deleted, out.bytes);
                app.counters.set_retention_error(None);
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = kick.notified() => {}
            _ = crate::clock::tick(RETENTION_INTERVAL) => {}
        }
    }
}

/// One retention pass with its audit entries. Blocking.
fn retention_pass(
    app: &App,
    policies: &HashMap<String, retention::Policy>,
) -> anyhow::Result<retention::Outcome> {
    use crate::audit::{Action, Event};
    use crate::export::quota;
    let storage = &app.config.storage;
    // Deletes left half done (intents): the archive did not answer when they ran.
    if let Err(e) = app.store.collect_garbage() {
        error!(error = %format!("{e:#}"), "finishing interrupted deletes");
    }
    // Footage of cameras removed from the config keeps the limits they had.
    let policies = &retention::with_removed(&app.store, policies)?;
    let exports = crate::export::exports_dir(&storage.dir);
    let limits = quota::Limits::resolve(storage);
    let event = |action, target: &str, detail| Event {
        actor: "retention".into(),
        role: None,
        action,
        target: target.to_owned(),
        client: "server".into(),
        detail,
    };
    // Holds in force now; an expired hold (`until` passed) no longer protects anything.
    let held = app
        .store
        .holds()
        .active(app.clock.now_ns())
        .context("reading legal holds (nothing is deleted without them)")?;
    let expired = quota::expire(&exports, limits.retain_days, app.clock.now_ns(), |id| {
        held.export(id)
    });
    for x in expired.iter().flatten() {
        info!(export = %x.id, bytes = x.bytes, "deleted expired export");
        let ev = event(
            Action::ExportExpire,
            &x.cameras.join(","),
            x.audit_detail(limits.retain_days),
        );
        if let Err(e) = app.audit.append(app.clock.now_ns(), ev) {
            error!(error = %format!("{e:#}"), export = %x.id, "auditing an expired export");
        }
    }
    // Measured once per pass: exports written during the pass move bytes from free to
    // used one for one, which leaves footage's headroom unchanged.
    let used =
        quota::used_bytes(&exports).with_context(|| format!("measuring {}", exports.display()))?;
    let floor = quota::footage_floor(&limits, used);
    // Room for a missing index reserve, so the next start on a full disk can open the index.
    let floor_with_reserve = floor.saturating_add(app.store.reserve_room(floor));
    let dir = storage.dir.clone();
    let mut out = retention::Outcome::default();
    let r = retention::run_into(
        &app.store,
        policies,
        &held,
        floor_with_reserve,
        app.clock.now_ns(),
        || retention::volume_free_bytes(&dir).unwrap_or(u64::MAX),
        &mut out,
    );
    // What was deleted is recorded even if the pass stopped part-way.
    for (camera, d) in &out.cameras {
        let ev = event(Action::RetentionDelete, camera, d.audit_detail());
        if let Err(e) = app.audit.append(app.clock.now_ns(), ev) {
            error!(error = %format!("{e:#}"), %camera, "auditing retention");
        }
    }
    app.counters
        .held_full
        .store(out.held_short, std::sync::atomic::Ordering::Relaxed);
    app.counters
        .still_short
        .store(out.still_short, std::sync::atomic::Ordering::Relaxed);
    if r.is_ok() && !out.still_short {
        app.store.ensure_reserve(floor);
    }
    r?;
    expired?;
    Ok(out)
}
