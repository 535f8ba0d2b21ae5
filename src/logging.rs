//! The process's log: `tracing`'s formatter on stderr, and the RTSP client's
//! `log` records placed in the span of the camera whose session it was serving.
//!
//! A camera's ingest task does not run inside its `camera` span (entering a
//! span at every poll, one per packet wake-up, was about 5 % of the CPU of
//! recording one camera); it enters the span only to log. retina logs through
//! `log` from inside our polls of its session, where no span is entered, so
//! [`InCamera`] marks those polls in a thread-local (a word written and
//! restored per poll), and the `log` bridge enters the marked span only for
//! a record that is actually logged; our own session code logs through
//! [`in_polled_camera`] the same way.

use std::cell::Cell;
use std::future::Future;
use std::num::NonZeroU64;
use std::pin::Pin;
use std::task::{Context, Poll};

use tracing::Span;
use tracing_log::AsLog;

thread_local! {
    /// The span of the camera whose session this thread is polling, if any.
    static POLLING: Cell<Option<NonZeroU64>> = const { Cell::new(None) };
}

/// Sets up logging for the whole process: `filter` (`RUST_LOG` syntax) unless
/// `RUST_LOG` is set.
pub fn init(default_filter: &str) {
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .finish();
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        return;
    }
    // After the subscriber, so records it would drop are not even built.
    if log::set_boxed_logger(Box::new(CameraLog(tracing_log::LogTracer::new()))).is_ok() {
        log::set_max_level(tracing::level_filters::LevelFilter::current().as_log());
    }
}

/// `log` records as `tracing` events, in the camera span [`InCamera`] marked.
struct CameraLog(tracing_log::LogTracer);

impl log::Log for CameraLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        log::Log::enabled(&self.0, metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        in_polled_camera(|| self.0.log(record));
    }

    fn flush(&self) {}
}

/// Runs `f`, which logs, in the span of the camera whose session this thread
/// is polling (see [`InCamera`]); outside such a poll, in whatever span is current.
pub fn in_polled_camera<R>(f: impl FnOnce() -> R) -> R {
    /// Leaves the span, also when `f` panics.
    struct Exit(tracing::Dispatch, tracing::Id);
    impl Drop for Exit {
        fn drop(&mut self) {
            self.0.exit(&self.1);
        }
    }
    let Some(id) = POLLING.get() else {
        return f();
    };
    // The span is alive: `InCamera` borrows it for the whole poll. Cloned
    // out: inside `get_default`, tracing would log to nowhere.
    let d = tracing::dispatcher::get_default(|d| d.clone());
    let id = tracing::Id::from_non_zero_u64(id);
    d.enter(&id);
    let _exit = Exit(d, id);
    f()
}

/// `inner`, polled with what its code logs through [`in_polled_camera`]
/// (and the RTSP client's `log` records) placed in `span`.
pub struct InCamera<'a, F> {
    span: &'a Span,
    inner: F,
}

impl<'a, F> InCamera<'a, F> {
    /// `inner`'s polls marked as `span`'s.
    pub fn new(span: &'a Span, inner: F) -> Self {
        InCamera { span, inner }
    }
}

impl<F: Future + Unpin> Future for InCamera<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        /// Puts back the mark of an enclosing poll, also when `inner` panics.
        struct Restore(Option<NonZeroU64>);
        impl Drop for Restore {
            fn drop(&mut self) {
                POLLING.set(self.0);
            }
        }
        let this = &mut *self;
        let _restore = Restore(POLLING.get());
        if let Some(id) = this.span.id() {
            POLLING.set(Some(id.into_non_zero_u64()));
        }
        Pin::new(&mut this.inner).poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Log;
    use std::sync::{Arc, Mutex};

    /// What a subscriber on this thread printed.
    #[derive(Clone, Default)]
    struct Printed(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Printed {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn record(bridge: &CameraLog, text: &str) {
        bridge.log(
            &log::Record::builder()
                .args(format_args!("{text}"))
                .level(log::Level::Warn)
                .target("retina::client")
                .build(),
        );
    }

    #[test]
    fn what_a_polled_session_logs_is_placed_in_its_cameras_span_only() {
        let printed = Printed::default();
        let out = printed.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .with_ansi(false)
            .without_time()
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let bridge = CameraLog(tracing_log::LogTracer::new());
            let span = tracing::info_span!("camera", id = %"hall");
            let polled = InCamera::new(
                &span,
                Box::pin(async {
                    record(&bridge, "keepalive failed with 404");
                    in_polled_camera(|| tracing::warn!("damaged audio RTP data"));
                }),
            );
            futures::executor::block_on(polled);
            record(&bridge, "a record outside any session");
        });
        let text = String::from_utf8(printed.0.lock().unwrap().clone()).unwrap();
        let line = |needle: &str| {
            text.lines()
                .find(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("{needle:?} not logged:\n{text}"))
                .to_owned()
        };
        assert!(
            line("keepalive failed").contains("camera{id=hall}"),
            "{text}"
        );
        assert!(line("damaged audio").contains("camera{id=hall}"), "{text}");
        assert!(!line("outside any session").contains("camera{"), "{text}");
        assert_eq!(POLLING.get(), None, "the mark outlived the poll");
    }
}
