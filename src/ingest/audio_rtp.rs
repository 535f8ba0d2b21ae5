//! Our own depacketizers for the sound beside video on the raw path (see
//! `rtsp`): G.711 (RFC 3551: the payload is the samples) and AAC as
//! `mpeg4-generic` in AAC-hbr mode (RFC 3640: a 16-bit AU-headers-length in
//! bits, then per access unit a 13-bit size and a 3-bit index, then the
//! units; one unit may be split over packets, its last one marked).
//!
//! Why: a session retina demultiplexes has its metadata track reassembled
//! without a size cap, so sessions with sound left that track alone. With
//! sound read here too, every H.264/H.265 session with G.711 or AAC-hbr sound
//! reads its metadata track, capped (`metadata_rtp`).
//!
//! The frames are those retina's demuxer gave: one per AAC access unit,
//! stamped with its packet's timestamp plus its place times the frame length;
//! one per G.711 packet. Loss costs only the frames it touches: a unit cut by
//! a lost packet or a malformed payload is dropped, the lost packets are
//! reported with the next frame handed out, and nothing else changes.

use std::collections::VecDeque;

use bytes::Bytes;

/// One audio frame as the camera sent it (AAC access unit, or G.711 samples).
#[derive(Debug, PartialEq, Eq)]
pub struct RawAudioFrame {
    /// RTP timestamp (audio clock), extended.
    pub pts: i64,
    /// In audio ticks (AAC: the frame length; G.711: its samples).
    pub duration: u32,
    /// RTP packets lost since the previous frame handed out.
    pub loss: u16,
    pub data: Bytes,
}

/// Reassembles one audio RTP stream.
#[derive(Debug)]
pub enum AudioDepacketizer {
    /// AAC-hbr, with the frame length (samples per access unit, 1024 or 960).
    Aac(AacDepacketizer),
    /// G.711 with this many channels.
    G711 {
        channels: u16,
        loss: u16,
        done: Option<RawAudioFrame>,
    },
}

impl AudioDepacketizer {
    pub fn aac(frame_length: u32) -> Self {
        Self::Aac(AacDepacketizer::new(frame_length))
    }

    pub fn g711(channels: u16) -> Self {
        Self::G711 {
            channels: channels.max(1),
            loss: 0,
            done: None,
        }
    }

    /// Takes one RTP packet: its extended timestamp, marker bit, the packets
    /// lost just before it, and its payload. `Err` says what was dropped.
    pub fn push(&mut self, ts: i64, mark: bool, loss: u16, payload: &[u8]) -> Result<(), String> {
        match self {
            Self::Aac(d) => d.push(ts, mark, loss, payload),
            Self::G711 {
                channels,
                loss: lost,
                done,
            } => {
                *lost = lost.saturating_add(loss);
                let samples = payload.len() / usize::from(*channels);
                if samples == 0 || !payload.len().is_multiple_of(usize::from(*channels)) {
                    return Err(format!(
                        "G.711 packet of {} bytes is no whole number of {}-channel samples",
                        payload.len(),
                        channels
                    ));
                }
                // The caller pulls after each push; a frame not pulled is replaced.
                *done = Some(RawAudioFrame {
                    pts: ts,
                    duration: u32::try_from(samples).unwrap_or(u32::MAX),
                    loss: std::mem::take(lost),
                    data: Bytes::copy_from_slice(payload),
                });
                Ok(())
            }
        }
    }

    /// The next complete frame, if any.
    pub fn pull(&mut self) -> Option<RawAudioFrame> {
        match self {
            Self::Aac(d) => d.done.pop_front(),
            Self::G711 { done, .. } => done.take(),
        }
    }
}

/// An AAC access unit split over packets, so far.
#[derive(Debug)]
struct Fragment {
    ts: i64,
    size: usize,
    buf: Vec<u8>,
}

/// RFC 3640 AAC-hbr reassembly.
#[derive(Debug)]
pub struct AacDepacketizer {
    frame_length: u32,
    frag: Option<Fragment>,
    /// Packets lost since the last frame handed out.
    loss: u16,
    done: VecDeque<RawAudioFrame>,
}

impl AacDepacketizer {
    fn new(frame_length: u32) -> Self {
        AacDepacketizer {
            frame_length,
            frag: None,
            loss: 0,
            done: VecDeque::new(),
        }
    }

