//! Reassembly of H.26x RTP payloads into length-prefixed access units,
//! shared by H.264 (RFC 6184, [`super::h264_rtp`]) and H.265 (RFC 7798,
//! [`super::h265_rtp`]): both carry a NAL whole, several in one aggregation
//! packet with 16-bit sizes, or one in fragments, and differ only in header
//! sizes and type numbers, which each codec's [`NalCodec`] gives.
//!
//! Why our own: retina's depacketizers run every payload byte through a
//! start-code scanner, about a fifth of cleannvr's CPU with one camera
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

/// What one RTP payload is, by its payload header.
pub enum Packet<'a> {
    /// One NAL unit, the whole payload.
    Single,
    /// An aggregation packet: its NAL units, each after a 16-bit size.
    Aggregate(&'a [u8]),
    /// A piece of a fragmented NAL unit.
    Fragment {
        start: bool,
        end: bool,
        /// The NAL header rebuilt from the payload and fragment headers
        /// (its first [`NalCodec::HEADER`] bytes are used).
        header: [u8; 2],
        body: &'a [u8],
    },
    /// A payload type this format does not define (or we do not take).
    Unsupported(u8),
}

/// What a NAL unit is, for the access unit it is in.
pub enum NalKind {
    /// A slice that needs an earlier picture (the unit is no random access point).
    NonKey,
    /// Parameter set number `n` (kept out of the access unit).
    Parameters(usize),
    Other,
}

/// A codec's RTP payload format.
pub trait NalCodec: Default + std::fmt::Debug {
    /// Bytes of NAL (and payload) header.
    const HEADER: usize;
    /// How many kinds of parameter set the codec has (SPS, PPS...).
    const PARAMETER_SETS: usize;
    /// The aggregation and fragmentation packets' names, for errors.
    const AGGREGATE: &'static str;
    const FRAGMENT: &'static str;
    /// The codec, for errors.
    const NAME: &'static str;
    /// Tells a payload's kind; `payload` holds at least [`Self::HEADER`] bytes.
    fn packet(payload: &[u8]) -> Result<Packet<'_>, String>;
    /// Tells a NAL unit's kind; `nal` holds at least [`Self::HEADER`] bytes.
    fn kind(nal: &[u8]) -> NalKind;
}

/// One reassembled access unit.
#[derive(Debug, PartialEq, Eq)]
pub struct AccessUnit {
    /// 90 kHz RTP timestamp, extended (retina's `Timestamp::elapsed`).
    pub timestamp: i64,
    /// No slice in it needs an earlier picture (H.264: no non-IDR slice;
    /// H.265: IRAP slices only).
    pub random_access: bool,
    /// RTP packets lost since the previous access unit handed out.
    pub loss: u16,
    /// A parameter set changed before or in this unit (see [`Depacketizer::parameter_set`]).
    pub new_parameters: bool,
    /// Length-prefixed NAL units, parameter sets removed.
    pub data: Vec<u8>,
}

/// Reassembles one H.26x RTP stream.
#[derive(Debug, Default)]
pub struct Depacketizer<C: NalCodec> {
    /// The access unit in progress, length-prefixed.
    au: Vec<u8>,
    /// Its timestamp, while one is in progress.
    ts: Option<i64>,
    /// It holds a slice that is no random access point.
    non_key: bool,
    /// Offset in `au` of the length prefix of the fragmented NAL in progress.
    fu: Option<usize>,
    /// The rest of the access unit with this timestamp is skipped (loss or damage in it).
    skip: Option<i64>,
    /// Packets lost since the last unit handed out.
    loss: u16,
    /// The latest parameter sets, by [`NalKind::Parameters`] number.
    params: Vec<Vec<u8>>,
    params_changed: bool,
    done: VecDeque<AccessUnit>,
    codec: std::marker::PhantomData<C>,
}

impl<C: NalCodec> Depacketizer<C> {
    /// Starts with the parameter sets the SDP announced (in
    /// [`NalKind::Parameters`] order; empty if unknown), so in-band copies of
    /// the same ones are no change.
    pub fn with_parameter_sets(sets: &[&[u8]]) -> Self {
        let mut params = vec![Vec::new(); C::PARAMETER_SETS];
        for (kept, set) in params.iter_mut().zip(sets) {
            kept.extend_from_slice(set);
        }
        Self {
            params,
            ..Self::default()
        }
    }

