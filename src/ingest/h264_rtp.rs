//! Our own RFC 6184 reassembly of H.264 RTP payloads (single NAL unit,
//! STAP-A, FU-A) into length-prefixed access units, for sessions that carry
//! H.264 video and nothing else (see `rtsp`: the fast path).
//!
//! Why: retina's depacketizer runs every payload byte through a start-code
//! scanner, about a fifth of cleannvr's CPU with one camera
//! (docs/BENCHMARKS.md). Here a NAL is copied once, and only complete NAL
//! units are searched for the stray Annex B start codes some cameras put
//! inside them, with SIMD (`memchr::memmem`).
//!
//! Loss tolerance, as the session loop expects it: a lost packet or a
//! malformed payload costs the access unit it falls in (the rest of that
//! unit is skipped), never the depacketizer; lost packets are reported on
//! the next access unit handed out, which the loop then drops up to the next
//! key frame. Parameter sets are taken out of the access units and kept, so
//! the caller can rebuild its sample entry when they change.

use std::collections::VecDeque;

/// An access unit larger than this (a hostile or broken camera; a real
/// 4K key frame is a few megabytes) is dropped as damaged rather than grown.
const MAX_ACCESS_UNIT: usize = 16 << 20;

/// One reassembled access unit.
#[derive(Debug, PartialEq, Eq)]
pub struct AccessUnit {
    /// 90 kHz RTP timestamp, extended (retina's `Timestamp::elapsed`).
    pub timestamp: i64,
    /// No non-IDR slice in it (retina's definition of a random access point).
    pub random_access: bool,
    /// RTP packets lost since the previous access unit handed out.
    pub loss: u16,
    /// The SPS or PPS changed before or in this unit (see [`H264Depacketizer::parameter_sets`]).
    pub new_parameters: bool,
    /// Length-prefixed NAL units, parameter sets removed.
    pub data: Vec<u8>,
}

/// Reassembles one H.264 RTP stream.
#[derive(Debug, Default)]
pub struct H264Depacketizer {
    /// The access unit in progress, length-prefixed.
    au: Vec<u8>,
    /// Its timestamp, while one is in progress.
    ts: Option<i64>,
    /// It holds a non-IDR slice.
    non_idr: bool,
    /// Offset in `au` of the length prefix of the FU-A NAL in progress.
    fu: Option<usize>,
    /// The rest of the access unit with this timestamp is skipped (loss or damage in it).
    skip: Option<i64>,
    /// Packets lost since the last unit handed out.
    loss: u16,
    sps: Vec<u8>,
    pps: Vec<u8>,
    params_changed: bool,
    done: VecDeque<AccessUnit>,
}

impl H264Depacketizer {
    /// Starts with the parameter sets the SDP announced (from retina's
    /// `avcC` record), so in-band copies of the same ones are no change.
    pub fn new(avcc: Option<&[u8]>) -> Self {
        let mut d = Self::default();
        if let Some((sps, pps)) = avcc.and_then(sps_pps_of_avcc) {
            d.sps = sps.to_vec();
            d.pps = pps.to_vec();
        }
        d
    }

    /// The latest SPS and PPS (NAL units without prefix); empty if none was seen.
    pub fn parameter_sets(&self) -> (&[u8], &[u8]) {
        (&self.sps, &self.pps)
    }

    /// Takes one RTP packet: its extended timestamp, marker bit, the packets
    /// lost just before it, and its payload. An error names what was wrong
    /// with the packet; the access unit it belonged to is dropped, and the
    /// depacketizer goes on with the next one.
    pub fn push(&mut self, ts: i64, mark: bool, loss: u16, payload: &[u8]) -> Result<(), String> {
        if loss > 0 {
            self.loss = self.loss.saturating_add(loss);
            let inside = self.ts == Some(ts) || self.skip == Some(ts);
            // Either a part of this unit or the end of the previous one is gone.
            self.discard();
            if inside {
                self.skip = (!mark).then_some(ts);
                return Ok(());
            }
        }
        if let Some(s) = self.skip.take() {
            if s == ts {
                self.skip = (!mark).then_some(ts);
                return Ok(());
            }
        }
        let mut early = None;
        if let Some(cur) = self.ts {
            if cur != ts {
                if self.fu.is_some() {
                    self.discard();
                    early = Some(format!(
                        "timestamp changed from {cur} to {ts} in the middle of a fragmented NAL"
                    ));
                } else {
                    // No marker bit on the last packet (some cameras never set it).
                    self.finish();
                }
            }
        }
        self.ts = Some(ts);
        let mut r = self.payload(payload);
        if r.is_ok() && self.au.len() > MAX_ACCESS_UNIT {
            r = Err(format!("access unit over {MAX_ACCESS_UNIT} bytes"));
        }
        if r.is_ok() && mark {
            if self.fu.is_some() {
                r = Err("marker bit set in the middle of a fragmented NAL".to_owned());
            } else {
                self.finish();
            }
        }
        if r.is_err() {
            self.discard();
            self.skip = (!mark).then_some(ts);
        }
        match early {
            Some(e) => Err(r.err().map_or(e.clone(), |r| format!("{e}; then {r}"))),
            None => r,
        }
    }

