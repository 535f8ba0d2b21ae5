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
