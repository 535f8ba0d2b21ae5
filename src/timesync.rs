//! The server clock's synchronisation record: while cleannvr runs it reads the kernel's
//! NTP state (`ntp_adjtime` with no changes, the call behind `adjtimex`/`timedatectl`)
//! every minute and keeps a small log in the index, so an export can say whether the
//! server's clock was NTP-synchronised over the exported range, and say "unknown"
//! honestly for the times nobody looked (server stopped, or an older cleannvr).
//!
//! A sample is stored when the state changes and at least every [`HEARTBEAT_NS`]; a stored
//! sample vouches for the time up to the next one only if that comes within
//! [`HEARTBEAT_NS`] plus a sampling interval. Reads the clock state only; never sets it.

use serde::{Deserialize, Serialize};

use crate::clock::{rfc3339, NS_PER_SEC};

/// How often the kernel state is read.
pub const INTERVAL_NS: i64 = 60 * NS_PER_SEC;
/// The longest time between stored samples while the state does not change.
pub const HEARTBEAT_NS: i64 = 10 * 60 * NS_PER_SEC;
/// How long a stored sample vouches for.
const VOUCH_NS: i64 = HEARTBEAT_NS + 2 * INTERVAL_NS;

/// The kernel's view of the clock at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// When it was read (server wall clock, ns since the epoch).
    pub time_ns: i64,
    /// NTP-synchronised: the kernel's state is not `TIME_ERROR` and `STA_UNSYNC` is clear.
    pub synced: bool,
    /// The kernel's maximum error estimate, µs (meaningful while synchronised).
    pub maxerror_us: i64,
    /// The kernel's estimated error, µs.
    pub esterror_us: i64,
}

/// Reads the kernel NTP state now (modes 0: nothing is changed). `None` where the call
/// is unavailable.
pub fn read_kernel(now_ns: i64) -> Option<Sample> {
    // SAFETY: timex is plain data; modes = 0 asks the kernel to read only.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::ntp_adjtime(&mut tx) };
    if state < 0 {
        return None;
    }
    let synced = state != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0;
    Some(Sample {
        time_ns: now_ns,
        synced,
        maxerror_us: tx.maxerror,
        esterror_us: tx.esterror,
    })
}

/// The stored samples, in the index tree `clock_sync`, keyed by time.
pub struct Log {
    tree: sled::Tree,
}

impl Log {
    /// Opens the log in `db`.
    pub fn open(db: &sled::Db) -> anyhow::Result<Log> {
        Ok(Log {
            tree: db.open_tree("clock_sync")?,
        })
    }

    /// Stores `s` if the state changed since the last stored sample or that one is older
    /// than [`HEARTBEAT_NS`]. Returns whether it was stored.
    pub fn note(&self, s: Sample) -> anyhow::Result<bool> {
        if let Some(last) = self.last()? {
            if last.synced == s.synced
                && s.time_ns >= last.time_ns
                && s.time_ns - last.time_ns < HEARTBEAT_NS
            {
                return Ok(false);
            }
        }
        self.tree
            .insert(s.time_ns.to_be_bytes(), serde_json::to_vec(&s)?)?;
        Ok(true)
    }

    fn last(&self) -> anyhow::Result<Option<Sample>> {
        match self.tree.last()? {
            Some((_, v)) => Ok(Some(serde_json::from_slice(&v)?)),
            None => Ok(None),
        }
    }

    /// Samples that say something about `[start, end)`: those inside it and the last one
    /// before it.
    pub fn around(&self, start_ns: i64, end_ns: i64) -> anyhow::Result<Vec<Sample>> {
        let mut out = Vec::new();
        if let Some(r) = self.tree.range(..start_ns.to_be_bytes()).next_back() {
            out.push(serde_json::from_slice(&r?.1)?);
        }
        for r in self
            .tree
            .range(start_ns.to_be_bytes()..end_ns.max(start_ns).to_be_bytes())
        {
            out.push(serde_json::from_slice(&r?.1)?);
        }
        Ok(out)
    }
}

/// One stretch of the range in one state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    /// Start (RFC 3339).
    pub start: String,
    /// End (RFC 3339).
    pub end: String,
    /// `synchronised`, `not synchronised` or `unknown`.
    pub state: String,
}

/// What is known of the server clock over a range, for a manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerClock {
    /// `synchronised` (all of the range), `not synchronised` (all of it), `unknown`
    /// (nothing recorded), or `mixed` (see `periods`).
    pub state: String,
    /// The same in plain words.
    pub summary: String,
    /// Largest kernel maximum-error estimate while synchronised in the range, ms.
    pub max_error_ms: Option<u64>,
    /// The range cut into stretches of one state.
    pub periods: Vec<Period>,
    /// How this was measured.
    pub method: String,
}

