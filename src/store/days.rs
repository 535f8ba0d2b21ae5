//! Which local days a camera has footage on, for the playback date picker.
//!
//! Walks the index one day at a time (one lookup per day with footage, not one
//! per segment), so months of one-minute segments cost a few dozen lookups.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::{decode, key, SegmentRecord, Store};

impl Store {
    /// The first segment of `camera` that covers `t_ns` or starts after it.
    pub fn first_from(&self, camera: &str, t_ns: i64) -> anyhow::Result<Option<SegmentRecord>> {
        // The segment that started before `t_ns` may still cover it.
        if let Some(item) = self
            .segments
            .range(key(camera, i64::MIN)..key(camera, t_ns))
            .next_back()
        {
            let rec = decode(&item?.1)?;
            if rec.end_ns > t_ns {
                return Ok(Some(rec));
            }
        }
        match self
            .segments
            .range(key(camera, t_ns)..=key(camera, i64::MAX))
            .next()
        {
            Some(item) => Ok(Some(decode(&item?.1)?)),
            None => Ok(None),
        }
    }

    /// The days in `tz`, oldest first, on which `camera` has any footage (a
    /// segment running past midnight counts for both days).
    pub fn days_with_footage(&self, camera: &str, tz: &TimeZone) -> anyhow::Result<Vec<Date>> {
        let mut days = Vec::new();
        let mut t = i64::MIN;
        while let Some(seg) = self.first_from(camera, t)? {
            let Some(day) = local_day(seg.start_ns.max(t), tz) else {
                break;
            };
            days.push(day);
            // On to the next local midnight (days of 23 or 25 hours included).
            let Some(next) = day
                .tomorrow()
                .ok()
                .and_then(|d| d.to_zoned(tz.clone()).ok())
                .and_then(|z| i64::try_from(z.timestamp().as_nanosecond()).ok())
            else {
                break;
            };
            t = next;
        }
        Ok(days)
    }
}

fn local_day(ns: i64, tz: &TimeZone) -> Option<Date> {
    let ts = Timestamp::from_nanosecond(i128::from(ns)).ok()?;
    Some(ts.to_zoned(tz.clone()).date())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::segment_rel_path;

    fn seg(camera: &str, start: &str, len_s: i64) -> SegmentRecord {
        let start_ns = i64::try_from(start.parse::<Timestamp>().unwrap().as_nanosecond()).unwrap();
        SegmentRecord {
            camera: camera.into(),
            start_ns,
            end_ns: start_ns + len_s * 1_000_000_000,
            path: segment_rel_path(camera, start_ns),
            bytes: 10,
            codec: "avc1.42c01e".into(),
            width: 640,
            height: 360,
            frames: 25,
            has_audio: false,
            keyframes: vec![(0, 900)],
            drift_ms: 0,
            archived: None,
        }
    }

    #[test]
    fn days_are_local_to_the_zone_and_count_segments_across_midnight() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ny = TimeZone::get("America/New_York").unwrap();
        // 03:30 UTC on the 2nd is 22:30 on the 1st in New York.
        store.insert(&seg("a", "2026-03-02T03:30:00Z", 60)).unwrap();
        store.insert(&seg("a", "2026-03-02T03:31:00Z", 60)).unwrap();
        // Runs across New York's midnight (05:00 UTC): the 4th and the 5th.
        store.insert(&seg("a", "2026-03-05T04:59:30Z", 60)).unwrap();
        // 23:59 on the 6th, ending exactly at midnight: the 7th gets nothing.
        store.insert(&seg("a", "2026-03-07T04:59:00Z", 60)).unwrap();
        // 23:59 on the 8th, after the clocks went forward (EDT, UTC-4).
        store.insert(&seg("a", "2026-03-09T03:59:00Z", 30)).unwrap();
        store.insert(&seg("b", "2026-03-20T12:00:00Z", 60)).unwrap();
        let got: Vec<String> = store
            .days_with_footage("a", &ny)
            .unwrap()
            .iter()
            .map(|d| d.to_string())
            .collect();
        assert_eq!(
            got,
            [
                "2026-03-01",
                "2026-03-04",
                "2026-03-05",
                "2026-03-06",
                "2026-03-08"
            ]
        );
        let utc: Vec<String> = store
            .days_with_footage("a", &TimeZone::UTC)
            .unwrap()
            .iter()
            .map(|d| d.to_string())
            .collect();
        assert_eq!(
            utc,
            ["2026-03-02", "2026-03-05", "2026-03-07", "2026-03-09"]
        );
        assert!(store.days_with_footage("c", &ny).unwrap().is_empty());
    }
}
