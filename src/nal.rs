//! NAL unit helpers shared by ingest, the MP4 writer, transcoding and the
//! demo camera: Annex B splitting, length-prefixed samples, key-frame tests.
//!
//! Owns: byte-level H.264/H.265 framing only; no parameter-set parsing
//! beyond the three bytes of an RFC 6381 string.

/// Splits an Annex B byte stream into NAL units (without start codes).
pub fn split_annex_b(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut start: Option<usize> = None;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            if let Some(s) = start {
                out.push(trim_trailing_zeros(&data[s..i]));
            }
            i += 3;
            start = Some(i);
        } else {
            i += 1;
        }
    }
    if let Some(s) = start {
        out.push(trim_trailing_zeros(&data[s..]));
    }
    out.retain(|n| !n.is_empty());
    out
}

/// A four-byte start code leaves its leading zero on the previous NAL.
fn trim_trailing_zeros(nal: &[u8]) -> &[u8] {
    let mut end = nal.len();
    while end > 0 && nal[end - 1] == 0 {
        end -= 1;
    }
    &nal[..end]
}

/// An encoder packet (Annex B) as an MP4 sample: 4-byte lengths instead of start codes,
/// without SPS/PPS (they are in the sample entry) or access unit delimiters (empty).
pub fn annex_b_to_sample(annex_b: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(annex_b.len() + 16);
    for nal in split_annex_b(annex_b) {
        if matches!(nal[0] & 0x1f, 7..=9) {
            continue;
        }
        data.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        data.extend_from_slice(nal);
    }
    data
}

/// `avc1.PPCCLL` from an SPS NAL unit (profile, constraint flags, level).
pub fn avc1_codec_string(sps: &[u8]) -> String {
    let b = |i: usize| sps.get(i).copied().unwrap_or(0);
    format!("avc1.{:02X}{:02X}{:02X}", b(1), b(2), b(3))
}

/// Whether a length-prefixed H.265 access unit holds an IRAP picture (BLA,
/// IDR or CRA, NAL types 16..=21). retina flags only IDR as a random access
/// point, but x265 (and cameras built on it) send CRA at every key frame;
/// without this no H.265 segment from them would ever roll over.
pub fn h265_has_irap(mut data: &[u8]) -> bool {
    while data.len() >= 5 {
        let len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let nal_type = (data[4] >> 1) & 0x3f;
        if (16..=21).contains(&nal_type) {
            return true;
        }
        data = len
            .checked_add(4)
            .and_then(|end| data.get(end..))
            .unwrap_or(&[]);
    }
    false
}

/// Whether a length-prefixed access unit begins its picture: its first slice
/// is the picture's first (H.264 `first_mb_in_slice` 0, H.265
/// `first_slice_segment_in_pic_flag`). A client that joins a stream between
/// two slices of a picture (a shared camera stream, or the first packets
/// lost before the client knew the sequence numbers) gets an access unit
/// that lacks the picture's top but carries no loss count; for a key frame
/// it would otherwise start a segment with a broken picture. A unit without
/// slices (parameter sets only) is not judged here: `true`.
pub fn starts_picture(h265: bool, mut data: &[u8]) -> bool {
    while data.len() >= 6 {
        let len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let nal = data.get(4..4 + len.min(data.len() - 4)).unwrap_or(&[]);
        let first_bit = |i: usize| nal.get(i).map(|b| b & 0x80 != 0);
        let verdict = if h265 {
            // VCL NAL types are 0..=31; the slice header follows the 2-byte NAL header.
            let t = nal.first().map(|b| (b >> 1) & 0x3f);
            matches!(t, Some(0..=31)).then(|| first_bit(2))
        } else {
            // Slices: non-IDR 1, partition A 2, IDR 5; `first_mb_in_slice` is
            // ue(v), a single 1 bit when it is 0.
            let t = nal.first().map(|b| b & 0x1f);
            matches!(t, Some(1 | 2 | 5)).then(|| first_bit(1))
        };
        if let Some(v) = verdict {
            return v.unwrap_or(false);
        }
        data = len
            .checked_add(4)
            .and_then(|end| data.get(end..))
            .unwrap_or(&[]);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_string_and_samples_from_encoder_output() {
        assert_eq!(
            avc1_codec_string(&[0x67, 0x64, 0x00, 0x1e, 0xac]),
            "avc1.64001E"
        );
        // AUD, SPS, PPS dropped; the slice gets a length prefix.
        let annex_b = [
            0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x65,
            0x88, 0x84,
        ];
        assert_eq!(
            annex_b_to_sample(&annex_b),
            vec![0, 0, 0, 3, 0x65, 0x88, 0x84]
        );
    }

    fn nal(t: u8, body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 2) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(&[t << 1, 1]);
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn h265_irap_detection() {
        let cra = [nal(39, &[1, 2]), nal(21, &[0; 10])].concat();
        assert!(h265_has_irap(&cra));
        assert!(h265_has_irap(&nal(19, &[0; 3])));
        assert!(!h265_has_irap(&nal(1, &[0; 30])));
        // Truncated or lying length prefixes end the walk instead of panicking.
        assert!(!h265_has_irap(&[0, 0, 0, 200, 2]));
        assert!(!h265_has_irap(&[]));
    }

    fn avc(t: u8, body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 1) as u32).to_be_bytes().to_vec();
        v.push(0x60 | t);
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn a_picture_without_its_first_slice_is_told_apart() {
        // H.264: SEI, then an IDR slice with first_mb_in_slice 0 (bit 1), or 1200 (not).
        let whole = [
            avc(6, &[5, 1]),
            avc(5, &[0x88, 0x84]),
            avc(5, &[0x00, 0x25]),
        ]
        .concat();
        assert!(starts_picture(false, &whole));
        let later = [avc(6, &[5, 1]), avc(5, &[0x00, 0x25, 0x90])].concat();
        assert!(!starts_picture(false, &later));
        assert!(starts_picture(false, &avc(1, &[0x9a, 0x21])));
        assert!(!starts_picture(false, &avc(1, &[0x5a, 0x21])));
        // H.265: VPS, then a CRA slice with first_slice_segment_in_pic_flag set, or not.
        assert!(starts_picture(
            true,
            &[nal(32, &[1]), nal(21, &[0xa0, 0])].concat()
        ));
        assert!(!starts_picture(
            true,
            &[nal(32, &[1]), nal(21, &[0x20, 0])].concat()
        ));
        // No slice at all, or a slice cut short: no panic.
        assert!(starts_picture(false, &avc(7, &[0x64, 0, 0x1f])));
        assert!(!starts_picture(false, &[0, 0, 0, 1, 0x65, 0, 0]));
        assert!(starts_picture(false, &[]));
    }

    #[test]
    fn annex_b_split_handles_3_and_4_byte_start_codes() {
        let data = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 9, 9,
        ];
        let nals = split_annex_b(&data);
        assert_eq!(
            nals,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 9, 9][..]]
        );
        assert!(split_annex_b(&[1, 2, 3]).is_empty());
        assert!(split_annex_b(&[]).is_empty());
    }
}
