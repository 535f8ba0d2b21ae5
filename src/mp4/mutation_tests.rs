//! CI's share of the fuzzing (docs/FUZZING.md): random mutations of real
//! segments (ffmpeg's, from the fuzz seeds, and our writer's) through every
//! reader a planted or torn file meets: `scan` (recovery), `read_init`,
//! `box_at` and `read_fragment` (playback and export). Bounded to a few
//! hundred cases so it runs in about a second; the cargo-fuzz target
//! `mp4_scan` explores the same space without a bound.

use std::io::Cursor;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use super::*;

/// ffmpeg's fragmented MP4s (H.264 + AAC with default-base-is-moof, H.265),
/// the committed seeds of the `mp4_scan` fuzz target.
const FFMPEG: [&[u8]; 2] = [
    include_bytes!("../../fuzz/seeds/mp4_scan/h264_aac.mp4"),
    include_bytes!("../../fuzz/seeds/mp4_scan/h265.mp4"),
];

/// A segment as the recorder writes it: H.264 and G.711-converted AAC, two
/// fragments.
fn ours() -> Vec<u8> {
    let avcc = avcc_from_parameter_sets(&[0x67, 0x42, 0xc0, 0x1e, 0xd9], &[0x68, 0xce]);
    let tracks = [
        TrackConfig {
            track_id: 1,
            kind: TrackKind::Video {
                width: 320,
                height: 240,
            },
            timescale: 90_000,
            sample_entry: avc1_sample_entry(320, 240, &avcc),
        },
        TrackConfig {
            track_id: 2,
            kind: TrackKind::Audio {
                sample_rate: 8000,
                channels: 1,
            },
            timescale: 8000,
            sample_entry: mp4a_sample_entry(8000, 1, &[0x15, 0x88], 32_000),
        },
    ];
    let mut f = Vec::new();
    write_init(&tracks, &mut f);
    for seq in 1..=2u32 {
        let v = [
            Sample {
                duration: 3600,
                size: 30,
                is_sync: true,
                composition_offset: 0,
            },
            Sample {
                duration: 3600,
                size: 12,
                is_sync: false,
                composition_offset: 0,
            },
        ];
        let a = [Sample {
            duration: 1024,
            size: 9,
            is_sync: true,
            composition_offset: 0,
        }];
        let runs = [
            TrackRun {
                track_id: 1,
                base_decode_time: u64::from(seq - 1) * 7200,
                samples: &v,
            },
            TrackRun {
                track_id: 2,
                base_decode_time: u64::from(seq - 1) * 1024,
                samples: &a,
            },
        ];
        write_fragment_header(seq, &runs, &mut f);
        f.extend(std::iter::repeat_n(seq as u8, 30 + 12 + 9));
    }
    f
}

/// Everything a reader may do with `data`; panics only on a broken invariant.
fn read_everything(data: &[u8]) {
    let len = data.len() as u64;
    if let Ok(s) = scan(Cursor::new(data)) {
        assert!(s.init_len <= s.valid_len && s.valid_len <= s.file_len);
        assert_eq!(s.torn_reason.is_some(), s.is_torn());
        let mut prev = s.init_len;
        for f in &s.fragments {
            assert!(prev <= f.offset && f.offset < f.end && f.end <= s.valid_len);
            prev = f.end;
        }
    }
    let mut r = Cursor::new(data);
    let Ok(init) = read_init(&mut r, len) else {
        return;
    };
    for t in &init.tracks {
        let _ = codec_string(&t.sample_entry);
    }
    let mut rewritten = Vec::new();
    write_init(&init.track_configs(), &mut rewritten);
    assert!(scan(Cursor::new(&rewritten)).is_ok(), "rewritten init");
    let mut pos = init.len;
    while let Ok(Some((fourcc, end))) = box_at(&mut r, pos, len) {
        assert!(end > pos);
        if &fourcc == b"moof" {
            if let Ok(mut f) = read_fragment(&mut r, &init, pos, len) {
                let _ = f.relocate(3, |_| 90_000);
                let _ = f.relocate(4, |_| i64::MIN);
            }
        }
        pos = end;
    }
}

#[test]
fn the_seeds_read_whole() {
    for (i, f) in FFMPEG.iter().enumerate() {
        let s = scan(Cursor::new(f)).unwrap_or_else(|e| panic!("seed {i}: {e}"));
        assert!(!s.is_torn() && s.fragments.len() >= 2, "seed {i}: {s:?}");
    }
    let s = scan(Cursor::new(ours())).unwrap();
    assert!(!s.is_torn() && s.fragments.len() == 2);
}

#[test]
fn random_mutations_of_real_segments_never_panic() {
    let seeds = [FFMPEG[0].to_vec(), FFMPEG[1].to_vec(), ours()];
    // (seed, [(position, value)] overwrites, bytes cut from the end)
    let case = (
        0..seeds.len(),
        // Half the edits land in the first 512 bytes, where the boxes are.
        prop::collection::vec((prop_oneof![0u32..512, any::<u32>()], any::<u8>()), 1..8),
        0usize..64,
    );
    let mut runner = TestRunner::new(Config {
        cases: 600,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&case, |(i, edits, cut)| {
            let mut f = seeds[i].clone();
            for (at, v) in edits {
                let at = at as usize % f.len();
                f[at] = v;
            }
            f.truncate(f.len().saturating_sub(cut));
            read_everything(&f);
            Ok(())
        })
        .unwrap();
}
