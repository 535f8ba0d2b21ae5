//! Bytes a camera sends as video, after retina's depacketization: our Annex B
//! splitting and length-prefixed samples, the H.265 key frame test, codec
//! strings from an SPS or a sample entry, and the damage bookkeeping that
//! decides what a lost packet costs. None may panic on any input.
#![no_main]

use cleannvr::ingest::damage::{error_action, Damage, Verdict};
use cleannvr::{mp4, nal};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let nals = nal::split_annex_b(data);
    for n in &nals {
        assert!(!n.is_empty());
        assert!(!n.windows(3).any(|w| w == [0, 0, 1]));
    }
    let sample = nal::annex_b_to_sample(data);
    // The sample is a walk of 4-byte lengths that ends exactly at its end.
    let mut rest = &sample[..];
    while !rest.is_empty() {
        let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        assert!(n > 0 && 4 + n <= rest.len());
        rest = &rest[4 + n..];
    }
    let _ = nal::h265_has_irap(&sample);
    let _ = nal::h265_has_irap(data);
    let _ = nal::avc1_codec_string(data);
    let _ = mp4::codec_string(data);
    let _ = mp4::decoder_config(data);

    // Damage: any error text and any sequence of (loss, key) frames.
    let _ = error_action(&String::from_utf8_lossy(data));
    let mut d = Damage::default();
    let mut waiting = false;
    for &b in data {
        match b & 3 {
            0 => waiting |= d.error(),
            _ => {
                let loss = u16::from(b >> 3);
                let key = b & 4 != 0;
                match d.frame(loss, key) {
                    Verdict::Keep => assert!(loss == 0),
                    Verdict::Drop { .. } => {}
                }
            }
        }
    }
    let _ = waiting;
});
