//! The ingest threads: each runs a single-threaded runtime for its share of
//! the cameras and, while they are only recorded, reads their sockets in
//! batches, once per `interval`, instead of as each packet arrives.
//!
//! Why: a thread woken for every frame of every camera spends more CPU on
//! being woken than on the frame (with one camera, a wake-up cost more than
//! everything else cleannvr did with it; docs/BENCHMARKS.md). While paced,
//! the thread sleeps to the end of the current `interval`, the sockets fill
//! meanwhile (TCP's flow control holds back what does not fit), then every
//! camera with data runs and the thread sleeps again: one wake-up per
//! interval for all its cameras. The price is delay: a frame reaches the
//! recorder up to `interval` later (its stamp, and the drift shown in the
//! camera's status, move by as much; the footage's wall times do not).
//!
//! A thread reads as packets arrive while any of its sessions is
//! *urgent*: connecting, up to its first frame (DESCRIBE, SETUP and PLAY
//! go at the network's pace, and the first frame, whose arrival fixes the
//! wall time of the session's footage, is stamped when it comes); watched
//! live (an operator steering a PTZ camera wants each frame at once; the
//! thread learns of a new viewer at its next read); or over UDP (a datagram
//! arriving at a full socket buffer is lost, and the kernel's default
//! buffer, which retina keeps, does not hold a key frame's burst). Pacing
//! is per thread: one urgent session un-paces its thread's cameras. A
//! thread with no session (cameras waiting to retry) sleeps until one
//! starts, so an idle server stays asleep.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::transport::Proto;

/// What one thread's pacer looks at: its camera sessions, and how many
/// of them are urgent.
#[derive(Default)]
struct Pace {
    sessions: AtomicUsize,
    urgent: AtomicUsize,
    /// Told when an urgent session stops being urgent or ends (sessions
    /// start urgent), so a waiting pacer looks again.
    changed: Notify,
}

impl Pace {
    fn paced(&self) -> bool {
        self.urgent.load(Ordering::Acquire) == 0 && self.sessions.load(Ordering::Acquire) > 0
    }
}

thread_local! {
    /// The pace of the ingest thread this is, if it is one.
    static PACE: std::cell::RefCell<Option<Arc<Pace>>> = const { std::cell::RefCell::new(None) };
}

/// A camera session, counted by its thread's pacer while it lives. Off an
/// ingest thread (a test's runtime) it counts nowhere.
#[must_use = "the session counts only while this lives"]
pub struct CameraSession {
    pace: Option<Arc<Pace>>,
    udp: bool,
    urgent: bool,
}

/// Counts a session of this thread over `proto`, from before it connects
/// until the returned guard is dropped. It is urgent until its first frame
/// ([`CameraSession::frame`]).
pub fn session(proto: Proto) -> CameraSession {
    let pace = PACE.with(|p| p.borrow().clone());
    if let Some(p) = &pace {
        p.sessions.fetch_add(1, Ordering::AcqRel);
        p.urgent.fetch_add(1, Ordering::AcqRel);
    }
    CameraSession {
        pace,
        udp: proto == Proto::Udp,
        urgent: true,
    }
}

impl CameraSession {
    /// A frame was read; `watched`: the camera has live viewers now. Its
    /// thread may be paced from here while it is neither watched nor UDP.
    pub fn frame(&mut self, watched: bool) {
        let urgent = self.udp || watched;
        if urgent == self.urgent {
            return;
        }
        self.urgent = urgent;
        if let Some(p) = &self.pace {
            if urgent {
                p.urgent.fetch_add(1, Ordering::AcqRel);
            } else {
                p.urgent.fetch_sub(1, Ordering::AcqRel);
                p.changed.notify_one();
            }
        }
    }
}

impl Drop for CameraSession {
    fn drop(&mut self) {
        if let Some(p) = &self.pace {
            p.sessions.fetch_sub(1, Ordering::AcqRel);
            if self.urgent {
                p.urgent.fetch_sub(1, Ordering::AcqRel);
                p.changed.notify_one();
            }
        }
    }
}