/// States `[start, end)` from `samples` (as [`Log::around`] returns them).
pub fn server_clock(samples: &[Sample], start_ns: i64, end_ns: i64) -> ServerClock {
    let mut raw: Vec<(i64, i64, &'static str)> = Vec::new();
    let mut push = |a: i64, b: i64, st: &'static str| {
        if b <= a {
            return;
        }
        match raw.last_mut() {
            Some(last) if last.2 == st && last.1 == a => last.1 = b,
            _ => raw.push((a, b, st)),
        }
    };
    let mut t = start_ns;
    let mut max_err: Option<i64> = None;
    for (i, s) in samples.iter().enumerate() {
        let next = samples.get(i + 1).map_or(i64::MAX, |n| n.time_ns);
        let vouched_to = next.min(s.time_ns.saturating_add(VOUCH_NS)).min(end_ns);
        let from = s.time_ns.max(start_ns);
        if vouched_to <= start_ns {
            continue;
        }
        push(t, from.max(t), "unknown");
        let st = if s.synced {
            "synchronised"
        } else {
            "not synchronised"
        };
        if s.synced {
            max_err = Some(max_err.unwrap_or(0).max(s.maxerror_us));
        }
        push(from.max(t), vouched_to, st);
        t = t.max(vouched_to);
    }
    push(t, end_ns, "unknown");
    let states: Vec<&str> = raw.iter().map(|p| p.2).collect();
    let state = match states.as_slice() {
        [] => "unknown",
        [one] => one,
        _ => "mixed",
    };
    let summary = match state {
        "synchronised" => "The server's clock was synchronised by NTP for the whole range.".into(),
        "not synchronised" => {
            "The server's clock was NOT synchronised by NTP during the range: its times may \
             be off by an unknown amount."
                .into()
        }
        "unknown" => "Unknown: no record of the server clock's synchronisation covers this \
                      range (the server was not running, or predates this record)."
            .into(),
        _ => "The server's clock was synchronised by NTP for only part of the range; see \
              the periods."
            .to_owned(),
    };
    ServerClock {
        state: state.into(),
        summary,
        max_error_ms: max_err.map(|us| (us.max(0) as u64).div_ceil(1000)),
        periods: raw
            .into_iter()
            .map(|(a, b, st)| Period {
                start: rfc3339(a),
                end: rfc3339(b),
                state: st.into(),
            })
            .collect(),
        method: "the kernel's NTP state (adjtimex: STA_UNSYNC / TIME_ERROR), read every \
                 minute while cleannvr runs"
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60 * NS_PER_SEC;

    fn s(min: i64, synced: bool) -> Sample {
        Sample {
            time_ns: min * MIN,
            synced,
            maxerror_us: 1500,
            esterror_us: 10,
        }
    }

    #[test]
    fn states_cover_the_range_and_gaps_are_unknown() {
        // Synchronised throughout.
        let c = server_clock(&[s(0, true), s(10, true)], 2 * MIN, 15 * MIN);
        assert_eq!(c.state, "synchronised", "{c:?}");
        assert_eq!(c.max_error_ms, Some(2));
        // Nothing recorded.
        assert_eq!(server_clock(&[], 0, MIN).state, "unknown");
        // A sample long before the range vouches for nothing in it.
        assert_eq!(
            server_clock(&[s(0, true)], 100 * MIN, 101 * MIN).state,
            "unknown"
        );
        // Lost sync half way.
        let c = server_clock(&[s(0, true), s(5, false)], 0, 10 * MIN);
        assert_eq!(c.state, "mixed");
        assert_eq!(c.periods.len(), 2);
        assert_eq!(c.periods[1].state, "not synchronised");
        // Server stopped for an hour in the middle.
        let c = server_clock(&[s(0, false), s(70, false)], 0, 80 * MIN);
        let states: Vec<&str> = c.periods.iter().map(|p| p.state.as_str()).collect();
        assert_eq!(states, ["not synchronised", "unknown", "not synchronised"]);
    }

    #[test]
    fn the_log_stores_changes_and_heartbeats() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let log = Log::open(&db).unwrap();
        assert!(log.note(s(0, true)).unwrap());
        assert!(!log.note(s(1, true)).unwrap());
        assert!(log.note(s(2, false)).unwrap());
        assert!(log.note(s(13, false)).unwrap());
        assert_eq!(
            log.around(5 * MIN, 20 * MIN).unwrap(),
            vec![s(2, false), s(13, false)]
        );
        assert!(
            read_kernel(0).is_some(),
            "ntp_adjtime(modes 0) works unprivileged"
        );
    }
}
