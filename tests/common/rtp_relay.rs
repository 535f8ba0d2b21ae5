//! Our own RTSP proxy with a UDP relay for the media, for what no peer
//! does on demand: reorder, duplicate and re-label (new SSRC) the RTP
//! packets a real camera (GStreamer's RTSP server) sends. The kernel here
//! has no `netem`, and nft can drop packets but not reorder or copy them.
//!
//! The proxy passes the RTSP control connection through, rewriting only
//! the `Transport:` headers of SETUP (RTP over UDP only): the camera is told
//! to send to the relay's ports, the client that the relay's ports are the
//! camera's. Each set-up stream gets a pair of relay sockets (RTP, RTCP);
//! what comes from the camera goes to the client, mangled as asked, and the
//! client's packets (RTCP receiver reports) go to the camera unchanged.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the relay does to the camera's RTP packets (RTCP passes unchanged).
#[derive(Clone, Copy, Debug, Default)]
pub struct Mangle {
    /// Every this many packets of a stream, one is held back and sent after
    /// the next (0: never).
    pub reorder_every: u64,
    /// Every this many packets of a stream, one is sent twice (0: never).
    pub duplicate_every: u64,
    /// Once, for the first stream that reaches this many packets, every
    /// later packet of that stream carries a new SSRC: the camera restarted
    /// its RTP stream within the session.
    pub new_ssrc_after: Option<u64>,
}

/// What the relay did, for the test to check that it really mangled.
#[derive(Debug, Default)]
pub struct RelayStats {
    pub forwarded: AtomicU64,
    pub reordered: AtomicU64,
    pub duplicated: AtomicU64,
    /// Packets sent with the new SSRC.
    pub new_ssrc: AtomicU64,
}

/// The proxy; `port` is where clients connect (`rtsp://127.0.0.1:PORT/...`).
/// Its threads live as long as the test process.
pub struct RtpRelay {
    pub port: u16,
    pub stats: Arc<RelayStats>,
}

/// A SETUP on its way: the client's ports and the relay pair it got.
struct Pending {
    client: (u16, u16),
    rtp: UdpSocket,
    rtcp: UdpSocket,
}

impl RtpRelay {
    /// Proxies the RTSP server on 127.0.0.1:`upstream`.
    pub fn start(upstream: u16, mangle: Mangle) -> RtpRelay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stats = Arc::new(RelayStats::default());
        let once = Arc::new(AtomicBool::new(false));
        let st = stats.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let conn = Conn {
                    pending: Arc::new(Mutex::new(VecDeque::new())),
                    closed: Arc::new(AtomicBool::new(false)),
                    mangle,
                    stats: st.clone(),
                    once: once.clone(),
                };
                conn.run(client, server);
            }
        });
        RtpRelay { port, stats }
    }

    /// `rtsp://127.0.0.1:PORT/<mount>` through the relay.
    pub fn url(&self, mount: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{mount}", self.port)
    }
}

/// One proxied RTSP connection.
#[derive(Clone)]
struct Conn {
    pending: Arc<Mutex<VecDeque<Pending>>>,
    /// Set when the control connection ends: its relays stop.
    closed: Arc<AtomicBool>,
    mangle: Mangle,
    stats: Arc<RelayStats>,
    /// Whether the one SSRC change has been claimed by a stream.
    once: Arc<AtomicBool>,
}

/// A pair of adjacent free UDP ports on loopback.
fn udp_pair() -> (UdpSocket, UdpSocket) {
    loop {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = a.local_addr().unwrap().port();
        if p == u16::MAX {
            continue;
        }
        if let Ok(b) = UdpSocket::bind(("127.0.0.1", p + 1)) {
            return (a, b);
        }
    }
}