    fn push(&mut self, ts: i64, mark: bool, loss: u16, payload: &[u8]) -> Result<(), String> {
        self.loss = self.loss.saturating_add(loss);
        if loss > 0 {
            // The unit in progress lost a piece; a continuation of it that
            // follows is caught below (no fragment to continue).
            self.frag = None;
        }
        let Some(bits) = payload.get(..2) else {
            self.frag = None;
            return Err("AAC packet too short for its AU-headers-length".to_owned());
        };
        let bits = u16::from_be_bytes([bits[0], bits[1]]);
        if bits == 0 || !bits.is_multiple_of(16) {
            self.frag = None;
            return Err(format!(
                "AAC AU-headers-length of {bits} bits is no whole number of 16-bit AU headers"
            ));
        }
        let n = usize::from(bits / 16);
        let data_at = 2 + 2 * n;
        let Some(data) = payload.get(data_at..) else {
            self.frag = None;
            return Err(format!("AAC packet too short for its {n} AU headers"));
        };
        let header = |i: usize| {
            let h = u16::from_be_bytes([payload[2 + 2 * i], payload[3 + 2 * i]]);
            (usize::from(h >> 3), h & 7)
        };
        if let Some(mut f) = self.frag.take() {
            let (size, _) = header(0);
            if n != 1 || size != f.size || ts != f.ts {
                return Err(
                    "AAC access unit cut short: a packet that does not continue it".to_owned(),
                );
            }
            let len = f.buf.len() + data.len();
            if len > size || (mark && len < size) || (!mark && len == size) {
                return Err(format!(
                    "AAC fragments of {len} bytes for an access unit of {size} (marker bit {mark})"
                ));
            }
            f.buf.extend_from_slice(data);
            if mark {
                self.emit(f.ts, 0, Bytes::from(f.buf));
            } else {
                self.frag = Some(f);
            }
            return Ok(());
        }
        let mut at = 0;
        let mut frames = Vec::with_capacity(n);
        for i in 0..n {
            let (size, index) = header(i);
            if index != 0 {
                return Err(format!(
                    "interleaved AAC (AU index {index}) is not supported; packet dropped"
                ));
            }
            let rest = data.len() - at;
            if size > rest {
                if n == 1 && !mark {
                    // The first piece of a unit split over packets.
                    let mut buf = Vec::with_capacity(size);
                    buf.extend_from_slice(data);
                    self.frag = Some(Fragment { ts, size, buf });
                    return Ok(());
                }
                return Err(format!(
                    "AAC AU header {i} says {size} bytes, the packet has {rest} left"
                ));
            }
            frames.push(&data[at..at + size]);
            at += size;
        }
        if !mark {
            return Err("AAC packet of whole access units without its marker bit".to_owned());
        }
        for (i, f) in frames.into_iter().enumerate() {
            self.emit(ts, i, Bytes::copy_from_slice(f));
        }
        Ok(())
    }