    /// The next complete access unit, if any.
    pub fn pull(&mut self) -> Option<AccessUnit> {
        self.done.pop_front()
    }

    fn payload(&mut self, payload: &[u8]) -> Result<(), String> {
        let Some(&hdr) = payload.first() else {
            return Err("empty RTP payload".to_owned());
        };
        if hdr & 0x80 != 0 {
            return Err(format!("NAL header {hdr:02x} has the F bit set"));
        }
        match hdr & 0x1f {
            1..=23 => {
                if self.fu.is_some() {
                    return Err(format!(
                        "single NAL {hdr:02x} while a FU-A fragment is in progress"
                    ));
                }
                self.whole_nal(payload)
            }
            24 => {
                if self.fu.is_some() {
                    return Err("STAP-A while a FU-A fragment is in progress".to_owned());
                }
                let mut rest = &payload[1..];
                while !rest.is_empty() {
                    let Some((len, tail)) = rest.split_first_chunk::<2>() else {
                        return Err("STAP-A with a truncated NAL size".to_owned());
                    };
                    let len = usize::from(u16::from_be_bytes(*len));
                    if len == 0 || len > tail.len() {
                        return Err(format!(
                            "STAP-A NAL of {len} bytes with {} left",
                            tail.len()
                        ));
                    }
                    let (nal, tail) = tail.split_at(len);
                    if nal[0] & 0x80 != 0 {
                        return Err(format!(
                            "STAP-A NAL header {:02x} has the F bit set",
                            nal[0]
                        ));
                    }
                    self.whole_nal(nal)?;
                    rest = tail;
                }
                Ok(())
            }
            28 => {
                let Some(&fu_hdr) = payload.get(1) else {
                    return Err("FU-A without its FU header".to_owned());
                };
                let (start, end) = (fu_hdr & 0x80 != 0, fu_hdr & 0x40 != 0);
                let body = &payload[2..];
                match (start, self.fu) {
                    (true, Some(_)) => {
                        return Err("FU-A start while another fragment is in progress".to_owned())
                    }
                    (true, None) => {
                        self.fu = Some(self.au.len());
                        self.au.extend_from_slice(&[0; 4]);
                        self.au.push((hdr & 0xe0) | (fu_hdr & 0x1f));
                    }
                    (false, None) => {
                        return Err("FU-A has start bit unset while no frag in progress".to_owned())
                    }
                    (false, Some(_)) => {}
                }
                self.au.extend_from_slice(body);
                if end {
                    let at = self.fu.take().expect("fragment in progress");
                    self.end_nal(at)?;
                }
                Ok(())
            }
            t => Err(format!("unsupported NAL type {t} in an H.264 RTP payload")),
        }
    }

    /// Appends a NAL unit that arrived whole.
    fn whole_nal(&mut self, nal: &[u8]) -> Result<(), String> {
        let at = self.au.len();
        self.au.extend_from_slice(&[0; 4]);
        self.au.extend_from_slice(nal);
        self.end_nal(at)
    }

