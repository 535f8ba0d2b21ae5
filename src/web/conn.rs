//! Connections: the web server's own budget of sockets and time, so that
//! no number of clients (an attacker on the camera LAN included) can take
//! the file descriptors the recorders and camera sessions need.
//!
//! Every accepted socket holds a [`Slot`] for its whole life (TLS
//! handshake, HTTP, and any WebSocket it becomes): at most
//! [`Limits::connections`] in all and [`Limits::per_addr`] from one client
//! address; beyond that a socket is closed as soon as it is accepted.
//! Handshakes take a second, smaller budget: a client address may hold
//! only [`Limits::handshakes_per_addr`] of them, and when all are busy a
//! newcomer waits briefly ([`Limits::handshake_queue`]) for one instead of
//! being dropped. Headers must arrive within [`Limits::header_timeout`],
//! which also closes idle keep-alive connections; request bodies must
//! arrive within [`BODY_TIMEOUT`]; a socket whose writes make no progress
//! for [`Limits::write_stall`] (a client that stopped reading) is closed.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::ClientAddr;

/// A request body (the API takes small JSON documents) must arrive in this time.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// On shutdown, open requests get this long to finish.
const DRAIN: Duration = Duration::from_secs(5);

/// The web server's budget.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Open connections at once, all addresses.
    pub connections: usize,
    /// Open connections from one client address (an IPv6 /64 counts as one).
    pub per_addr: usize,
    /// TLS handshakes in progress at once.
    pub handshakes: usize,
    /// TLS handshakes in progress from one client address.
    pub handshakes_per_addr: usize,
    /// A handshake not finished in this time is dropped.
    pub handshake_timeout: Duration,
    /// How long a connection waits for a free handshake slot.
    pub handshake_queue: Duration,
    /// Request headers (and the next request on a kept-alive connection)
    /// must arrive within this time.
    pub header_timeout: Duration,
    /// A write that makes no progress for this long closes the socket.
    pub write_stall: Duration,
}

/// Descriptors kept for everything but the web server (index, logs,
/// sockets of the retention and ONVIF tasks) ...
const RESERVE_BASE: u64 = 128;
/// ... and per camera (RTSP sockets for main and sub streams, the open
/// segment, its directory while syncing, transcoder pipes).
const RESERVE_PER_CAMERA: u64 = 16;

impl Limits {
    /// Limits for a process allowed `nofile` descriptors with `cameras`
    /// cameras: the recorders' reserve comes off the top, and each web
    /// connection is counted as two descriptors (its socket and a segment
    /// file it may be streaming).
    pub fn for_descriptors(nofile: u64, cameras: usize) -> Limits {
        let reserve = RESERVE_BASE + RESERVE_PER_CAMERA * cameras as u64;
        let web = nofile.saturating_sub(reserve) / 2;
        let connections = web.clamp(32, 16_384) as usize;
        Limits {
            connections,
            // A control-room PC with a 4x4 grid on each of four screens
            // holds 64 WebSockets; an office behind NAT shares one address.
            per_addr: (connections / 4).clamp(16, 256),
            handshakes: (connections / 2).clamp(16, 256),
            // A browser opens at most 6 connections to a host at once.
            handshakes_per_addr: (connections / 32).clamp(8, 32),
            handshake_timeout: Duration::from_secs(5),
            handshake_queue: Duration::from_secs(2),
            header_timeout: Duration::from_secs(10),
            write_stall: Duration::from_secs(30),
        }
    }
}

/// The web server's connection budget, which follows the number of cameras: each
/// camera added while the server runs takes its reserve of descriptors out of the web
/// server's share ([`ConnBudget::set_cameras`]), so cameras added through the API are
/// never starved by web clients. Cheap to clone; all clones share the budget.
#[derive(Clone)]
pub struct ConnBudget {
    nofile: u64,
    limits: Arc<Mutex<Limits>>,
    conns: Arc<Budget>,
    shakes: Arc<Budget>,
}

impl ConnBudget {
    /// The budget for a process allowed `nofile` descriptors with `cameras` cameras.
    pub fn new(nofile: u64, cameras: usize) -> ConnBudget {
        let l = Limits::for_descriptors(nofile, cameras);
        ConnBudget {
            nofile,
            limits: Arc::new(Mutex::new(l)),
            conns: Budget::new(l.connections, l.per_addr),
            shakes: Budget::new(l.handshakes, l.handshakes_per_addr),
        }
    }