    /// The latest parameter set number `n` (a NAL unit without prefix); empty if none was seen.
    pub fn parameter_set(&self, n: usize) -> &[u8] {
        self.params.get(n).map_or(&[], |p| &p[..])
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
        if payload.len() < C::HEADER {
            return Err(format!(
                "{}-byte RTP payload, shorter than its header",
                payload.len()
            ));
        }
        let (agg, frag) = (C::AGGREGATE, C::FRAGMENT);
        match C::packet(payload)? {
            Packet::Single => {
                if self.fu.is_some() {
                    return Err(format!(
                        "single NAL {hdr:02x} while a {frag} fragment is in progress"
                    ));
                }
                self.whole_nal(payload)
            }
            Packet::Aggregate(mut rest) => {
                if self.fu.is_some() {
                    return Err(format!("{agg} while a {frag} fragment is in progress"));
                }
                while !rest.is_empty() {
                    let Some((len, tail)) = rest.split_first_chunk::<2>() else {
                        return Err(format!("{agg} with a truncated NAL size"));
                    };
                    let len = usize::from(u16::from_be_bytes(*len));
                    if len < C::HEADER || len > tail.len() {
                        return Err(format!("{agg} NAL of {len} bytes with {} left", tail.len()));
                    }
                    let (nal, tail) = tail.split_at(len);
                    if nal[0] & 0x80 != 0 {
                        return Err(format!("{agg} NAL header {:02x} has the F bit set", nal[0]));
                    }
                    self.whole_nal(nal)?;
                    rest = tail;
                }
                Ok(())
            }
            Packet::Fragment {
                start,
                end,
                header,
                body,
            } => {
                match (start, self.fu) {
                    (true, Some(_)) => {
                        return Err(format!(
                            "{frag} start while another fragment is in progress"
                        ))
                    }
                    (true, None) => {
                        self.fu = Some(self.au.len());
                        self.au.extend_from_slice(&[0; 4]);
                        self.au.extend_from_slice(&header[..C::HEADER]);
                    }
                    (false, None) => {
                        return Err(format!(
                            "{frag} has start bit unset while no frag in progress"
                        ))
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
            Packet::Unsupported(t) => Err(format!(
                "unsupported NAL type {t} in an {} RTP payload",
                C::NAME
            )),
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
            if part.len() < C::HEADER {
                return Err(format!(
                    "{}-byte NAL after an Annex B start code",
                    part.len()
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
        if len < C::HEADER {
            return Err(format!("{len}-byte NAL unit, shorter than its header"));
        }
        let len32 = u32::try_from(len).map_err(|_| "NAL unit over 4 GiB".to_owned())?;
        self.au[at..at + 4].copy_from_slice(&len32.to_be_bytes());
        match C::kind(&self.au[at + 4..]) {
            NalKind::NonKey => self.non_key = true,
            NalKind::Parameters(n) => {
                let kept = &mut self.params[n];
                if kept[..] != self.au[at + 4..] {
                    kept.clear();
                    kept.extend_from_slice(&self.au[at + 4..]);
                    self.params_changed = true;
                }
                self.au.truncate(at);
            }
            NalKind::Other => {}
        }
        Ok(())
    }

    /// Hands out the access unit in progress, if it holds anything.
    fn finish(&mut self) {
        let Some(timestamp) = self.ts.take() else {
            return;
        };
        let non_key = std::mem::take(&mut self.non_key);
        if self.au.is_empty() {
            return;
        }
        // The next unit is usually about as large: keep a buffer of that size.
        let next = Vec::with_capacity(self.au.len());
        let data = std::mem::replace(&mut self.au, next);
        self.done.push_back(AccessUnit {
            timestamp,
            random_access: !non_key,
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
        self.non_key = false;
    }
}

fn trim_trailing_zeros(mut nal: &[u8]) -> &[u8] {
    while let [rest @ .., 0] = nal {
        nal = rest;
    }
    nal
}

/// Test helpers both codecs' tests use.
#[cfg(test)]
pub mod testing {
    use super::{Depacketizer, NalCodec, NalKind};
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    /// A packet stream for the depacketizers' property tests: random bytes
    /// and `pool`'s payloads cut to at most `max_cut` bytes, each with a
    /// timestamp step, a marker bit and a loss count.
    pub fn packet_streams(
        pool: Vec<Vec<u8>>,
        max_cut: usize,
    ) -> impl Strategy<Value = Vec<(Vec<u8>, i64, bool, u16)>> {
        let packet = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            (0..pool.len(), 0..max_cut).prop_map(move |(i, cut)| {
                let p = &pool[i];
                p[..cut.min(p.len())].to_vec()
            }),
        ];
        proptest::collection::vec((packet, 0..3i64, any::<bool>(), 0..2u16), 0..60)
    }

    /// 300 cases, nothing persisted.
    pub fn runner() -> TestRunner {
        TestRunner::new(Config {
            cases: 300,
            failure_persistence: None,
            ..Config::default()
        })
    }

    /// Length-prefixed `nals`, as an access unit's data.
    pub fn prefixed(nals: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for n in nals {
            v.extend_from_slice(&(n.len() as u32).to_be_bytes());
            v.extend_from_slice(n);
        }
        v
    }

    /// An aggregation packet of `nals` after the payload header `hdr`.
    pub fn aggregate(hdr: &[u8], nals: &[&[u8]]) -> Vec<u8> {
        let mut v = hdr.to_vec();
        for n in nals {
            v.extend_from_slice(&(n.len() as u16).to_be_bytes());
            v.extend_from_slice(n);
        }
        v
    }

    /// Any packets (random bytes, and `pool`'s payloads cut, reordered or
    /// lost): no panic, and every unit handed out is well formed: its length
    /// prefixes walk exactly to its end, no NAL is shorter than its header,
    /// holds a start code or is a parameter set.
    pub fn any_packets_give_well_formed_units<C: NalCodec>(pool: Vec<Vec<u8>>) {
        let stream = packet_streams(pool, 800);
        runner()
            .run(&stream, |pkts| {
                let mut d = Depacketizer::<C>::with_parameter_sets(&[]);
                let mut ts = 0;
                for (payload, step, mark, loss) in pkts {
                    ts += step;
                    let _ = d.push(ts, mark, loss, &payload);
                    while let Some(au) = d.pull() {
                        let mut rest = &au.data[..];
                        prop_assert!(!rest.is_empty());
                        while !rest.is_empty() {
                            prop_assert!(rest.len() >= 4 + C::HEADER);
                            let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
                            prop_assert!(len >= C::HEADER && 4 + len <= rest.len());
                            let nal = &rest[4..4 + len];
                            prop_assert!(!matches!(C::kind(nal), NalKind::Parameters(_)));
                            prop_assert!(memchr::memmem::find(nal, &[0, 0, 1]).is_none());
                            rest = &rest[4 + len..];
                        }
                    }
                }
                Ok(())
            })
            .unwrap();
    }
}
