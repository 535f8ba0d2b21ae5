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
//! recorder up to `interval` later, and the wall time a session's first
//! frame is stamped with is up to that late.
//!
//! A thread reads as packets arrive while any of its sessions is
//! *urgent*: watched live (an operator steering a PTZ camera wants each
//! frame at once; the thread learns of a new viewer at its next read) or
//! over UDP (a datagram arriving at a full socket buffer is lost, and the
//! kernel's default buffer, which retina keeps, does not hold a key frame's
//! burst). It also does while no session streams (connecting, waiting to
//! retry), so an idle server stays asleep and DESCRIBE, SETUP and PLAY go
//! at the network's pace.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::transport::Proto;

/// What one thread's pacer looks at: its streaming sessions, and how many
/// of them are urgent.
#[derive(Default)]
struct Pace {
    streaming: AtomicUsize,
    urgent: AtomicUsize,
    /// Told when the thread may have become paceable (a session started, or
    /// one stopped being urgent), so a waiting pacer looks again.
    changed: Notify,
}

impl Pace {
    fn paced(&self) -> bool {
        self.urgent.load(Ordering::Acquire) == 0 && self.streaming.load(Ordering::Acquire) > 0
    }
}

thread_local! {
    /// The pace of the ingest thread this is, if it is one.
    static PACE: std::cell::RefCell<Option<Arc<Pace>>> = const { std::cell::RefCell::new(None) };
}

/// A session that streams, counted by its thread's pacer while it lives.
/// Off an ingest thread (a test's runtime) it counts nowhere.
#[must_use = "the session counts as streaming only while this lives"]
pub struct Streaming {
    pace: Option<Arc<Pace>>,
    udp: bool,
    urgent: bool,
}

/// Marks a session of this thread as streaming over `proto` until the
/// returned guard is dropped.
pub fn streaming(proto: Proto) -> Streaming {
    let pace = PACE.with(|p| p.borrow().clone());
    let udp = proto == Proto::Udp;
    if let Some(p) = &pace {
        p.streaming.fetch_add(1, Ordering::AcqRel);
        if udp {
            p.urgent.fetch_add(1, Ordering::AcqRel);
        }
        p.changed.notify_one();
    }
    Streaming {
        pace,
        udp,
        urgent: udp,
    }
}