    /// The limits now.
    pub fn limits(&self) -> Limits {
        *self.limits.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The budget with writes allowed to stall for `stall` (`[server]
    /// write_stall_seconds`) instead of the default.
    pub fn with_write_stall(self, stall: Duration) -> ConnBudget {
        self.limits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_stall = stall;
        self
    }

    /// Recomputes the budget for `cameras` cameras and returns the new limits.
    pub fn set_cameras(&self, cameras: usize) -> Limits {
        let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        let l = Limits {
            write_stall: limits.write_stall,
            ..Limits::for_descriptors(self.nofile, cameras)
        };
        *limits = l;
        drop(limits);
        self.conns.resize(l.connections, l.per_addr);
        self.shakes.resize(l.handshakes, l.handshakes_per_addr);
        l
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the new
/// soft limit (the old one if raising failed).
pub fn raise_nofile_limit() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to our own struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 1024;
        }
        if r.rlim_cur < r.rlim_max {
            let want = libc::rlimit {
                rlim_cur: r.rlim_max,
                rlim_max: r.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                r.rlim_cur = r.rlim_max;
            }
        }
    }
    r.rlim_cur
}

/// The key a client is counted under: its IPv4 address, or its IPv6 /64
/// (one host usually owns a whole /64).
fn addr_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Why a slot was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Full {
    /// This address holds its share.
    Addr,
    /// Every slot is taken.
    All,
}

/// Counted slots, in total and per client address.
struct Budget {
    /// (total, per address): changed by [`Budget::resize`] while serving.
    caps: Mutex<(usize, usize)>,
    counts: Mutex<(usize, HashMap<IpAddr, usize>)>,
    released: Notify,
}

impl Budget {
    fn new(total: usize, per_addr: usize) -> Arc<Budget> {
        Arc::new(Budget {
            caps: Mutex::new((total, per_addr)),
            counts: Mutex::new((0, HashMap::new())),
            released: Notify::new(),
        })
    }

    /// New caps; connections already open keep their slots (a smaller budget
    /// refuses newcomers until enough have closed).
    fn resize(&self, total: usize, per_addr: usize) {
        *self.caps.lock().unwrap_or_else(|e| e.into_inner()) = (total, per_addr);
        self.released.notify_waiters();
    }

    fn try_take(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Full> {
        let key = addr_key(ip);
        let (total, per_addr) = *self.caps.lock().unwrap_or_else(|e| e.into_inner());
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mine = c.1.get(&key).copied().unwrap_or(0);
        if mine >= per_addr {
            return Err(Full::Addr);
        }
        if c.0 >= total {
            return Err(Full::All);
        }
        c.0 += 1;
        c.1.insert(key, mine + 1);
        Ok(Slot {
            budget: self.clone(),
            key,
        })
    }

    /// Takes a slot, waiting up to `patience` while all are busy; refuses
    /// at once when `ip` already holds its share.
    async fn take(self: &Arc<Self>, ip: IpAddr, patience: Duration) -> Option<Slot> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let released = self.released.notified();
            match self.try_take(ip) {
                Ok(s) => return Some(s),
                Err(Full::Addr) => return None,
                Err(Full::All) => {
                    if tokio::time::timeout_at(deadline, released).await.is_err() {
                        return None;
                    }
                }
            }
        }
    }

    fn in_use(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).0
    }
}

/// One taken slot, given back on drop.
pub struct Slot {
    budget: Arc<Budget>,
    key: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.budget.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.0 -= 1;
        if let Some(n) = c.1.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                c.1.remove(&self.key);
            }
        }
        drop(c);
        self.budget.released.notify_waiters();
    }
}