/// One ingest thread: its runtime's handle and how many tasks it runs.
struct Worker {
    handle: tokio::runtime::Handle,
    tasks: Arc<AtomicUsize>,
}

/// The ingest threads. Dropping this stops them; tasks still running on
/// them are dropped (their `JoinHandle`s report them cancelled).
pub struct IngestThreads {
    workers: Vec<Worker>,
    stop: CancellationToken,
}

impl IngestThreads {
    /// Starts `count` threads (at least one) that read every `interval`
    /// while paced; a zero `interval` reads as packets arrive.
    pub fn start(count: usize, interval: Duration) -> std::io::Result<IngestThreads> {
        // Dropped on an error: stops the threads already started.
        let mut threads = IngestThreads {
            workers: Vec::new(),
            stop: CancellationToken::new(),
        };
        for i in 0..count.max(1) {
            let (stop, thread_pace) = (threads.stop.clone(), Arc::new(Pace::default()));
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            std::thread::Builder::new()
                .name(format!("ingest-{i}"))
                .spawn(move || {
                    // Built, run and dropped here: a runtime must not be
                    // dropped inside another one's async context.
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = tx.send(Ok(rt.handle().clone()));
                    PACE.with(|p| *p.borrow_mut() = Some(thread_pace.clone()));
                    rt.block_on(async {
                        // A task, not this future: the runtime polls its
                        // `block_on` future before the tasks it has queued,
                        // and a task waits its turn behind them.
                        let pacer = tokio::spawn(run_pacer(thread_pace, interval));
                        stop.cancelled().await;
                        pacer.abort();
                    });
                })?;
            let handle = rx
                .recv()
                .map_err(|_| std::io::Error::other("an ingest thread ended as it started"))??;
            threads.workers.push(Worker {
                handle,
                tasks: Arc::new(AtomicUsize::new(0)),
            });
        }
        Ok(threads)
    }

    /// One thread per core: a core's worth of cameras per thread.
    pub fn per_core(interval: Duration) -> std::io::Result<IngestThreads> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        IngestThreads::start(cores, interval)
    }

    /// Runs `task` on the thread with the fewest tasks.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let w = self
            .workers
            .iter()
            .min_by_key(|w| w.tasks.load(Ordering::Acquire))
            .expect("at least one ingest thread");
        w.tasks.fetch_add(1, Ordering::AcqRel);
        // Made here, so a task dropped before it first runs is counted off too.
        let done = Done(w.tasks.clone());
        w.handle.spawn(async move {
            let _done = done;
            task.await
        })
    }
}

