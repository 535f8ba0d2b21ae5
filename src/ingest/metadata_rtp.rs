//! Our own reassembly of the ONVIF metadata track
//! (`application/vnd.onvif.metadata`, ONVIF Streaming Spec 5.2.1.1: the RTP
//! packets of one XML document share a timestamp, the marker bit ends it),
//! with a size cap that holds while a document grows.
//!
//! Why not retina's: its metadata depacketizer (retina 0.4.21,
//! `codec/onvif.rs`) appends every packet of a document to one buffer until
//! the marker bit, with no limit, and starts later documents with a buffer as
//! large as the largest so far. A hostile or broken camera that streams a
//! document without end (one timestamp, never a marker bit) grows the NVR's
//! memory without bound, in the session that carries the video, and retina
//! offers no way to see or cut that buffer (its `Depacketizer::push` is
//! crate-private). Here a document is dropped the moment it would pass
//! [`MAX_METADATA_DOCUMENT`], and the rest of it is skipped without being
//! kept, so one camera's track never holds more than the cap.
//!
//! Where it runs (see `rtsp`): the track is read in the same RTSP session
//! as the video, from retina's raw packets, beside our own H.264 or H.265 reassembly
//! ([`super::nal_rtp`]). One session per camera, as before: cameras limit
//! concurrent sessions (often to a handful, shared with their own NVR and
//! the sub stream), and a second session for metadata alone (prototyped
//! first) doubles the RTSP handshakes, keepalives and reconnects for a few
//! kilobytes a second, and needs cameras to stream one track of a media
//! alone. Streams retina must still demultiplex (sound other than G.711
//! or AAC-hbr, or H.265 with decoding order numbers) leave the track alone rather than let retina reassemble it
//! uncapped; their cameras' events come from the ONVIF event service.
//!
//! Loss tolerance, as for video: a lost packet or a document cut short (a
//! new timestamp before the marker bit) costs the document it falls in, is
//! reported once as [`MetadataDocument::Damaged`], and never touches video.

use std::collections::VecDeque;

use bytes::Bytes;

use super::open::{MetadataDocument, MAX_METADATA_DOCUMENT};

/// Reassembles one metadata track's documents from its RTP packets.
#[derive(Debug, Default)]
pub struct MetadataReassembler {
    /// The document so far (empty while skipping). Its capacity never
    /// passes [`MAX_METADATA_DOCUMENT`].
    buf: Vec<u8>,
    /// RTP timestamp of the document in progress, kept or skipped.
    ts: Option<i64>,
    /// The rest of the document at `ts` is skipped: it grew past the cap, or
    /// a packet of it was lost.
    skipping: bool,
    /// Documents and drops, in order, for [`Self::pull`].
    done: VecDeque<MetadataDocument>,
}

impl MetadataReassembler {
    /// Takes one RTP packet: its extended timestamp, marker bit, the packets
    /// lost just before it, and its payload.
    pub fn push(&mut self, ts: i64, mark: bool, loss: u16, payload: &[u8]) {
        if loss > 0 {
            // The lost packets were the end of the document in progress, or
            // the head of this packet's document (the ONVIF payload has no
            // start bit to tell): either way this packet's document is
            // incomplete, so it is skipped to its end.
            self.done.push_back(MetadataDocument::Damaged(format!(
                "{loss} RTP packets lost; the metadata document they fell in is dropped"
            )));
            self.start_skipping(ts);
        } else if let Some(cur) = self.ts {
            if cur != ts {
                if !self.skipping {
                    self.done.push_back(MetadataDocument::Damaged(format!(
                        "metadata document cut short: RTP timestamp changed from {cur} to {ts} before its marker bit"
                    )));
                }
                self.reset();
            }
        }
        self.ts = Some(ts);
        if !self.skipping {
            let len = self.buf.len() + payload.len();
            if len > MAX_METADATA_DOCUMENT {
                self.done.push_back(MetadataDocument::TooLarge(len));
                self.start_skipping(ts);
            } else {
                if len > self.buf.capacity() {
                    // Grow by doubling, but never past the cap.
                    let target = (len * 2).clamp(len, MAX_METADATA_DOCUMENT);
                    self.buf.reserve_exact(target - self.buf.len());
                }
                self.buf.extend_from_slice(payload);
            }
        }
        if mark {
            if !self.skipping {
                let doc = std::mem::take(&mut self.buf);
                self.done.push_back(MetadataDocument::Xml(Bytes::from(doc)));
            }
            self.reset();
        }
    }

    /// The next document or drop, if any.
    pub fn pull(&mut self) -> Option<MetadataDocument> {
        self.done.pop_front()
    }

    /// Bytes held for the document in progress (for tests and the cap's proof).
    pub fn held(&self) -> usize {
        self.buf.capacity()
    }

