//! Loss tolerance: what a lost RTP packet or a depacketization error costs.
//! The answer is the damaged frames up to the next key frame, never the
//! RTSP session. Pure decisions, unit-tested; `session` applies them.
//!
//! What retina 0.4.21 does after each error `Demuxed::poll_next` returns
//! (read in its `client/mod.rs`, `client/rtp.rs`, `codec/h264.rs`,
//! `codec/h265.rs`, `codec/aac.rs`):
//! - **Depacketizer `push` errors** (`FU-A has start bit unset while no frag
//!   in progress` on a join mid-frame, `bad nal header`, STAP-A/FU-A format
//!   errors): the packet is consumed, the H.264/H.265 depacketizer drops its
//!   partial access unit (`push` restores its invariant for this), and the
//!   demuxer stays in its waiting state. Polling on works: **continue**.
//! - **RTP/RTCP validation errors** (corrupt RTP header, unparseable RTCP,
//!   timestamp jump beyond the policy): the packet is consumed, nothing else
//!   changes: **continue**. A camera whose timestamps really jumped fails
//!   every later packet too; the stall deadline (counted from the last good
//!   frame, not the last item) then ends the session.
//! - **`wrong ssrc`**: retina keeps expecting the old SSRC, so every later
//!   packet fails the same way: **reconnect** at once, saying why.
//! - **`Out-of-order packet or large loss`** (TCP only; over UDP retina skips
//!   late and duplicated packets itself): the expected sequence number is not
//!   advanced, so it repeats: **reconnect**.
//! - **Depacketizer `pull` errors** (H.264 `timestamp changed ... in the
//!   middle of a fragmented NAL`, AAC framing errors): the demuxer fuses and
//!   yields `None` next. The session cannot go on; `session` reports it as
//!   such rather than as a clean end of stream.
//! - **Connection errors** (RTSP read/framing, UDP receive, keepalive
//!   write): **reconnect**.
//!
//! Lost packets are reported on the next frame (`loss()`); retina already
//! discards an access unit whose interior packets were lost, and skips late
//! and duplicated UDP packets.
//!
//! Sessions of H.264 or H.265 video (alone, or with the ONVIF metadata
//! track) are reassembled by our own [`super::nal_rtp`] and [`super::metadata_rtp`]
//! instead of retina's depacketizers (the RTP and RTCP validation above is
//! still retina's). Its errors are all of the
//! **continue** kind, including a timestamp change in the middle of a
//! fragmented NAL, which there costs one access unit, not the session.

/// What to do after an error from the demuxed stream.
#[derive(Debug, PartialEq, Eq)]
pub enum ErrorAction {
    /// One packet was bad; drop frames to the next key frame and poll on.
    Continue,
    /// The session cannot recover; end it with this plain-words reason.
    Reconnect(&'static str),
}

/// Decides per error kind; `text` is the error's `Display`. retina's error
/// type is opaque (no kind accessor), so the kind is read from its message:
/// packet-level errors, and only those, carry a `pkt:` context line.
pub fn error_action(text: &str) -> ErrorAction {
    if !text.contains("\npkt: ") {
        return ErrorAction::Reconnect("the RTSP connection failed");
    }
    if text.starts_with("wrong ssrc") {
        return ErrorAction::Reconnect(
            "the camera switched to a new RTP stream (SSRC changed) mid-session",
        );
    }
    if text.starts_with("Out-of-order packet or large loss") {
        return ErrorAction::Reconnect("the camera's RTP sequence numbers went backwards");
    }
    ErrorAction::Continue
}

/// Per-session damage state: after loss or an error, frames are dropped
/// until the next key frame (a P-frame whose reference is gone decodes to
/// garbage, and a recording must always decode).
#[derive(Debug, Default)]
pub struct Damage {
    waiting_for_key: bool,
}

/// What happens to one video frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it.
    Keep,
    /// Drop it; `starts_gap` is true for the first frame of a damaged run
    /// (the recorder must close its segment there).
    Drop { starts_gap: bool },
}

impl Damage {
    /// A depacketization error: the frame in progress is gone. Returns true
    /// if this starts a damaged run (the caller tells the recorder).
    pub fn error(&mut self) -> bool {
        !std::mem::replace(&mut self.waiting_for_key, true)
    }

