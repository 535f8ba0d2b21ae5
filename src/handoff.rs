//! The queue from a camera's ingest task to its recorder thread, and when
//! that thread is woken.
//!
//! The queue is tokio's bounded mpsc. The recorder does not wait on it (every
//! frame sent would wake it): it naps, and the sender unparks it only when
//! there is something to do at once. That is a fragment that is complete and
//! can be written (at a key frame, or once a long GOP's video has run
//! [`MAX_FRAGMENT_TICKS`] since the last wake), the end of a session (the
//! segment is closed), or the end of the queue (the recorder finishes). A
//! wake-up, two context switches, costs more than handling a frame; with a
//! 2 s GOP this wakes the recorder about once a second instead of on a 250 ms
//! timer, and writes each fragment as soon as it is complete rather than up
//! to a nap later (docs/BENCHMARKS.md).

use std::sync::atomic::{AtomicI64, Ordering};
use std::thread::Thread;

use tokio::sync::mpsc;

use crate::frame::IngestEvent;

pub use mpsc::error::{SendError, TrySendError};

/// The longest stretch of video (90 kHz) the recorder keeps in one fragment:
/// a long GOP is written about once a second, so a crash loses little.
pub const MAX_FRAGMENT_TICKS: i64 = 90_000;

/// The ingest side of a camera's event queue.
pub struct FrameSender {
    /// `None` only while dropping: the queue is closed before the last wake.
    tx: Option<mpsc::Sender<IngestEvent>>,
    /// The consumer's thread (the recorder's); `None` for an async consumer
    /// (a live-only camera's drain), which the channel wakes itself.
    wake: Option<Thread>,
    /// The video pts of the last wake ([`i64::MIN`]: none yet). Only the
    /// sending task touches it; atomic so the task can be shared.
    woken_at_pts: AtomicI64,
}

impl FrameSender {
    /// Wraps the sending half of a queue whose consumer runs on `wake`.
    pub fn new(tx: mpsc::Sender<IngestEvent>, wake: Option<Thread>) -> Self {
        FrameSender {
            tx: Some(tx),
            wake,
            woken_at_pts: AtomicI64::new(i64::MIN),
        }
    }

    fn tx(&self) -> &mpsc::Sender<IngestEvent> {
        self.tx.as_ref().expect("taken only in drop")
    }

    /// Queues `ev` without waiting; the consumer is woken for the events it
    /// acts on at once (see the module docs), even when the queue was full.
    pub fn try_send(&self, ev: IngestEvent) -> Result<(), TrySendError<IngestEvent>> {
        let wake = self.wakes(&ev);
        let sent = self.tx().try_send(ev);
        if wake {
            self.wake();
        }
        sent
    }

    /// Queues `ev`, waiting for room, and wakes the consumer.
    pub async fn send(&self, ev: IngestEvent) -> Result<(), SendError<IngestEvent>> {
        let sent = self.tx().send(ev).await;
        self.wake();
        sent
    }

    /// The consumer is gone.
    pub fn is_closed(&self) -> bool {
        self.tx().is_closed()
    }

    /// Whether the recorder acts on `ev` as soon as it is queued.
    fn wakes(&self, ev: &IngestEvent) -> bool {
        match ev {
            IngestEvent::Video(f) => {
                let last = self.woken_at_pts.load(Ordering::Relaxed);
                // A new session's timestamps may restart lower: that wakes too.
                let due = f.is_key
                    || last == i64::MIN
                    || f.pts < last
                    || f.pts - last >= MAX_FRAGMENT_TICKS;
                if due {
                    self.woken_at_pts.store(f.pts, Ordering::Relaxed);
                }
                due
            }
            IngestEvent::SessionEnded => true,
            IngestEvent::SessionStarted { .. } | IngestEvent::Audio(_) | IngestEvent::Gap => false,
        }
    }

    fn wake(&self) {
        if let Some(t) = &self.wake {
            t.unpark();
        }
    }
}

impl Drop for FrameSender {
    /// The queue ends: the recorder finishes its segment now, not at its next
    /// nap's end. The sender goes first, so the recorder sees the queue closed.
    fn drop(&mut self) {
        drop(self.tx.take());
        self.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};
    use std::time::{Duration, Instant};

    fn frame(pts: i64, is_key: bool) -> IngestEvent {
        IngestEvent::Video(crate::frame::VideoFrame {
            pts,
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

    /// The recorder is woken for a key frame, a second of video since the
    /// last wake (a long GOP's fragment), a timestamp that went back (a new
    /// session), the session's end; not for other frames, audio or a gap.
    #[test]
    fn what_wakes_the_recorder() {
        let (tx, _rx) = mpsc::channel(1);
        let s = FrameSender::new(tx, None);
        let w = |ev: IngestEvent| s.wakes(&ev);
        assert!(w(frame(5_000, false)), "the first frame");
        assert!(!w(frame(8_600, false)));
        assert!(!w(IngestEvent::Gap));
        assert!(!w(IngestEvent::SessionStarted { audio: None }));
        assert!(w(frame(12_200, true)), "a key frame");
        assert!(!w(frame(12_200 + MAX_FRAGMENT_TICKS - 1, false)));
        assert!(
            w(frame(12_200 + MAX_FRAGMENT_TICKS, false)),
            "a second of video"
        );
        assert!(!w(frame(12_200 + MAX_FRAGMENT_TICKS + 3_600, false)));
        assert!(w(frame(0, false)), "timestamps restarted");
        assert!(w(IngestEvent::SessionEnded));
    }

    /// A consumer parked as the recorder parks sleeps through plain frames,
    /// is woken by a key frame, and sees the queue closed when the sender is
    /// dropped (the sender goes before the wake-up), all without waiting out
    /// its 30 s nap.
    #[test]
    fn the_consumer_wakes_for_a_key_frame_and_sees_the_queue_end() {
        let (tx, mut rx) = mpsc::channel(64);
        let ready = Arc::new(Barrier::new(2));
        let r2 = ready.clone();
        let h = std::thread::spawn(move || {
            r2.wait();
            let mut batches = Vec::new();
            loop {
                let mut got = 0;
                loop {
                    match rx.try_recv() {
                        Ok(_) => got += 1,
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => return batches,
                    }
                }
                batches.push(got);
                std::thread::park_timeout(Duration::from_secs(30));
            }
        });
        let tx = FrameSender::new(tx, Some(h.thread().clone()));
        ready.wait();
        // The first frame wakes (a key frame here); let the thread drain it and park.
        tx.try_send(frame(0, true)).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        for i in 1..10 {
            tx.try_send(frame(i * 3_600, false)).unwrap();
        }
        std::thread::sleep(Duration::from_millis(300));
        tx.try_send(frame(10 * 3_600, true)).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let t = Instant::now();
        drop(tx);
        let batches = h.join().unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the queue's end did not wake it"
        );
        // The nine plain frames waited for the key frame: one batch of ten.
        assert_eq!(batches.iter().sum::<usize>(), 11, "{batches:?}");
        assert_eq!(batches.last(), Some(&10), "{batches:?}");
    }
}