    /// Drops the document in progress and skips the rest of the one at `ts`.
    fn start_skipping(&mut self, ts: i64) {
        self.buf = Vec::new();
        self.ts = Some(ts);
        self.skipping = true;
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.ts = None;
        self.skipping = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(r: &mut MetadataReassembler) -> Vec<MetadataDocument> {
        std::iter::from_fn(|| r.pull()).collect()
    }

    fn xml(d: &MetadataDocument) -> &[u8] {
        match d {
            MetadataDocument::Xml(b) => b,
            other => panic!("not a document: {other:?}"),
        }
    }

    fn damaged(d: &MetadataDocument, says: &str) {
        assert!(
            matches!(d, MetadataDocument::Damaged(w) if w.contains(says)),
            "{d:?} does not say {says:?}"
        );
    }

    #[test]
    fn documents_end_at_the_marker_bit() {
        let mut r = MetadataReassembler::default();
        r.push(10, false, 0, b"<a>");
        assert!(r.pull().is_none());
        r.push(10, true, 0, b"</a>");
        r.push(11, true, 0, b"<b/>");
        let out = drain(&mut r);
        assert_eq!(out.len(), 2);
        assert_eq!(xml(&out[0]), b"<a></a>");
        assert_eq!(xml(&out[1]), b"<b/>");
    }

    #[test]
    fn a_timestamp_change_before_the_marker_costs_that_document_only() {
        let mut r = MetadataReassembler::default();
        r.push(10, false, 0, b"<a>");
        r.push(20, true, 0, b"<b/>");
        let out = drain(&mut r);
        assert_eq!(out.len(), 2, "{out:?}");
        damaged(&out[0], "timestamp changed from 10 to 20");
        assert_eq!(xml(&out[1]), b"<b/>");
    }

    #[test]
    fn loss_drops_the_document_it_falls_in() {
        let mut r = MetadataReassembler::default();
        // Lost in the middle: the tail is skipped, not handed out as XML.
        r.push(30, false, 0, b"<c>");
        r.push(30, false, 2, b"<x/>");
        r.push(30, true, 0, b"</c>");
        let out = drain(&mut r);
        assert_eq!(out.len(), 1, "{out:?}");
        damaged(&out[0], "2 RTP packets lost");
        // Lost at the head of the next document (the previous one ended):
        // what arrives of it is a tail, and dropped too.
        r.push(40, false, 1, b"tail");
        r.push(40, true, 0, b"</d>");
        let out = drain(&mut r);
        assert_eq!(out.len(), 1, "{out:?}");
        damaged(&out[0], "1 RTP packets lost");
        // The previous document's marker lost: it and the new one's first
        // packet (which carries the loss) go; the document after is whole.
        r.push(50, false, 0, b"<e>");
        r.push(60, true, 1, b"<f/>");
        r.push(70, true, 0, b"<g/>");
        let out = drain(&mut r);
        assert_eq!(out.len(), 2, "{out:?}");
        damaged(&out[0], "1 RTP packets lost");
        assert_eq!(xml(&out[1]), b"<g/>");
    }

    /// A camera streaming one document for ever: dropped once when it
    /// would pass the cap, nothing of it kept after that, and the document
    /// after it is read.
    #[test]
    fn an_endless_document_is_capped_and_reported_once() {
        let mut r = MetadataReassembler::default();
        let chunk = vec![b'x'; 1400];
        let mut out = Vec::new();
        for _ in 0..20_000 {
            // 28 MB in all.
            r.push(7, false, 0, &chunk);
            out.extend(drain(&mut r));
            assert!(r.held() <= MAX_METADATA_DOCUMENT, "{}", r.held());
        }
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(
            matches!(out[0], MetadataDocument::TooLarge(n) if n > MAX_METADATA_DOCUMENT
                && n <= MAX_METADATA_DOCUMENT + chunk.len()),
            "{out:?}"
        );
        assert_eq!(r.held(), 0);
        // Its marker bit at last: nothing more to say about it.
        r.push(7, true, 0, &chunk);
        assert!(r.pull().is_none());
        r.push(8, true, 0, b"<ok/>");
        assert_eq!(xml(&r.pull().unwrap()), b"<ok/>");
        // One that never ends, cut by a new timestamp instead: reported once
        // too, and the next document is whole.
        for _ in 0..1000 {
            r.push(9, false, 0, &chunk);
        }
        r.push(10, true, 0, b"<ok/>");
        let out = drain(&mut r);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(matches!(out[0], MetadataDocument::TooLarge(_)), "{out:?}");
        assert_eq!(xml(&out[1]), b"<ok/>");
    }

    #[test]
    fn a_document_of_exactly_the_cap_is_kept() {
        let mut r = MetadataReassembler::default();
        let half = vec![b'y'; MAX_METADATA_DOCUMENT / 2];
        r.push(1, false, 0, &half);
        r.push(1, true, 0, &half);
        assert_eq!(xml(&r.pull().unwrap()).len(), MAX_METADATA_DOCUMENT);
        r.push(2, false, 0, &half);
        r.push(2, false, 0, &half);
        r.push(2, true, 0, b"!");
        assert!(matches!(
            r.pull(),
            Some(MetadataDocument::TooLarge(n)) if n == MAX_METADATA_DOCUMENT + 1
        ));
        assert!(r.pull().is_none());
    }
}