    fn emit(&mut self, ts: i64, i: usize, data: Bytes) {
        let delta = i64::from(self.frame_length) * i64::try_from(i).unwrap_or(0);
        self.done.push_back(RawAudioFrame {
            pts: ts.saturating_add(delta),
            duration: self.frame_length,
            loss: std::mem::take(&mut self.loss),
            data,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An AAC-hbr packet of whole `units`.
    fn aac(units: &[&[u8]]) -> Vec<u8> {
        let mut v = ((units.len() * 16) as u16).to_be_bytes().to_vec();
        for u in units {
            v.extend_from_slice(&((u.len() as u16) << 3).to_be_bytes());
        }
        for u in units {
            v.extend_from_slice(u);
        }
        v
    }

    /// Packets carrying one `unit` in pieces of `size` bytes.
    fn aac_fragments(unit: &[u8], size: usize) -> Vec<Vec<u8>> {
        unit.chunks(size)
            .map(|c| {
                let mut v = vec![0, 16];
                v.extend_from_slice(&((unit.len() as u16) << 3).to_be_bytes());
                v.extend_from_slice(c);
                v
            })
            .collect()
    }

    fn unit(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(7) ^ seed).collect()
    }

    fn pull_all(d: &mut AudioDepacketizer) -> Vec<RawAudioFrame> {
        std::iter::from_fn(|| d.pull()).collect()
    }

    #[test]
    fn aac_units_of_one_packet_are_stamped_one_frame_length_apart() {
        let mut d = AudioDepacketizer::aac(1024);
        let (a, b, c) = (unit(300, 1), unit(5, 2), unit(200, 3));
        d.push(1000, true, 0, &aac(&[&a, &b, &c])).unwrap();
        let got = pull_all(&mut d);
        let want: Vec<_> = [(1000, &a), (2024, &b), (3048, &c)]
            .into_iter()
            .map(|(pts, u)| RawAudioFrame {
                pts,
                duration: 1024,
                loss: 0,
                data: Bytes::copy_from_slice(u),
            })
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_fragmented_aac_unit_is_joined_and_a_lost_piece_costs_only_it() {
        let mut d = AudioDepacketizer::aac(1024);
        let big = unit(3000, 9);
        let frags = aac_fragments(&big, 1200);
        assert_eq!(frags.len(), 3);
        for (i, p) in frags.iter().enumerate() {
            d.push(0, i == 2, 0, p).unwrap();
        }
        let got = pull_all(&mut d);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].data, big);

        // The middle piece lost: that unit is dropped, the next one is
        // whole and carries the loss.
        d.push(1024, false, 0, &frags[0]).unwrap();
        assert!(d.push(1024, true, 1, &frags[2]).is_err());
        assert!(d.pull().is_none());
        let small = unit(100, 4);
        d.push(2048, true, 0, &aac(&[&small])).unwrap();
        let got = pull_all(&mut d);
        assert_eq!(
            got,
            vec![RawAudioFrame {
                pts: 2048,
                duration: 1024,
                loss: 1,
                data: Bytes::from(small),
            }]
        );
    }

    #[test]
    fn malformed_aac_packets_are_errors_and_the_next_one_still_reads() {
        let mut d = AudioDepacketizer::aac(1024);
        let u = unit(50, 5);
        let mut short = aac(&[&u, &u]);
        short.truncate(short.len() - 1);
        let mut interleaved = aac(&[&u]);
        interleaved[3] |= 1;
        let mut odd_bits = aac(&[&u]);
        odd_bits[1] = 13;
        for bad in [vec![], vec![0], vec![0, 0], short, interleaved, odd_bits] {
            assert!(d.push(0, true, 0, &bad).is_err(), "{bad:?}");
            assert!(d.pull().is_none());
        }
        // Whole units without the marker bit: as retina, an error.
        assert!(d.push(0, false, 0, &aac(&[&u])).is_err());
        d.push(1024, true, 0, &aac(&[&u])).unwrap();
        assert_eq!(pull_all(&mut d).len(), 1);
    }

    #[test]
    fn g711_packets_are_frames_of_their_samples() {
        let mut d = AudioDepacketizer::g711(1);
        d.push(160, true, 2, &[0x7f; 160]).unwrap();
        let got = pull_all(&mut d);
        assert_eq!(
            got,
            vec![RawAudioFrame {
                pts: 160,
                duration: 160,
                loss: 2,
                data: Bytes::from(vec![0x7f; 160]),
            }]
        );
        assert!(d.push(320, false, 0, &[]).is_err());
        let mut stereo = AudioDepacketizer::g711(2);
        assert!(stereo.push(0, false, 0, &[1, 2, 3]).is_err());
        stereo.push(0, false, 0, &[1, 2, 3, 4]).unwrap();
        assert_eq!(stereo.pull().unwrap().duration, 2);
    }

    /// Random packets, and real ones cut, reordered or lost: no panic, and
    /// every frame is one the camera sent whole (AAC units here are made of
    /// one repeated byte, so a frame is whole if it is all one byte with a
    /// length from the pool).
    #[test]
    fn any_aac_packets_give_whole_frames_or_errors() {
        let sizes = [1usize, 7, 200, 1500, 3000];
        let mut pool = Vec::new();
        for (k, &s) in sizes.iter().enumerate() {
            let u = vec![k as u8 + 1; s];
            if s > 1000 {
                pool.extend(aac_fragments(&u, 700));
            } else {
                pool.push(aac(&[&u, &u]));
                pool.push(aac(&[&u]));
            }
        }
        let stream = crate::ingest::nal_rtp::testing::packet_streams(pool, 1600);
        crate::ingest::nal_rtp::testing::runner()
            .run(&stream, |pkts| {
                let mut d = AudioDepacketizer::aac(1024);
                let mut ts = 0;
                for (payload, step, mark, loss) in pkts {
                    ts += step;
                    let pushed = d.push(ts, mark, loss, &payload);
                    while let Some(f) = d.pull() {
                        prop_assert!(pushed.is_ok());
                        prop_assert_eq!(f.duration, 1024);
                        prop_assert!(f.pts >= ts && (f.pts - ts) % 1024 == 0);
                        // A random packet's unit is short; a pool unit
                        // (one repeated byte) comes out whole or not at all.
                        if f.data.len() > 40 {
                            let b = f.data[0];
                            prop_assert!((1..=5).contains(&b));
                            prop_assert!(f.data.iter().all(|&x| x == b));
                            prop_assert_eq!(f.data.len(), sizes[usize::from(b) - 1]);
                        }
                        prop_assert!(f.data.len() < 8192);
                    }
                }
                Ok(())
            })
            .unwrap();
    }
}