impl Drop for IngestThreads {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Counts a task off its thread when it ends or is dropped.
struct Done(Arc<AtomicUsize>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// While paced: blocks the thread until the end of the current `interval`
/// (on a grid shared with every ingest thread and the server's periodic
/// jobs, so they wake together), then yields: the runtime takes in what the
/// sockets received, and this task runs again only after every task queued
/// before it, so each pass serves every camera with data. A pass that
/// overran its interval (more cameras than a thread reads in one) is
/// followed by the next at once. Otherwise waits until the thread may be
/// paced again.
async fn run_pacer(pace: Arc<Pace>, interval: Duration) {
    if interval.is_zero() {
        return std::future::pending().await;
    }
    let mut end = crate::clock::next_tick_at(interval).into_std();
    loop {
        if pace.paced() {
            let now = std::time::Instant::now();
            if now < end {
                std::thread::sleep(end - now);
            }
            end = crate::clock::next_tick_at(interval).into_std();
            tokio::task::yield_now().await;
        } else {
            pace.changed.notified().await;
            end = crate::clock::next_tick_at(interval).into_std();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::mpsc;

    const INTERVAL: Duration = Duration::from_millis(100);

    /// Reads a loopback TCP stream on an ingest thread while the test writes
    /// a byte every 10 ms for about a second. Returns how many reads
    /// returned data (one per wake-up of the thread) and how long reading took.
    async fn reads_in_a_second(threads: &IngestThreads) -> (usize, Duration) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = threads.spawn(async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut buf = vec![0u8; 1 << 16];
            let (mut reads, mut total, mut first) = (0, 0, None);
            while total < 100 {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "the writer closed early");
                first.get_or_insert_with(Instant::now);
                reads += 1;
                total += n;
            }
            (reads, first.map_or(Duration::ZERO, |f| f.elapsed()))
        });
        let (mut w, _) = listener.accept().await.unwrap();
        w.set_nodelay(true).unwrap();
        let start = Instant::now();
        for i in 0..100u32 {
            tokio::time::sleep_until((start + Duration::from_millis(10) * i).into()).await;
            w.write_all(&[1]).await.unwrap();
        }
        reader.await.unwrap()
    }

    /// At most one read per interval, give or take the edges.
    fn assert_paced((reads, took): (usize, Duration), when: &str) {
        let intervals = (took.as_millis() / INTERVAL.as_millis()) as usize;
        assert!(
            (3..=intervals + 2).contains(&reads),
            "{reads} reads of 100 bytes sent 10 ms apart, over {took:?}, {when}: \
             expected one per 100 ms"
        );
    }

    /// Well over one read per interval (about one per byte on a quiet machine).
    fn assert_unpaced((reads, took): (usize, Duration), when: &str) {
        let intervals = (took.as_millis() / INTERVAL.as_millis()) as usize;
        assert!(
            reads >= 2 * (intervals + 2) + 10,
            "{reads} reads of 100 bytes sent 10 ms apart, over {took:?}, {when}: \
             expected about one each"
        );
    }

    /// A camera session on the ingest thread, driven by the test: `Some(w)`
    /// is a frame read with the camera watched live or not, `None` ends it.
    struct Driven(mpsc::UnboundedSender<Option<bool>>, JoinHandle<()>);

    impl Driven {
        /// A session that has connected but not yet had a frame.
        async fn connecting(threads: &IngestThreads, proto: Proto, urgent: usize) -> Driven {
            let (tx, mut rx) = mpsc::unbounded_channel();
            let task = threads.spawn(async move {
                let mut s = session(proto);
                while let Some(Some(watched)) = rx.recv().await {
                    s.frame(watched);
                }
            });
            let s = Driven(tx, task);
            until(threads, |_, u| u == urgent).await;
            s
        }

        /// Tells it a frame arrived, then waits for the thread to count
        /// `urgent` urgent sessions.
        async fn frame(&self, threads: &IngestThreads, watched: bool, urgent: usize) {
            self.0.send(Some(watched)).unwrap();
            until(threads, |_, u| u == urgent).await;
        }

        async fn end(self, threads: &IngestThreads, sessions: usize) {
            self.0.send(None).unwrap();
            self.1.await.unwrap();
            until(threads, |s, _| s == sessions).await;
        }
    }

    /// Waits until the (only) thread's counts (sessions, urgent ones) pass `ok`.
    async fn until(threads: &IngestThreads, ok: impl Fn(usize, usize) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (s, u) = threads
                .spawn(async {
                    PACE.with(|p| {
                        let p = p.borrow();
                        let p = p.as_ref().expect("on an ingest thread");
                        (
                            p.sessions.load(Ordering::Acquire),
                            p.urgent.load(Ordering::Acquire),
                        )
                    })
                })
                .await
                .unwrap();
            if ok(s, u) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the thread counts {s} sessions, {u} urgent"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_thread_is_paced_while_its_sessions_are_past_their_first_frame_unwatched_over_tcp() {
        let threads = IngestThreads::start(1, INTERVAL).unwrap();
        let t = &threads;
        assert_unpaced(reads_in_a_second(t).await, "no session");
        let tcp = Driven::connecting(t, Proto::Tcp, 1).await;
        assert_unpaced(
            reads_in_a_second(t).await,
            "a TCP session before its first frame",
        );
        tcp.frame(t, false, 0).await;
        assert_paced(reads_in_a_second(t).await, "a TCP session streaming");
        let udp = Driven::connecting(t, Proto::Udp, 1).await;
        udp.frame(t, false, 1).await;
        assert_unpaced(reads_in_a_second(t).await, "and a UDP one");
        udp.end(t, 1).await;
        assert_paced(reads_in_a_second(t).await, "the UDP session ended");
        tcp.frame(t, true, 1).await;
        assert_unpaced(reads_in_a_second(t).await, "the TCP session watched live");
        tcp.frame(t, false, 0).await;
        assert_paced(reads_in_a_second(t).await, "its viewers gone");
        let watched = Driven::connecting(t, Proto::Tcp, 1).await;
        watched.frame(t, true, 1).await;
        watched.end(t, 1).await;
        assert_paced(reads_in_a_second(t).await, "a watched session ended");
        tcp.end(t, 0).await;
        assert_unpaced(reads_in_a_second(t).await, "the TCP session ended");
    }

    /// More cameras with data than one pass of the runtime's scheduler runs
    /// (it looks at the sockets again every 61 tasks): each is still read
    /// once per interval, not once per round of the pacer among them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_camera_of_a_busy_thread_is_read_each_interval() {
        const SOCKETS: usize = 200;
        const BYTES: usize = 20;
        let threads = IngestThreads::start(1, INTERVAL).unwrap();
        let streaming = Driven::connecting(&threads, Proto::Tcp, 1).await;
        streaming.frame(&threads, false, 0).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut readers = Vec::new();
        for _ in 0..SOCKETS {
            readers.push(threads.spawn(async move {
                let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                let mut buf = [0u8; 64];
                let (mut reads, mut total) = (0, 0);
                while total < BYTES {
                    total += s.read(&mut buf).await.unwrap();
                    reads += 1;
                }
                reads
            }));
        }
        let mut writers = Vec::new();
        for _ in 0..SOCKETS {
            let (w, _) = listener.accept().await.unwrap();
            w.set_nodelay(true).unwrap();
            writers.push(w);
        }
        // A byte to every socket every 50 ms, for a second.
        let start = Instant::now();
        for i in 0..BYTES as u32 {
            tokio::time::sleep_until((start + Duration::from_millis(50) * i).into()).await;
            for w in &mut writers {
                w.write_all(&[1]).await.unwrap();
            }
        }
        let mut reads = Vec::new();
        for r in readers {
            reads.push(r.await.unwrap());
        }
        let took = start.elapsed();
        reads.sort_unstable();
        let median = reads[SOCKETS / 2];
        let intervals = (took.as_millis() / INTERVAL.as_millis()) as usize;
        assert!(
            median * 10 >= intervals * 6,
            "each of {SOCKETS} sockets read a median {median} times in {took:?} \
             (reads {reads:?})"
        );
    }

    #[tokio::test]
    async fn tasks_go_to_the_least_busy_thread_and_stop_with_the_threads() {
        let threads = IngestThreads::start(2, INTERVAL).unwrap();
        let name = || std::thread::current().name().map(str::to_owned);
        let held = CancellationToken::new();
        let h = held.clone();
        let first = threads.spawn(async move {
            h.cancelled().await;
            name()
        });
        // The first thread is busy with one task, so the next goes to the other.
        let second = threads.spawn(async move { name() }).await.unwrap();
        held.cancel();
        let first = first.await.unwrap();
        assert_ne!(first, second);
        assert!(first.unwrap().starts_with("ingest-"));
        assert_eq!(threads.workers[0].tasks.load(Ordering::Acquire), 0);
        // Stopping the threads drops what still runs on them.
        let forever = threads.spawn(std::future::pending::<()>());
        drop(threads);
        let ended = tokio::time::timeout(Duration::from_secs(5), forever).await;
        assert!(ended
            .expect("the task ended with its thread")
            .is_err_and(|e| e.is_cancelled()));
    }

    #[test]
    fn off_an_ingest_thread_a_session_counts_nowhere() {
        let s = session(Proto::Tcp);
        assert!(s.pace.is_none());
    }
}
