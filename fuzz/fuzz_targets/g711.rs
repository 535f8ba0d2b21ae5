//! G.711 audio from a camera: any payloads at any RTP times (lost, duplicated,
//! reordered, jumping packets) go through the converter without a panic or an
//! overflow, and every AAC frame it emits has a duration.
//!
//! Input: a start time (4 bytes), then packets of [delta: i32 BE][len: u8][payload].
#![no_main]

use cleannvr::ingest::g711::{G711ToAac, Law};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((head, mut rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let law = if head[0] & 1 == 0 { Law::Mu } else { Law::A };
    // retina's elapsed times: i64, starting anywhere a 32-bit RTP clock can.
    let mut pts = i64::from(i32::from_be_bytes(*head));
    let mut conv = G711ToAac::new(law, 8000, 1).expect("AAC encoder");
    let mut out = Vec::new();
    let mut packets = 0;
    while let Some((delta, tail)) = rest.split_first_chunk::<4>() {
        let Some((&n, tail)) = tail.split_first() else {
            break;
        };
        let n = usize::from(n).min(tail.len());
        let (payload, tail) = tail.split_at(n);
        rest = tail;
        pts = pts.saturating_add(i64::from(i32::from_be_bytes(*delta)));
        conv.push(pts, payload, &mut out).expect("conversion");
        packets += 1;
        if packets > 64 {
            break;
        }
    }
    for f in &out {
        assert!(f.duration > 0);
    }
});
