//! Hand-written text parsers on the attack surface: the demo camera's RTSP
//! request parser (any client that connects), the HTTP `Range` header, RFC
//! 3339 times from the command line and export manifests, and segment file
//! names found in the storage directory. The first byte picks the parser.
#![no_main]

use cleannvr::demo::rtsp::{parse_incoming, Incoming, MAX_HEADER_BYTES};
use cleannvr::web::media::{parse_range, RangeAnswer};
use cleannvr::{clock, store};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => match parse_incoming(rest) {
            Ok(Incoming::Request { consumed, .. }) => {
                assert!(consumed > 0 && consumed <= rest.len())
            }
            // Skip(0) would spin the connection loop forever.
            Ok(Incoming::Skip(n)) => assert!(n > 0 && n <= rest.len()),
            // Partial must not let a client grow the buffer without bound.
            Ok(Incoming::Partial) => assert!(rest.len() <= 2 * MAX_HEADER_BYTES + 4 + 65_535),
            Err(_) => {}
        },
        1 => {
            let Some((len, s)) = rest.split_first_chunk::<8>() else {
                return;
            };
            let len = u64::from_be_bytes(*len);
            let s = String::from_utf8_lossy(s);
            if let RangeAnswer::Partial(a, b) = parse_range(Some(&s), len) {
                assert!(a < b && b <= len, "{s:?} of {len}: {a}..{b}");
            }
        }
        2 => {
            let s = String::from_utf8_lossy(rest);
            let exact =
                time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
                    .map(|t| t.unix_timestamp_nanos());
            // A time i64 nanoseconds cannot hold is refused, never wrapped.
            assert_eq!(
                clock::parse_rfc3339(&s).map(i128::from),
                exact.ok().filter(|ns| i64::try_from(*ns).is_ok()),
                "{s:?}"
            );
            if let Some(ns) = clock::parse_rfc3339(&s) {
                // Whatever parses must format back to the same instant (to the ms).
                let ms = ns - ns.rem_euclid(1_000_000);
                assert_eq!(clock::parse_rfc3339(&clock::rfc3339(ns)), Some(ms), "{s:?}");
            }
        }
        _ => {
            let s = String::from_utf8_lossy(rest);
            if let Some(ns) = store::parse_segment_name(&s) {
                // A file name maps to exactly one start time and back.
                let path = store::segment_rel_path("c", ns);
                assert!(
                    path.ends_with(s.trim_end_matches(".part")),
                    "{s:?} -> {ns} -> {path}"
                );
            }
        }
    }
});
