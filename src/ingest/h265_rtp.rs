//! Our own RFC 7798 reassembly of H.265 RTP payloads (single NAL unit,
//! aggregation packets, fragmentation units) into length-prefixed access
//! units, for sessions on the raw path (see `rtsp`). The
//! reassembly itself is shared with H.264 ([`super::nal_rtp`]); this is what
//! is H.265's own: its two-byte headers and types, and its parameter sets
//! (VPS, SPS, PPS).
//!
//! Only streams without decoding order numbers are taken: the SDP's
//! `sprop-max-don-diff` is 0 or absent (`rtsp` leaves the others to
//! retina), so an aggregation packet is plain 16-bit sizes and NAL units.
//! PACI packets (type 50) are refused as damage.

use retina::codec::{FrameFormat, ParametersRef, VideoParameters};

use super::nal_rtp::{Depacketizer, NalCodec, NalKind, Packet};

/// H.265's RTP payload format (RFC 7798, without DONL/DOND).
#[derive(Debug, Default)]
pub struct H265;

/// The NAL unit type, from the first header byte.
fn nal_type(b0: u8) -> u8 {
    (b0 >> 1) & 0x3f
}

impl NalCodec for H265 {
    const HEADER: usize = 2;
    const PARAMETER_SETS: usize = 3;
    const AGGREGATE: &'static str = "AP";
    const FRAGMENT: &'static str = "FU";
    const NAME: &'static str = "H.265";

    fn packet(payload: &[u8]) -> Result<Packet<'_>, String> {
        Ok(match nal_type(payload[0]) {
            0..=47 => Packet::Single,
            48 => Packet::Aggregate(&payload[2..]),
            49 => {
                let Some(&fu) = payload.get(2) else {
                    return Err("FU without its FU header".to_owned());
                };
                Packet::Fragment {
                    start: fu & 0x80 != 0,
                    end: fu & 0x40 != 0,
                    // The payload header with the fragmented NAL's type in it.
                    header: [(payload[0] & 0x81) | ((fu & 0x3f) << 1), payload[1]],
                    body: &payload[3..],
                }
            }
            t => Packet::Unsupported(t),
        })
    }

    fn kind(nal: &[u8]) -> NalKind {
        match nal_type(nal[0]) {
            // Slices other than IRAP (16..=21, which key frames are made of).
            0..=15 | 22..=31 => NalKind::NonKey,
            32 => NalKind::Parameters(0),
            33 => NalKind::Parameters(1),
            34 => NalKind::Parameters(2),
            _ => NalKind::Other,
        }
    }
}

/// Reassembles one H.265 RTP stream.
pub type H265Depacketizer = Depacketizer<H265>;

impl Depacketizer<H265> {
    /// Starts with the parameter sets the SDP announced (`sprop-vps`,
    /// `-sps`, `-pps`, as retina parsed them), so in-band copies of the same
    /// ones are no change.
    pub fn new(sdp: Option<ParametersRef<'_>>) -> Self {
        match sdp {
            Some(ParametersRef::Video(v)) => match v.codec_params() {
                retina::codec::VideoParametersCodec::H265 { vps, sps, pps } => {
                    Self::with_parameter_sets(&[vps, sps, pps])
                }
                _ => Self::with_parameter_sets(&[]),
            },
            _ => Self::with_parameter_sets(&[]),
        }
    }

    /// The latest VPS, SPS and PPS (NAL units without prefix); empty if none was seen.
    pub fn parameter_sets(&self) -> (&[u8], &[u8], &[u8]) {
        (
            self.parameter_set(0),
            self.parameter_set(1),
            self.parameter_set(2),
        )
    }
}