impl Streaming {
    /// Whether the session has live viewers now; while it has, its thread
    /// reads as packets arrive.
    pub fn watched(&mut self, watched: bool) {
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

impl Drop for Streaming {
    fn drop(&mut self) {
        if let Some(p) = &self.pace {
            p.streaming.fetch_sub(1, Ordering::AcqRel);
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
        let stop = CancellationToken::new();
        let mut workers = Vec::new();
        for i in 0..count.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = rt.handle().clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name(format!("ingest-{i}"))
                .spawn(move || {
                    let pace = Arc::new(Pace::default());
                    PACE.with(|p| *p.borrow_mut() = Some(pace.clone()));
                    rt.block_on(async {
                        // A task, not this future: the runtime polls its
                        // `block_on` future before the tasks it has queued,
                        // and a task waits its turn behind them.
                        let pacer = tokio::spawn(run_pacer(pace, interval));
                        stop.cancelled().await;
                        pacer.abort();
                    });
                    // Here, outside the runtime: dropping it drops what is left.
                })?;
            workers.push(Worker {
                handle,
                tasks: Arc::new(AtomicUsize::new(0)),
            });
        }
        Ok(IngestThreads { workers, stop })
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
        let tasks = w.tasks.clone();
        tasks.fetch_add(1, Ordering::AcqRel);
        w.handle.spawn(async move {
            let _done = Done(tasks);
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

    /// Reads a loopback TCP stream on an ingest thread while the test writes
    /// a byte every 10 ms for about a second; returns how many reads
    /// returned data: one per wake-up of the thread.
    async fn reads_in_a_second(threads: &IngestThreads) -> usize {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = threads.spawn(async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut buf = vec![0u8; 1 << 16];
            let (mut reads, mut total) = (0, 0);
            while total < 100 {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "the writer closed early");
                reads += 1;
                total += n;
            }
            reads
        });
        let (mut w, _) = listener.accept().await.unwrap();
        let start = Instant::now();
        for i in 0..100u32 {
            let due = start + Duration::from_millis(10 * u64::from(i));
            tokio::time::sleep_until(due.into()).await;
            w.write_all(&[1]).await.unwrap();
        }
        let reads = reader.await.unwrap();
        drop(w);
        reads
    }

    /// A streaming session on the ingest thread, driven by the test:
    /// `Some(watched)` says whether it has live viewers, `None` ends it.
    struct Session(mpsc::UnboundedSender<Option<bool>>, JoinHandle<()>);

    impl Session {
        async fn start(threads: &IngestThreads, proto: Proto) -> Session {
            let (tx, mut rx) = mpsc::unbounded_channel();
            let task = threads.spawn(async move {
                let mut s = streaming(proto);
                while let Some(Some(watched)) = rx.recv().await {
                    s.watched(watched);
                }
            });
            settle().await;
            Session(tx, task)
        }

        async fn watched(&self, watched: bool) {
            self.0.send(Some(watched)).unwrap();
            settle().await;
        }

        async fn end(self) {
            self.0.send(None).unwrap();
            self.1.await.unwrap();
            settle().await;
        }
    }

    /// Long enough for a paced thread to act on what it was told.
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    fn assert_paced(reads: usize, when: &str) {
        assert!(
            (8..=16).contains(&reads),
            "{reads} reads of 100 bytes sent 10 ms apart, {when}: expected one per 100 ms"
        );
    }

    fn assert_unpaced(reads: usize, when: &str) {
        assert!(
            reads >= 60,
            "{reads} reads of 100 bytes sent 10 ms apart, {when}: expected about one each"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_thread_is_paced_while_its_sessions_stream_over_tcp_unwatched() {
        let threads = IngestThreads::start(1, Duration::from_millis(100)).unwrap();
        assert_unpaced(reads_in_a_second(&threads).await, "no session");
        let tcp = Session::start(&threads, Proto::Tcp).await;
        assert_paced(reads_in_a_second(&threads).await, "a TCP session");
        let udp = Session::start(&threads, Proto::Udp).await;
        assert_unpaced(reads_in_a_second(&threads).await, "and a UDP one");
        udp.end().await;
        assert_paced(reads_in_a_second(&threads).await, "the UDP session ended");
        tcp.watched(true).await;
        assert_unpaced(
            reads_in_a_second(&threads).await,
            "the TCP session watched live",
        );
        tcp.watched(false).await;
        assert_paced(reads_in_a_second(&threads).await, "its viewers gone");
        tcp.end().await;
        assert_unpaced(reads_in_a_second(&threads).await, "the TCP session ended");
    }

    /// More cameras with data than one pass of the runtime's scheduler runs
    /// (it looks at the sockets again every 61 tasks): each is still read
    /// once per interval, not once per round of the pacer among them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_camera_of_a_busy_thread_is_read_each_interval() {
        const SOCKETS: usize = 200;
        const BYTES: usize = 20;
        let threads = IngestThreads::start(1, Duration::from_millis(100)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _streaming = threads.spawn(async {
            let s = streaming(Proto::Tcp);
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(s);
        });
        let mut readers = Vec::new();
        let mut writers = Vec::new();
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
        for _ in 0..SOCKETS {
            writers.push(listener.accept().await.unwrap().0);
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
        reads.sort_unstable();
        let median = reads[SOCKETS / 2];
        assert!(
            (7..=13).contains(&median),
            "each of {SOCKETS} sockets read a median {median} times in a second (reads {reads:?})"
        );
    }

    #[tokio::test]
    async fn tasks_go_to_the_least_busy_thread_and_stop_with_the_threads() {
        let threads = IngestThreads::start(2, Duration::from_millis(100)).unwrap();
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
        let s = streaming(Proto::Tcp);
        assert!(s.pace.is_none());
    }
}