/// A socket that holds its [`Slot`] until it is closed, and fails writes
/// that make no progress for `stall`.
struct Guarded<S> {
    io: S,
    _slot: Slot,
    stall: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> Guarded<S> {
    fn new(io: S, slot: Slot, stall: Duration) -> Self {
        Guarded {
            io,
            _slot: slot,
            stall,
            stalled: None,
        }
    }

    fn on_write<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if r.is_ready() {
            self.stalled = None;
            return r;
        }
        let stall = self.stall;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.on_write(cx, r)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.on_write(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_shutdown(cx);
        self.on_write(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.on_write(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Counts refused connections and logs them at most once a minute, so a
/// flood cannot fill the log.
struct ShedLog {
    last_ns: AtomicI64,
    started: Instant,
    counters: Arc<super::Counters>,
}

impl ShedLog {
    fn note(&self, addr: SocketAddr, why: &str) {
        self.counters
            .web_refused_connections
            .fetch_add(1, Ordering::Relaxed);
        let now = self.started.elapsed().as_nanos() as i64;
        let last = self.last_ns.load(Ordering::Relaxed);
        if (last == 0 || now - last >= 60_000_000_000)
            && self
                .last_ns
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(client = %addr.ip(), "refusing web connections: {why} (logged once a minute)");
        }
    }
}

/// Serves `router` on `listener` (TLS when `tls` is given) within `limits`
/// until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    budget: ConnBudget,
    counters: Arc<super::Counters>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    // The timeouts do not depend on the camera count; the caps are read at each accept.
    let limits = budget.limits();
    let (conns, shakes) = (budget.conns.clone(), budget.shakes.clone());
    let acceptor = tls.map(TlsAcceptor::from);
    let shed = Arc::new(ShedLog {
        last_ns: AtomicI64::new(0),
        started: Instant::now(),
        counters,
    });
    let mut tasks = JoinSet::new();
    loop {
        while tasks.try_join_next().is_some() {}
        let (sock, addr) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE or ENFILE (the budget should prevent them, but
                    // other processes share the system table): wait for
                    // descriptors to free up instead of spinning.
                    tracing::warn!(error = %e, "accepting a web connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let slot = match conns.try_take(addr.ip()) {
            Ok(s) => s,
            Err(full) => {
                drop(sock);
                shed.note(
                    addr,
                    match full {
                        Full::Addr => "too many connections from this address",
                        Full::All => "connection limit reached",
                    },
                );
                continue;
            }
        };
        let sock = Guarded::new(sock, slot, limits.write_stall);
        let router = router.clone();
        let shutdown = shutdown.clone();
        match &acceptor {
            None => {
                tasks.spawn(http(sock, addr, router, limits, shutdown));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let shakes = shakes.clone();
                let shed = shed.clone();
                tasks.spawn(async move {
                    let Some(permit) = shakes.take(addr.ip(), limits.handshake_queue).await else {
                        shed.note(addr, "too many TLS handshakes in progress");
                        return;
                    };
                    let tls =
                        match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(sock))
                            .await
                        {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%addr, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%addr, "TLS handshake timed out");
                                return;
                            }
                        };
                    drop(permit);
                    http(tls, addr, router, limits, shutdown).await
                });
            }
        }
    }
    // Stop accepting, let requests in flight finish, then drop the rest.
    drop(listener);
    let _ = tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} }).await;
    tracing::debug!(open = conns.in_use(), "web server stopped");
    Ok(())
}

/// Serves HTTP/1.1 on one connection. WebSocket upgrades leave this task
/// and take the socket (and its slot) with them.
async fn http<S>(
    io: S,
    addr: SocketAddr,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(ClientAddr(addr)));
        router.clone().oneshot(req.map(Body::new))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(64 * 1024);
    let conn = builder
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    tokio::pin!(conn);
    let r = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = r {
        tracing::debug!(%addr, error = %e, "web connection ended");
    }
}

/// Middleware: a request body must arrive within [`BODY_TIMEOUT`] (a
/// client trickling a body byte by byte would otherwise hold its
/// connection for as long as it likes).
pub async fn body_deadline(req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let body = Body::new(Deadline {
        inner: body,
        sleep: Box::pin(tokio::time::sleep(BODY_TIMEOUT)),
    });
    next.run(Request::from_parts(parts, body)).await
}

/// A body that fails once its deadline passes.
struct Deadline {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(f) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(f);
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(io::Error::new(
                io::ErrorKind::TimedOut,
                "request body not received in time",
            ))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_counts_per_address_and_in_total() {
        let b = Budget::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let c: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = b.try_take(a).unwrap();
        let _a2 = b.try_take(a).unwrap();
        assert_eq!(b.try_take(a).err(), Some(Full::Addr));
        let _c1 = b.try_take(c).unwrap();
        assert_eq!(b.try_take(c).err(), Some(Full::All));
        drop(a1);
        assert!(b.try_take(c).is_ok());
        // One /64 is one client.
        let x: IpAddr = "2001:db8::1".parse().unwrap();
        let y: IpAddr = "2001:db8::2".parse().unwrap();
        assert_eq!(addr_key(x), addr_key(y));
        assert_eq!(
            addr_key("::ffff:10.0.0.1".parse().unwrap()),
            IpAddr::V4("10.0.0.1".parse().unwrap())
        );
    }