    /// A video frame, `loss` RTP packets lost since the previous one;
    /// `whole` is false when it lacks its picture's first slice (a join
    /// between slices, see `nal::starts_picture`). A key frame after loss is
    /// dropped too: the loss may be its own prefix.
    pub fn frame(&mut self, loss: u16, whole: bool, is_key: bool) -> Verdict {
        if loss > 0 || !whole {
            let starts_gap = !std::mem::replace(&mut self.waiting_for_key, true);
            return Verdict::Drop { starts_gap };
        }
        if self.waiting_for_key && !is_key {
            return Verdict::Drop { starts_gap: false };
        }
        self.waiting_for_key = false;
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_drops_frames_until_the_next_clean_key_frame() {
        let mut d = Damage::default();
        assert_eq!(d.frame(0, true, true), Verdict::Keep);
        assert_eq!(d.frame(0, true, false), Verdict::Keep);
        assert_eq!(d.frame(2, true, false), Verdict::Drop { starts_gap: true });
        assert_eq!(d.frame(0, true, false), Verdict::Drop { starts_gap: false });
        // A key frame that itself follows loss may lack its start.
        assert_eq!(d.frame(1, true, true), Verdict::Drop { starts_gap: false });
        assert_eq!(d.frame(0, true, true), Verdict::Keep);
        assert_eq!(d.frame(0, true, false), Verdict::Keep);
    }

    #[test]
    fn a_key_frame_without_its_first_slice_is_not_a_start() {
        let mut d = Damage::default();
        // Joined between two slices of a key frame, with no loss to show for it.
        assert_eq!(d.frame(0, false, true), Verdict::Drop { starts_gap: true });
        assert_eq!(d.frame(0, true, false), Verdict::Drop { starts_gap: false });
        assert_eq!(d.frame(0, true, true), Verdict::Keep);
        // Mid-stream too: the picture is broken, so is what refers to it.
        assert_eq!(d.frame(0, false, false), Verdict::Drop { starts_gap: true });
        assert_eq!(d.frame(0, true, false), Verdict::Drop { starts_gap: false });
    }

    #[test]
    fn an_error_waits_for_a_key_frame_and_starts_one_gap() {
        let mut d = Damage::default();
        // Joined mid-frame: the first packets fail, one gap only.
        assert!(d.error());
        assert!(!d.error());
        assert_eq!(d.frame(0, true, false), Verdict::Drop { starts_gap: false });
        assert_eq!(d.frame(0, true, true), Verdict::Keep);
        assert!(d.error());
    }

    #[test]
    fn error_kinds() {
        // Messages as retina 0.4.21 formats them (error.rs).
        let push = "FU-A has start bit unset while no frag in progress\n\nconn: a\nstream: b\nssrc: 1\nseq: 2\npkt: c";
        assert_eq!(error_action(push), ErrorAction::Continue);
        let header =
            "corrupt RTP header while expecting seq=None: \"x\"\n\nconn: a\nstream: b\npkt: c";
        assert_eq!(error_action(header), ErrorAction::Continue);
        let ssrc = "wrong ssrc after 5 RTP pkts + 0 RTCP pkts; expecting ssrc=1 seq=2\n\nconn: a\nstream: b\nssrc: 3\nseq: 4\npkt: c";
        assert!(matches!(error_action(ssrc), ErrorAction::Reconnect(m) if m.contains("SSRC")));
        let ooo = "Out-of-order packet or large loss; expecting ssrc=1 seq=2\n\nconn: a\nstream: b\nssrc: 1\nseq: 4\npkt: c";
        assert!(matches!(error_action(ooo), ErrorAction::Reconnect(_)));
        let read = "Error reading from RTSP peer: Connection reset by peer\n\nconn: a\nmsg: b";
        assert!(matches!(error_action(read), ErrorAction::Reconnect(_)));
        let udp = "Error receiving UDP packet: x\n\nconn: a\nstream: b\nat: c";
        assert!(matches!(error_action(udp), ErrorAction::Reconnect(_)));
    }
}
