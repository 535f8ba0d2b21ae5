//! Any bytes in the storage directory: a torn segment after a crash, or a file
//! an attacker planted there. `scan` (recovery, `cleannvr check`) and the
//! playback/export readers (`read_init`, `box_at`, `read_fragment`,
//! `relocate`) must return a value or an error, never panic, hang or allocate
//! from an unchecked length; what they report must be self-consistent.
#![no_main]

use std::io::Cursor;

use cleannvr::mp4;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    let scanned = mp4::scan(Cursor::new(data));
    if let Ok(s) = &scanned {
        assert!(s.init_len <= s.valid_len && s.valid_len <= s.file_len);
        assert_eq!(s.torn_reason.is_some(), s.is_torn());
        let mut prev_end = s.init_len;
        for f in &s.fragments {
            assert!(prev_end <= f.offset && f.offset < f.end && f.end <= s.valid_len);
            prev_end = f.end;
        }
    }

    let mut r = Cursor::new(data);
    let Ok(init) = mp4::read_init(&mut r, len) else {
        return;
    };
    for t in &init.tracks {
        let _ = mp4::codec_string(&t.sample_entry);
        let _ = mp4::decoder_config(&t.sample_entry);
    }
    // Export writes a new init from what it read; our own scanner must accept it.
    let configs = init.track_configs();
    let mut rewritten = Vec::new();
    mp4::write_init(&configs, &mut rewritten);
    if let Err(e) = mp4::scan(Cursor::new(&rewritten)) {
        panic!("scan refuses the init written from {configs:?}: {e}");
    }

    // Playback walks the boxes after the init and reads each fragment; it also
    // reads at offsets the index gave (here: the ones scan found).
    let mut offsets = Vec::new();
    let mut pos = init.len;
    while let Ok(Some((fourcc, end))) = mp4::box_at(&mut r, pos, len) {
        assert!(end > pos);
        if &fourcc == b"moof" {
            offsets.push(pos);
        }
        pos = end;
    }
    if let Ok(s) = &scanned {
        offsets.extend(s.fragments.iter().map(|f| f.offset));
    }
    for offset in offsets.into_iter().take(64) {
        let Ok(mut f) = mp4::read_fragment(&mut r, &init, offset, len) else {
            continue;
        };
        for run in &f.runs {
            let _ = (run.duration(), run.bytes());
            if !run.samples.is_empty() {
                assert!(run.data_start.saturating_add(run.bytes()) <= f.end);
            }
        }
        let _ = f.relocate(7, |id| i64::from(id) * 90_000);
        let _ = f.relocate(u32::MAX, |_| i64::MIN);
        let _ = f.relocate(0, |_| i64::MAX);
    }
});