    /// Completes the NAL at `at` (its zeroed length prefix) in `au`: splits
    /// it at any Annex B start codes inside it, writes the lengths, and takes
    /// parameter sets out.
    fn end_nal(&mut self, at: usize) -> Result<(), String> {
        // Built once: building a finder costs about as much as searching a NAL.
        static START_CODE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
            std::sync::LazyLock::new(|| memchr::memmem::Finder::new(&[0, 0, 1]));
        let finder = &*START_CODE;
        if finder.find(&self.au[at + 4..]).is_none() {
            return self.close_nal(at);
        }
        // Rare: a camera that put a byte stream where one NAL belongs.
        let body = self.au.split_off(at + 4);
        self.au.truncate(at);
        let mut starts = vec![0];
        starts.extend(finder.find_iter(&body).map(|i| i + 3));
        for (k, &s) in starts.iter().enumerate() {
            let e = starts.get(k + 1).map_or(body.len(), |&n| n - 3);
            let part = trim_trailing_zeros(&body[s..e]);
            if part.is_empty() {
                continue;
            }
            if part[0] & 0x80 != 0 {
                return Err(format!(
                    "NAL header {:02x} after an Annex B start code has the F bit set",
                    part[0]
                ));
            }
            let at = self.au.len();
            self.au.extend_from_slice(&[0; 4]);
            self.au.extend_from_slice(part);
            self.close_nal(at)?;
        }
        Ok(())
    }

    fn close_nal(&mut self, at: usize) -> Result<(), String> {
        let len = self.au.len() - at - 4;
        if len == 0 {
            self.au.truncate(at);
            return Ok(());
        }
        let len32 = u32::try_from(len).map_err(|_| "NAL unit over 4 GiB".to_owned())?;
        self.au[at..at + 4].copy_from_slice(&len32.to_be_bytes());
        match self.au[at + 4] & 0x1f {
            1..=4 => self.non_idr = true,
            7 | 8 => {
                let is_sps = self.au[at + 4] & 0x1f == 7;
                let kept = if is_sps { &mut self.sps } else { &mut self.pps };
                if kept[..] != self.au[at + 4..] {
                    kept.clear();
                    kept.extend_from_slice(&self.au[at + 4..]);
                    self.params_changed = true;
                }
                self.au.truncate(at);
            }
            _ => {}
        }
        Ok(())
    }

    /// Hands out the access unit in progress, if it holds anything.
    fn finish(&mut self) {
        let Some(timestamp) = self.ts.take() else {
            return;
        };
        let non_idr = std::mem::take(&mut self.non_idr);
        if self.au.is_empty() {
            return;
        }
        // The next unit is usually about as large: keep a buffer of that size.
        let next = Vec::with_capacity(self.au.len());
        let data = std::mem::replace(&mut self.au, next);
        self.done.push_back(AccessUnit {
            timestamp,
            random_access: !non_idr,
            loss: std::mem::take(&mut self.loss),
            new_parameters: std::mem::take(&mut self.params_changed),
            data,
        });
    }

    /// Drops the access unit in progress (its loss count stays for the next one).
    fn discard(&mut self) {
        self.au.clear();
        self.ts = None;
        self.fu = None;
        self.non_idr = false;
    }
}

fn trim_trailing_zeros(mut nal: &[u8]) -> &[u8] {
    while let [rest @ .., 0] = nal {
        nal = rest;
    }
    nal
}

