//! The queue from a camera's ingest task to its recorder thread, and when
//! that thread is woken.
//!
//! The queue is tokio's bounded mpsc. The recorder does not wait on it (every
//! frame sent would wake it): it naps, and the sender unparks it only when
//! there is something to do at once. That is a key frame (the fragment
//! before it is complete and can be written), the end of a session (the
//! segment is closed), or the end of the queue (the recorder finishes). A
//! wake-up, two context switches, costs more than handling a frame; with a
//! 1 s GOP this wakes the recorder once a second instead of on a 250 ms
//! timer, and writes each fragment as soon as it is complete rather than up
//! to a nap later (docs/BENCHMARKS.md).

use std::thread::Thread;

use tokio::sync::mpsc;

use crate::frame::IngestEvent;

pub use mpsc::error::{SendError, TrySendError};

/// The ingest side of a camera's event queue.
pub struct FrameSender {
    tx: mpsc::Sender<IngestEvent>,
    /// The consumer's thread (the recorder's); `None` for an async consumer
    /// (a live-only camera's drain), which the channel wakes itself.
    wake: Option<Thread>,
}

impl FrameSender {
    /// Wraps the sending half of a queue whose consumer runs on `wake`.
    pub fn new(tx: mpsc::Sender<IngestEvent>, wake: Option<Thread>) -> Self {
        FrameSender { tx, wake }
    }

    /// Queues `ev` without waiting; the consumer is woken for the events it
    /// acts on at once ([`wakes`]), even when the queue was full.
    pub fn try_send(&self, ev: IngestEvent) -> Result<(), TrySendError<IngestEvent>> {
        let wake = wakes(&ev);
        let sent = self.tx.try_send(ev);
        if wake {
            self.wake();
        }
        sent
    }

    /// Queues `ev`, waiting for room, and wakes the consumer.
    pub async fn send(&self, ev: IngestEvent) -> Result<(), SendError<IngestEvent>> {
        let sent = self.tx.send(ev).await;
        self.wake();
        sent
    }

    /// The consumer is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    fn wake(&self) {
        if let Some(t) = &self.wake {
            t.unpark();
        }
    }
}

impl Drop for FrameSender {
    /// The queue ends: the recorder finishes its segment now, not at its next nap's end.
    fn drop(&mut self) {
        self.wake();
    }
}

/// The events the recorder acts on as soon as they are queued.
fn wakes(ev: &IngestEvent) -> bool {
    match ev {
        IngestEvent::Video(f) => f.is_key,
        IngestEvent::SessionEnded => true,
        IngestEvent::SessionStarted { .. } | IngestEvent::Audio(_) | IngestEvent::Gap => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    fn frame(is_key: bool) -> IngestEvent {
        IngestEvent::Video(crate::frame::VideoFrame {
            pts: 0,
            received_ns: 0,
            is_key,
            params: Arc::new(crate::frame::VideoParams {
                codec: crate::frame::VideoCodec::H264,
                rfc6381: "avc1.640028".into(),
                width: 16,
                height: 16,
                sample_entry: bytes::Bytes::new(),
            }),
            data: bytes::Bytes::from_static(&[0, 0, 0, 1, 0x65]),
        })
    }

    /// A thread napping as the recorder does; returns what it saw woken it
    /// and how long each nap lasted.
    fn napper(
        rx: mpsc::Receiver<IngestEvent>,
        nap: Duration,
    ) -> std::thread::JoinHandle<Vec<(usize, Duration)>> {
        let mut rx = rx;
        std::thread::spawn(move || {
            let mut naps = Vec::new();
            loop {
                let mut got = 0;
                loop {
                    match rx.try_recv() {
                        Ok(_) => got += 1,
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => return naps,
                    }
                }
                let t = Instant::now();
                std::thread::park_timeout(nap);
                naps.push((got, t.elapsed()));
            }
        })
    }

    /// Ordinary frames do not wake the recorder; a key frame, the end of a
    /// session and the end of the queue do, at once.
    #[test]
    fn only_what_the_recorder_acts_on_wakes_it() {
        let (tx, rx) = mpsc::channel(64);
        let long = Duration::from_secs(30);
        let h = napper(rx, long);
        let tx = FrameSender::new(tx, Some(h.thread().clone()));
        let t = Instant::now();
        // Let the thread reach its first nap.
        std::thread::sleep(Duration::from_millis(100));
        for _ in 0..10 {
            tx.try_send(frame(false)).unwrap();
        }
        tx.try_send(IngestEvent::Gap).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        tx.try_send(frame(true)).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        tx.try_send(IngestEvent::SessionEnded).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        drop(tx);
        let naps = h.join().unwrap();
        assert!(t.elapsed() < Duration::from_secs(5), "a nap ran its course");
        // Nap 1 (from the start) ended at the key frame with the 11 events
        // and the key frame; nap 2 ended at the session's end; nap 3 at the drop.
        let woken: Vec<usize> = naps.iter().map(|(n, _)| *n).collect();
        assert_eq!(woken, [0, 12, 1], "{naps:?}");
        // The plain frames and the gap (at 100 ms) did not end the first nap.
        assert!(
            naps[0].1 >= Duration::from_millis(250),
            "woken by plain frames: {naps:?}"
        );
    }
}