    /// A configured stall time survives the budget's recomputation for a new camera count.
    #[test]
    fn the_configured_write_stall_is_kept_when_cameras_change() {
        let budget = ConnBudget::new(1024, 1).with_write_stall(Duration::from_secs(3));
        assert_eq!(budget.limits().write_stall, Duration::from_secs(3));
        let l = budget.set_cameras(8);
        assert_eq!(l.write_stall, Duration::from_secs(3));
        assert_eq!(budget.limits().write_stall, Duration::from_secs(3));
    }

    /// A client that stops reading fails the write after the stall time (and frees its
    /// connection slot); one that keeps reading is never cut, however long the transfer.
    /// The stall here is shortened; the default is 30 s.
    #[tokio::test]
    async fn a_client_that_stops_reading_is_cut_after_the_stall_time() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        assert_eq!(
            Limits::for_descriptors(1024, 4).write_stall,
            Duration::from_secs(30)
        );
        let budget = Budget::new(1, 1);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let stall = Duration::from_secs(1);

        let (server, _client_never_reads) = tokio::io::duplex(4096);
        let mut g = Guarded::new(server, budget.try_take(ip).unwrap(), stall);
        let started = std::time::Instant::now();
        let written = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                if let Err(e) = g.write_all(&[0u8; 1024]).await {
                    return e;
                }
            }
        })
        .await
        .expect("a write to a client that stopped reading never failed");
        assert_eq!(written.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= stall, "{:?}", started.elapsed());
        assert!(budget.try_take(ip).is_err(), "slot held while open");
        drop(g);
        let slot = budget.try_take(ip).expect("closing frees the slot");

        let (server, mut client) = tokio::io::duplex(4096);
        let mut g = Guarded::new(server, slot, Duration::from_secs(10));
        let reader = tokio::spawn(async move {
            let mut sink = Vec::new();
            client.read_to_end(&mut sink).await.map(|_| sink.len())
        });
        for _ in 0..1024 {
            g.write_all(&[1u8; 1024]).await.unwrap();
        }
        g.shutdown().await.unwrap();
        drop(g);
        assert_eq!(reader.await.unwrap().unwrap(), 1024 * 1024);
    }

    #[tokio::test]
    async fn waiting_for_a_slot_is_brief() {
        let b = Budget::new(1, 1);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let c: IpAddr = "10.0.0.2".parse().unwrap();
        let held = b.try_take(a).unwrap();
        assert!(
            b.take(a, Duration::from_secs(5)).await.is_none(),
            "own share: at once"
        );
        let t = Instant::now();
        assert!(b.take(c, Duration::from_millis(100)).await.is_none());
        assert!(t.elapsed() < Duration::from_secs(2));
        let b2 = b.clone();
        let waiter =
            tokio::spawn(async move { b2.take(c, Duration::from_secs(5)).await.is_some() });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(held);
        assert!(waiter.await.unwrap(), "a released slot goes to the waiter");
    }

    #[test]
    fn the_budget_shrinks_when_cameras_are_added() {
        // 1024 descriptors and 4 cameras: (1024 - 128 - 4 * 16) / 2 = 416 connections.
        let budget = ConnBudget::new(1024, 4);
        assert_eq!(budget.limits().connections, 416);
        // 36 cameras added at run time: (1024 - 128 - 40 * 16) / 2 = 128.
        let l = budget.set_cameras(40);
        assert_eq!((l.connections, budget.limits().connections), (128, 128));
        let mut held = Vec::new();
        for i in 0..l.connections {
            let ip = IpAddr::from([10, 0, (i / 250) as u8, (i % 250) as u8 + 1]);
            held.push(budget.conns.try_take(ip).expect("within the budget"));
        }
        assert!(
            matches!(
                budget.conns.try_take("10.9.9.9".parse().unwrap()),
                Err(Full::All)
            ),
            "the web server may not take the new cameras' descriptors"
        );
        assert!(budget.limits().per_addr < 128);
        // Removed again: the room comes back.
        budget.set_cameras(4);
        assert!(budget.conns.try_take("10.9.9.9".parse().unwrap()).is_ok());
    }

    #[test]
    fn limits_leave_the_recorders_a_reserve() {
        let l = Limits::for_descriptors(1024, 4);
        assert!(l.connections * 2 + 128 + 64 <= 1024, "{l:?}");
        assert!(l.per_addr < l.connections && l.handshakes_per_addr < l.handshakes);
        let big = Limits::for_descriptors(1 << 20, 4);
        assert_eq!(big.connections, 16_384);
    }
}