/// retina's video parameters (with the `hvcC` record the MP4 sample entry
/// needs) for these parameter sets, built by retina exactly as its own
/// depacketizer builds them from an SDP or in-band change: retina 0.4 has no
/// public call for H.265 as it has for H.264, so they are handed to it as
/// the `sprop-*` attributes of a stream description.
pub fn parameters(vps: &[u8], sps: &[u8], pps: &[u8]) -> Result<VideoParameters, String> {
    use base64::Engine as _;
    let b64 = |nal: &[u8]| base64::engine::general_purpose::STANDARD.encode(nal);
    let fmtp = format!(
        "sprop-vps={};sprop-sps={};sprop-pps={}",
        b64(vps),
        b64(sps),
        b64(pps)
    );
    let mut d = retina::codec::Depacketizer::new("video", "h265", 90_000, None, Some(&fmtp))?;
    d.set_frame_format(FrameFormat::MP4);
    match d.parameters() {
        Some(ParametersRef::Video(v)) => Ok(v.clone()),
        // retina logs why it ignored them (at warn level).
        _ => Err("the VPS, SPS or PPS does not parse".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::nal_rtp::testing::{
        aggregate, any_packets_give_well_formed_units, prefixed,
    };

    const VPS: &[u8] = &[0x40, 0x01, 0x0c, 0x01];
    const SPS: &[u8] = &[0x42, 0x01, 0x01, 0x01];
    const PPS: &[u8] = &[0x44, 0x01, 0xc0, 0xf2];
    /// A TRAIL_R slice (type 1), which needs an earlier picture.
    const TRAIL: &[u8] = &[0x02, 0x01, 0xd0, 0x07];

    /// FU packets carrying `nal` in pieces of `size` payload bytes.
    fn fu(nal: &[u8], size: usize) -> Vec<Vec<u8>> {
        let chunks: Vec<&[u8]> = nal[2..].chunks(size).collect();
        let n = chunks.len();
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let mut p = vec![(nal[0] & 0x81) | (49 << 1), nal[1], nal_type(nal[0])];
                if i == 0 {
                    p[2] |= 0x80;
                }
                if i == n - 1 {
                    p[2] |= 0x40;
                }
                p.extend_from_slice(c);
                p
            })
            .collect()
    }

    /// A slice of NAL type `t` (19: IDR_W_RADL, 21: CRA) with `len` body bytes.
    fn slice(t: u8, len: usize) -> Vec<u8> {
        let mut v = vec![t << 1, 0x01];
        v.extend((0..len).map(|i| (i % 251) as u8 | 1));
        v
    }

    fn ap(nals: &[&[u8]]) -> Vec<u8> {
        aggregate(&[48 << 1, 0x01], nals)
    }

    #[test]
    fn single_ap_and_fu_make_one_access_unit() {
        let mut d = H265Depacketizer::new(None);
        let idr = slice(19, 5000);
        let sei = [0x4e, 0x01, 0x05, 0x01, 0x80];
        d.push(0, false, 0, &ap(&[VPS, SPS, PPS])).unwrap();
        d.push(0, false, 0, &sei).unwrap();
        let fus = fu(&idr, 1400);
        let n = fus.len();
        for (i, p) in fus.iter().enumerate() {
            d.push(0, i == n - 1, 0, p).unwrap();
        }
        let au = d.pull().unwrap();
        assert_eq!(au.data, prefixed(&[&sei, &idr]));
        assert!(au.random_access && au.new_parameters);
        assert_eq!((au.timestamp, au.loss), (0, 0));
        assert_eq!(d.parameter_sets(), (VPS, SPS, PPS));
        // A trailing slice; the same parameter sets again are no change.
        d.push(3000, false, 0, &ap(&[VPS, SPS, PPS])).unwrap();
        d.push(3000, true, 0, TRAIL).unwrap();
        let au = d.pull().unwrap();
        assert_eq!(au.data, prefixed(&[TRAIL]));
        assert!(!au.random_access && !au.new_parameters);
        // A CRA picture is a key frame too (IRAP), in one FU of one piece.
        let cra = slice(21, 10);
        d.push(6000, true, 0, &fu(&cra, 100)[0]).unwrap();
        let au = d.pull().unwrap();
        assert_eq!(au.data, prefixed(&[&cra]));
        assert!(au.random_access);
        assert!(d.pull().is_none());
    }

    #[test]
    fn loss_drops_the_unit_and_is_reported_on_the_next() {
        let mut d = H265Depacketizer::new(None);
        let fus = fu(&slice(19, 4000), 1000);
        d.push(0, false, 0, &fus[0]).unwrap();
        // fus[1] lost.
        d.push(0, false, 1, &fus[2]).unwrap();
        d.push(0, true, 0, &fus[3]).unwrap();
        assert!(d.pull().is_none());
        d.push(3000, true, 0, TRAIL).unwrap();
        let au = d.pull().unwrap();
        assert_eq!((au.timestamp, au.loss), (3000, 1));
        // Joined mid-fragment: one error, the rest of the unit skipped.
        let e = d.push(6000, false, 0, &fus[1]).unwrap_err();
        assert!(e.contains("FU has start bit unset"), "{e}");
        d.push(6000, true, 0, &fus[3]).unwrap();
        assert!(d.pull().is_none());
        d.push(9000, true, 0, TRAIL).unwrap();
        assert_eq!(d.pull().unwrap().timestamp, 9000);
    }

    #[test]
    fn malformed_payloads_are_errors_not_panics() {
        let mut d = H265Depacketizer::new(None);
        for bad in [
            &[][..],
            &[0x02],
            &[0x82, 0x01, 1],
            &[0x62, 0x01],
            &[0x60, 0x01, 0x00],
            &[0x60, 0x01, 0x00, 0x01, 0x02],
            &[0x60, 0x01, 0x00, 0x09, 0x02, 0x01],
            &[0x64, 0x01, 1, 2],
            &[0x7e, 0x01, 1],
        ] {
            assert!(d.push(0, true, 0, bad).is_err(), "{bad:?}");
            assert!(d.pull().is_none());
        }
        // Still works afterwards.
        d.push(1, true, 0, TRAIL).unwrap();
        assert_eq!(d.pull().unwrap().timestamp, 1);
    }

    /// Random and cut packets: errors or well-formed units (see [`any_packets_give_well_formed_units`]).
    #[test]
    fn any_packets_give_well_formed_units_or_errors() {
        let mut pool = vec![
            ap(&[VPS, SPS, PPS]),
            vec![0x02, 0x01, 0, 0, 1, 0x02, 0x01, 5],
        ];
        pool.extend(fu(&slice(19, 3000), 700));
        any_packets_give_well_formed_units::<H265>(pool);
    }

    /// Real parameter sets (retina's own test stream's): from the SDP, an
    /// in-band change, and the sample entry built from in-band sets is the
    /// one retina builds from the same sets in an SDP.
    #[test]
    fn parameter_sets_from_the_sdp_and_in_band_give_retinas_sample_entry() {
        use base64::Engine as _;
        let fmtp = "profile-id=1;\
            sprop-sps=QgEBAWAAAAMAsAAAAwAAAwBaoAWCAeFja5JFL83BQYFBAAADAAEAAAMADKE=;\
            sprop-pps=RAHA8saNA7NA;\
            sprop-vps=QAEMAf//AWAAAAMAsAAAAwAAAwBarAwAAAMABAAAAwAyqA==";
        let mut sdp =
            retina::codec::Depacketizer::new("video", "h265", 90_000, None, Some(fmtp)).unwrap();
        sdp.set_frame_format(FrameFormat::MP4);
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).unwrap();
        let vps = b64("QAEMAf//AWAAAAMAsAAAAwAAAwBarAwAAAMABAAAAwAyqA==");
        let sps = b64("QgEBAWAAAAMAsAAAAwAAAwBaoAWCAeFja5JFL83BQYFBAAADAAEAAAMADKE=");
        let pps = b64("RAHA8saNA7NA");
        let mut d = H265Depacketizer::new(sdp.parameters());
        assert_eq!(d.parameter_sets(), (&vps[..], &sps[..], &pps[..]));
        // In-band copies of the SDP's sets are no change; another PPS is.
        d.push(0, false, 0, &ap(&[&vps, &sps, &pps])).unwrap();
        d.push(0, true, 0, &slice(19, 10)).unwrap();
        assert!(!d.pull().unwrap().new_parameters);
        let pps2 = [0x44, 0x01, 0xc0, 0xf2, 0xc6, 0x8d, 0x03, 0xb4];
        d.push(1, false, 0, &pps2).unwrap();
        d.push(1, true, 0, &slice(19, 10)).unwrap();
        assert!(d.pull().unwrap().new_parameters);
        assert_eq!(d.parameter_set(2), &pps2[..]);
        let Some(ParametersRef::Video(want)) = sdp.parameters() else {
            panic!("no parameters from the SDP");
        };
        let got = parameters(&vps, &sps, &pps).unwrap();
        assert_eq!(got.pixel_dimensions(), want.pixel_dimensions());
        assert_eq!(got.rfc6381_codec(), want.rfc6381_codec());
        assert_eq!(got.extra_data(), want.extra_data());
        assert_eq!(
            got.mp4_sample_entry().build().unwrap(),
            want.mp4_sample_entry().build().unwrap()
        );
        assert!(parameters(&vps, &pps, &sps).is_err());
    }
}
