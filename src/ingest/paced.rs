//! The ingest threads: each runs a single-threaded runtime for its share of
//! the cameras and, while they stream over TCP, reads their sockets in
//! batches, once per `interval`, instead of as each packet arrives.
//!
//! Why: a thread woken for every frame of every camera spends more CPU on
//! being woken than on the frame (with one camera, a wake-up cost more than
//! everything else cleannvr did with it; docs/BENCHMARKS.md). While a TCP
//! session streams, the thread sleeps to the next point of an `interval`
//! grid, the sockets fill meanwhile (TCP's flow control holds back what does
//! not fit), then every camera with data runs and the thread sleeps again:
//! one wake-up per interval for all its cameras. The price is latency: a
//! frame reaches the recorder and live viewers up to `interval` later, and
//! the wall time a session's first frame is stamped with is up to that late.
//!
//! Not paced: a thread with a UDP session (a datagram arriving at a full
//! socket buffer is lost, and the kernel's default buffer, which retina
//! keeps, does not hold a key frame's burst), and a thread with no session
//! streaming (connecting, waiting to retry), so an idle server stays asleep
//! and a camera's DESCRIBE, SETUP and PLAY go at the network's pace.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::transport::Proto;

/// What one thread's pacer watches: its streaming sessions by transport.
#[derive(Default)]
struct Pace {
    tcp: AtomicUsize,
    udp: AtomicUsize,
    /// Told when a session starts, so a pacer waiting for one starts pacing.
    started: Notify,
}

impl Pace {
    fn paced(&self) -> bool {
        self.udp.load(Ordering::Acquire) == 0 && self.tcp.load(Ordering::Acquire) > 0
    }

    fn count(&self, proto: Proto) -> &AtomicUsize {
        match proto {
            Proto::Tcp => &self.tcp,
            Proto::Udp => &self.udp,
        }
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
    proto: Proto,
}

/// Marks a session of this thread as streaming over `proto` until the
/// returned guard is dropped.
pub fn streaming(proto: Proto) -> Streaming {
    let pace = PACE.with(|p| p.borrow().clone());
    if let Some(p) = &pace {
        p.count(proto).fetch_add(1, Ordering::AcqRel);
        p.started.notify_one();
    }
    Streaming { pace, proto }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        if let Some(p) = &self.pace {
            p.count(self.proto).fetch_sub(1, Ordering::AcqRel);
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
/// followed by the next at once. Otherwise waits for a session to start.
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
            pace.started.notified().await;
            end = crate::clock::next_tick_at(interval).into_std();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Reads a loopback TCP stream on an ingest thread, marked as streaming
    /// over `proto`, while the test writes a small message every 10 ms for
    /// about a second; returns how many reads returned data: one per wake-up
    /// of the thread.
    async fn reads_in_a_second(threads: &IngestThreads, proto: Option<Proto>) -> usize {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = threads.spawn(async move {
            let _streaming = proto.map(streaming);
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tcp_session_is_read_once_per_interval_and_nothing_else_is_paced() {
        let threads = IngestThreads::start(1, Duration::from_millis(100)).unwrap();
        // A thread reads as packets arrive until a TCP session streams.
        let unpaced = reads_in_a_second(&threads, None).await;
        assert!(
            unpaced >= 60,
            "{unpaced} reads of 100 messages 10 ms apart, unpaced"
        );
        let paced = reads_in_a_second(&threads, Some(Proto::Tcp)).await;
        assert!(
            (8..=16).contains(&paced),
            "{paced} reads in a second of a streaming TCP session, read every 100 ms"
        );
        // The session's end stops the pacing.
        let after = reads_in_a_second(&threads, None).await;
        assert!(after >= 60, "{after} reads once no session streams");
        // A UDP session keeps its thread reading as packets arrive.
        let with_udp = threads.spawn(async {
            let udp = streaming(Proto::Udp);
            tokio::time::sleep(Duration::from_secs(3)).await;
            drop(udp);
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let udp = reads_in_a_second(&threads, Some(Proto::Tcp)).await;
        assert!(udp >= 60, "{udp} reads with a UDP session on the thread");
        with_udp.await.unwrap();
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