/// `(a, b)` from `key=a-b` in a Transport header's parameters.
fn ports(transport: &str, key: &str) -> Option<(u16, u16)> {
    let v = transport
        .split(';')
        .find_map(|p| p.trim().strip_prefix(key)?.strip_prefix('='))?;
    let (a, b) = v.trim().split_once('-')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// The Transport header line with `key`'s ports replaced.
fn with_ports(line: &str, key: &str, (a, b): (u16, u16)) -> String {
    let (head, params) = line.trim_end().split_once(':').unwrap();
    let params: Vec<String> = params
        .split(';')
        .map(|p| {
            if p.trim().starts_with(&format!("{key}=")) {
                format!("{key}={a}-{b}")
            } else {
                p.to_owned()
            }
        })
        .collect();
    format!("{head}:{}\r\n", params.join(";"))
}

impl Conn {
    fn run(self, client: TcpStream, server: TcpStream) {
        let (c_in, s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        let up = self.clone();
        std::thread::spawn(move || up.requests(c_in, s_out));
        std::thread::spawn(move || self.responses(server, client));
    }

    /// Client to camera: SETUP's `client_port` becomes a relay pair's.
    fn requests(self, from: TcpStream, mut to: TcpStream) {
        let mut from = BufReader::new(from);
        let mut line = Vec::new();
        while from.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            let text = String::from_utf8_lossy(&line).into_owned();
            if text.to_ascii_lowercase().starts_with("transport:") {
                if let Some(client) = ports(&text, "client_port") {
                    let (rtp, rtcp) = udp_pair();
                    let p = rtp.local_addr().unwrap().port();
                    line = with_ports(&text, "client_port", (p, p + 1)).into_bytes();
                    self.pending
                        .lock()
                        .unwrap()
                        .push_back(Pending { client, rtp, rtcp });
                }
            }
            if to.write_all(&line).is_err() {
                break;
            }
            line.clear();
        }
        self.closed.store(true, Relaxed);
        let _ = to.shutdown(std::net::Shutdown::Both);
    }

    /// Camera to client: SETUP's answer names the relay pair as the
    /// camera's ports, and the relay starts.
    fn responses(self, from: TcpStream, mut to: TcpStream) {
        let mut from = BufReader::new(from);
        let mut line = Vec::new();
        while from.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            let text = String::from_utf8_lossy(&line).into_owned();
            if text.to_ascii_lowercase().starts_with("transport:") {
                let server = ports(&text, "server_port");
                let pending = self.pending.lock().unwrap().pop_front();
                if let (Some(server), Some(p)) = (server, pending) {
                    let relay = p.rtp.local_addr().unwrap().port();
                    let rewritten = with_ports(&text, "client_port", p.client);
                    line = with_ports(&rewritten, "server_port", (relay, relay + 1)).into_bytes();
                    self.relay(p.rtp, p.client.0, server.0, true);
                    self.relay(p.rtcp, p.client.1, server.1, false);
                }
            }
            if to.write_all(&line).is_err() {
                break;
            }
            line.clear();
        }
        self.closed.store(true, Relaxed);
        let _ = to.shutdown(std::net::Shutdown::Both);
    }

    /// Forwards between the camera's `server` port and the client's
    /// `client` port through `sock`, mangling the camera's packets if `rtp`.
    fn relay(&self, sock: UdpSocket, client: u16, server: u16, rtp: bool) {
        let conn = self.clone();
        std::thread::spawn(move || {
            sock.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let to_client: SocketAddr = ([127, 0, 0, 1], client).into();
            let to_server: SocketAddr = ([127, 0, 0, 1], server).into();
            let mut buf = vec![0u8; 65_536];
            let mut n = 0u64;
            let mut held: Option<Vec<u8>> = None;
            let mut relabel = false;
            while !conn.closed.load(Relaxed) {
                let Ok((len, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let mut pkt = buf[..len].to_vec();
                if from.port() != server {
                    let _ = sock.send_to(&pkt, to_server);
                    continue;
                }
                if !rtp || len < 12 {
                    let _ = sock.send_to(&pkt, to_client);
                    continue;
                }
                n += 1;
                let m = conn.mangle;
                if m.new_ssrc_after == Some(n) && !conn.once.swap(true, Relaxed) {
                    relabel = true;
                }
                if relabel {
                    for b in &mut pkt[8..12] {
                        *b ^= 0x5a;
                    }
                    conn.stats.new_ssrc.fetch_add(1, Relaxed);
                }
                if m.reorder_every > 0 && n.is_multiple_of(m.reorder_every) && held.is_none() {
                    held = Some(pkt);
                    conn.stats.reordered.fetch_add(1, Relaxed);
                    continue;
                }
                let copies = if m.duplicate_every > 0 && n.is_multiple_of(m.duplicate_every) {
                    conn.stats.duplicated.fetch_add(1, Relaxed);
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    let _ = sock.send_to(&pkt, to_client);
                }
                if let Some(late) = held.take() {
                    let _ = sock.send_to(&late, to_client);
                }
                conn.stats.forwarded.fetch_add(1, Relaxed);
            }
        });
    }
}
