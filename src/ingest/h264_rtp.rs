//! Our own RFC 6184 reassembly of H.264 RTP payloads (single NAL unit,
//! STAP-A, FU-A) into length-prefixed access units, for sessions on the raw
//! path (see `rtsp`). The reassembly itself is shared with
//! H.265 ([`super::nal_rtp`]); this is what is H.264's own: its payload and
//! NAL types, and its parameter sets (SPS, PPS) from the SDP's `avcC`.

use super::nal_rtp::{Depacketizer, NalCodec, NalKind, Packet};

pub use super::nal_rtp::AccessUnit;

/// H.264's RTP payload format (RFC 6184).
#[derive(Debug, Default)]
pub struct H264;

impl NalCodec for H264 {
    const HEADER: usize = 1;
    const PARAMETER_SETS: usize = 2;
    const AGGREGATE: &'static str = "STAP-A";
    const FRAGMENT: &'static str = "FU-A";
    const NAME: &'static str = "H.264";

    fn packet(payload: &[u8]) -> Result<Packet<'_>, String> {
        let hdr = payload[0];
        Ok(match hdr & 0x1f {
            1..=23 => Packet::Single,
            24 => Packet::Aggregate(&payload[1..]),
            28 => {
                let Some(&fu) = payload.get(1) else {
                    return Err("FU-A without its FU header".to_owned());
                };
                Packet::Fragment {
                    start: fu & 0x80 != 0,
                    end: fu & 0x40 != 0,
                    header: [(hdr & 0xe0) | (fu & 0x1f), 0],
                    body: &payload[2..],
                }
            }
            t => Packet::Unsupported(t),
        })
    }

    fn kind(nal: &[u8]) -> NalKind {
        match nal[0] & 0x1f {
            1..=4 => NalKind::NonKey,
            7 => NalKind::Parameters(0),
            8 => NalKind::Parameters(1),
            _ => NalKind::Other,
        }
    }
}

/// Reassembles one H.264 RTP stream.
pub type H264Depacketizer = Depacketizer<H264>;

impl Depacketizer<H264> {
    /// Starts with the parameter sets the SDP announced (from retina's
    /// `avcC` record), so in-band copies of the same ones are no change.
    pub fn new(avcc: Option<&[u8]>) -> Self {
        match avcc.and_then(sps_pps_of_avcc) {
            Some((sps, pps)) => Self::with_parameter_sets(&[sps, pps]),
            None => Self::with_parameter_sets(&[]),
        }
    }

    /// The latest SPS and PPS (NAL units without prefix); empty if none was seen.
    pub fn parameter_sets(&self) -> (&[u8], &[u8]) {
        (self.parameter_set(0), self.parameter_set(1))
    }
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
    use crate::ingest::nal_rtp::testing::{
        aggregate, any_packets_give_well_formed_units, prefixed,
    };

    const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1e, 0x8c];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

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
        aggregate(&[0x78], nals)
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

    /// Random and cut packets: errors or well-formed units (see [`any_packets_give_well_formed_units`]).
    #[test]
    fn any_packets_give_well_formed_units_or_errors() {
        let mut pool = vec![stap_a(&[SPS, PPS]), vec![0x41, 0x9a, 0, 0, 1, 0x41, 5]];
        pool.extend(fu_a(&idr(3000), 700));
        any_packets_give_well_formed_units::<H264>(pool);
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