/// The first SPS and PPS of an `AVCDecoderConfigurationRecord`.
fn sps_pps_of_avcc(avcc: &[u8]) -> Option<(&[u8], &[u8])> {
    let n_sps = avcc.get(5)? & 0x1f;
    let sized = |at: usize| -> Option<(&[u8], usize)> {
        let len = usize::from(u16::from_be_bytes([*avcc.get(at)?, *avcc.get(at + 1)?]));
        Some((avcc.get(at + 2..at + 2 + len)?, at + 2 + len))
    };
    if n_sps == 0 {
        return None;
    }
    let (sps, mut at) = sized(6)?;
    for _ in 1..n_sps {
        at = sized(at)?.1;
    }
    if *avcc.get(at)? == 0 {
        return None;
    }
    let (pps, _) = sized(at + 1)?;
    Some((sps, pps))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1e, 0x8c];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

    fn prefixed(nals: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for n in nals {
            v.extend_from_slice(&(n.len() as u32).to_be_bytes());
            v.extend_from_slice(n);
        }
        v
    }

    /// FU-A packets carrying `nal` in pieces of `size` payload bytes.
    fn fu_a(nal: &[u8], size: usize) -> Vec<Vec<u8>> {
        let chunks: Vec<&[u8]> = nal[1..].chunks(size).collect();
        let n = chunks.len();
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let mut p = vec![(nal[0] & 0xe0) | 28, nal[0] & 0x1f];
                if i == 0 {
                    p[1] |= 0x80;
                }
                if i == n - 1 {
                    p[1] |= 0x40;
                }
                p.extend_from_slice(c);
                p
            })
            .collect()
    }

    fn idr(len: usize) -> Vec<u8> {
        let mut v = vec![0x65, 0x88];
        v.extend((0..len).map(|i| (i % 251) as u8 | 1));
        v
    }

    fn stap_a(nals: &[&[u8]]) -> Vec<u8> {
        let mut v = vec![0x78];
        for n in nals {
            v.extend_from_slice(&(n.len() as u16).to_be_bytes());
            v.extend_from_slice(n);
        }
        v
    }

    #[test]
    fn single_stap_a_and_fu_a_make_one_access_unit() {
        let mut d = H264Depacketizer::new(None);
        let slice = idr(5000);
        let sei = [0x06, 0x05, 0x01, 0x80];
        d.push(0, false, 0, &stap_a(&[SPS, PPS, &sei])).unwrap();
        let fus = fu_a(&slice, 1400);
        let n = fus.len();
        for (i, p) in fus.iter().enumerate() {
            d.push(0, i == n - 1, 0, p).unwrap();
        }
        let au = d.pull().unwrap();
        assert_eq!(au.data, prefixed(&[&sei, &slice]));
        assert!(au.random_access && au.new_parameters);
        assert_eq!((au.timestamp, au.loss), (0, 0));
        assert_eq!(d.parameter_sets(), (SPS, PPS));
        // A P slice as a single NAL packet; the same parameter sets are no change.
        d.push(3600, false, 0, &stap_a(&[SPS, PPS])).unwrap();
        d.push(3600, true, 0, &[0x41, 0x9a, 0x01]).unwrap();
        let au = d.pull().unwrap();
        assert_eq!(au.data, prefixed(&[&[0x41, 0x9a, 0x01]]));
        assert!(!au.random_access && !au.new_parameters);
        assert!(d.pull().is_none());
    }

    #[test]
    fn a_timestamp_change_ends_a_unit_without_marker() {
        let mut d = H264Depacketizer::new(None);
        d.push(0, false, 0, &[0x41, 1]).unwrap();
        assert!(d.pull().is_none());
        d.push(3600, false, 0, &[0x41, 2]).unwrap();
        assert_eq!(d.pull().unwrap().data, prefixed(&[&[0x41, 1]]));
    }

    #[test]
    fn a_join_mid_fragment_costs_that_unit_only() {
        let mut d = H264Depacketizer::new(None);
        let fus = fu_a(&idr(4000), 1000);
        // Joined at the second fragment: one error, the rest of the unit skipped.
        let e = d.push(0, false, 0, &fus[1]).unwrap_err();
        assert!(e.contains("start bit unset"), "{e}");
        d.push(0, false, 0, &fus[2]).unwrap();
        d.push(0, true, 0, &fus[3]).unwrap();
        assert!(d.pull().is_none());
        d.push(3600, true, 0, &[0x41, 2]).unwrap();
        let au = d.pull().unwrap();
        assert_eq!((au.timestamp, au.loss), (3600, 0));
    }

    #[test]
    fn loss_drops_the_unit_and_is_reported_on_the_next() {
        let mut d = H264Depacketizer::new(None);
        let fus = fu_a(&idr(4000), 1000);
        d.push(0, false, 0, &fus[0]).unwrap();
        // fus[1] lost.
        d.push(0, false, 1, &fus[2]).unwrap();
        d.push(0, true, 0, &fus[3]).unwrap();
        assert!(d.pull().is_none());
        d.push(3600, true, 0, &[0x41, 2]).unwrap();
        let au = d.pull().unwrap();
        assert_eq!((au.timestamp, au.loss), (3600, 1));
        // The marker packet lost: the next unit's first packet ends the damaged one.
        d.push(7200, false, 0, &fus[0]).unwrap();
        d.push(10800, true, 2, &[0x41, 3]).unwrap();
        let au = d.pull().unwrap();
        assert_eq!((au.timestamp, au.loss, au.data.len()), (10800, 2, 6));
        assert!(d.pull().is_none());
    }

    #[test]
    fn malformed_payloads_are_errors_not_panics() {
        let mut d = H264Depacketizer::new(None);
        for bad in [
            &[][..],
            &[0x80, 1],
            &[0x1c],
            &[0x78, 0x00],
            &[0x78, 0x00, 0x09, 0x41],
            &[0x78, 0x00, 0x00],
            &[0x19, 1, 2],
            &[0x1f, 1],
        ] {
            assert!(d.push(0, true, 0, bad).is_err(), "{bad:?}");
            assert!(d.pull().is_none());
        }
        // A FU-A end without its marker bit, then a new timestamp: the unit is lost.
        let fus = fu_a(&idr(100), 60);
        d.push(1, false, 0, &fus[0]).unwrap();
        let e = d.push(2, true, 0, &[0x41, 5]).unwrap_err();
        assert!(e.contains("timestamp changed"), "{e}");
        // ...but the packet that changed it still counts.
        assert_eq!(d.pull().unwrap().data, prefixed(&[&[0x41, 5]]));
        // Still works afterwards.
        d.push(3, true, 0, &[0x41, 6]).unwrap();
        assert_eq!(d.pull().unwrap().timestamp, 3);
    }

    #[test]
    fn stray_start_codes_split_nals_and_trailing_zeros_go() {
        let mut d = H264Depacketizer::new(None);
        let mut p = vec![0x06, 0x05, 0x02];
        p.extend_from_slice(&[0, 0, 0, 1, 0x41, 0x9a, 7, 0, 0]);
        d.push(0, true, 0, &p).unwrap();
        let au = d.pull().unwrap();
        assert_eq!(au.data, prefixed(&[&[0x06, 0x05, 0x02], &[0x41, 0x9a, 7]]));
        assert!(!au.random_access);
    }

    /// Any packets (random bytes, and real payloads cut, reordered or
    /// lost): no panic, and every unit handed out is well formed: its length
    /// prefixes walk exactly to its end, no NAL is empty, holds a start code
    /// or is a parameter set.
    #[test]
    fn any_packets_give_well_formed_units_or_errors() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        let mut pool = vec![stap_a(&[SPS, PPS]), vec![0x41, 0x9a, 0, 0, 1, 0x41, 5]];
        pool.extend(fu_a(&idr(3000), 700));
        let packet = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            (0..pool.len(), 0..800usize).prop_map(move |(i, cut)| {
                let p = &pool[i];
                p[..cut.min(p.len())].to_vec()
            }),
        ];
        let stream = proptest::collection::vec((packet, 0..3i64, any::<bool>(), 0..2u16), 0..60);
        let mut runner = TestRunner::new(Config {
            cases: 300,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&stream, |pkts| {
                let mut d = H264Depacketizer::new(None);
                let mut ts = 0;
                for (payload, step, mark, loss) in pkts {
                    ts += step;
                    let _ = d.push(ts, mark, loss, &payload);
                    while let Some(au) = d.pull() {
                        let mut rest = &au.data[..];
                        prop_assert!(!rest.is_empty());
                        while !rest.is_empty() {
                            prop_assert!(rest.len() >= 5);
                            let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
                            prop_assert!(len >= 1 && 4 + len <= rest.len());
                            let nal = &rest[4..4 + len];
                            prop_assert!(!matches!(nal[0] & 0x1f, 7 | 8));
                            prop_assert!(memchr::memmem::find(nal, &[0, 0, 1]).is_none());
                            rest = &rest[4 + len..];
                        }
                    }
                }
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn parameter_sets_from_the_sdp_record_and_in_band_changes() {
        let mut avcc = vec![1, 0x42, 0xc0, 0x1e, 0xff, 0xe1];
        avcc.extend_from_slice(&(SPS.len() as u16).to_be_bytes());
        avcc.extend_from_slice(SPS);
        avcc.push(1);
        avcc.extend_from_slice(&(PPS.len() as u16).to_be_bytes());
        avcc.extend_from_slice(PPS);
        let mut d = H264Depacketizer::new(Some(&avcc));
        assert_eq!(d.parameter_sets(), (SPS, PPS));
        d.push(0, false, 0, SPS).unwrap();
        d.push(0, true, 0, &idr(10)).unwrap();
        assert!(!d.pull().unwrap().new_parameters);
        let pps2 = [0x68, 0xce, 0x3c, 0x81];
        d.push(1, false, 0, &pps2).unwrap();
        d.push(1, true, 0, &idr(10)).unwrap();
        assert!(d.pull().unwrap().new_parameters);
        assert_eq!(d.parameter_sets(), (SPS, &pps2[..]));
        assert!(sps_pps_of_avcc(&avcc[..10]).is_none());
    }
}
