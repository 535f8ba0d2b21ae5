//! What a video sample entry says about its codec: the decoder configuration
//! record inside it, and the RFC 6381 codec string browsers and the index use.
//! Deriving the string from the file keeps an index rebuilt by
//! `cleannvr check --repair` identical to the one the recorder wrote.

/// Size of a `VisualSampleEntry` before its child boxes: 8-byte box header, then 78
/// bytes of fixed fields (ISO 14496-12 12.1.3).
pub const VISUAL_ENTRY_FIXED: usize = 8 + 78;

/// The sample entry's fourcc and its decoder configuration record (`avcC`/`hvcC` body).
pub fn decoder_config(entry: &[u8]) -> Option<([u8; 4], &[u8])> {
    let fourcc: [u8; 4] = entry.get(4..8)?.try_into().ok()?;
    let want: &[u8; 4] = match &fourcc {
        b"avc1" | b"avc3" => b"avcC",
        b"hvc1" | b"hev1" => b"hvcC",
        _ => return None,
    };
    let mut rest = entry.get(VISUAL_ENTRY_FIXED..)?;
    while rest.len() >= 8 {
        let size = u32::from_be_bytes(rest[..4].try_into().ok()?) as usize;
        if size < 8 || size > rest.len() {
            return None;
        }
        if &rest[4..8] == want {
            return Some((fourcc, &rest[8..size]));
        }
        rest = &rest[size..];
    }
    None
}

/// RFC 6381 codec string of an `avc1`/`hvc1` sample entry, e.g. `avc1.42C01E`
/// or `hvc1.1.6.L93.B0` (ISO 14496-15 Annex E), in the form retina gives.
pub fn codec_string(entry: &[u8]) -> Option<String> {
    let (fourcc, rec) = decoder_config(entry)?;
    let name = std::str::from_utf8(&fourcc).ok()?;
    if fourcc.starts_with(b"avc") {
        // AVCDecoderConfigurationRecord: version, profile, compatibility, level.
        let p = rec.get(1..4)?;
        return Some(format!("{name}.{:02X}{:02X}{:02X}", p[0], p[1], p[2]));
    }
    // HEVCDecoderConfigurationRecord: version, then profile space/tier/idc,
    // 32 compatibility flags, 48 constraint bits, level.
    let b = rec.get(..13)?;
    let space = ["", "A", "B", "C"][usize::from(b[1] >> 6)];
    let tier = if b[1] & 0x20 != 0 { 'H' } else { 'L' };
    let idc = b[1] & 0x1f;
    let compat = u32::from_be_bytes([b[2], b[3], b[4], b[5]]).reverse_bits();
    let mut s = format!("{name}.{space}{idc}.{compat:X}.{tier}{}", b[12]);
    let constraints = &b[6..12];
    let used = constraints
        .iter()
        .rposition(|c| *c != 0)
        .map_or(0, |i| i + 1);
    for c in &constraints[..used] {
        s.push_str(&format!(".{c:02X}"));
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mp4::{avc1_sample_entry, avcc_from_parameter_sets};

    #[test]
    fn avc_codec_string() {
        let avcc = avcc_from_parameter_sets(&[0x67, 0x4d, 0x40, 0x1e, 0x9a], &[0x68, 0xce]);
        assert_eq!(
            codec_string(&avc1_sample_entry(640, 360, &avcc)).as_deref(),
            Some("avc1.4D401E")
        );
    }

    #[test]
    fn hevc_codec_string() {
        // Main profile, compatibility flags 0x60000000, level 3.1 (93), constraint byte 0x90.
        let mut rec = vec![1, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 93];
        rec.extend_from_slice(&[0xf0, 0, 0xfc, 0xfd, 0xf8, 0xf8, 0, 0x0f, 0]);
        let mut entry = vec![0u8; VISUAL_ENTRY_FIXED];
        entry[4..8].copy_from_slice(b"hvc1");
        entry.extend_from_slice(&((rec.len() + 8) as u32).to_be_bytes());
        entry.extend_from_slice(b"hvcC");
        entry.extend_from_slice(&rec);
        assert_eq!(codec_string(&entry).as_deref(), Some("hvc1.1.6.L93.90"));
        assert_eq!(codec_string(&entry[..VISUAL_ENTRY_FIXED + 10]), None);
    }
}
