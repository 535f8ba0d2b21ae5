//! The latest isolation audit of each camera, kept in the index (`isolation_audits`
//! tree) so the Code of Practice report can show when each camera was last shown to
//! have no route out, and what was found. Written whenever an audit runs; only the
//! newest result per camera is kept (the audit log of actions is elsewhere).

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::audit::{IsolationReport, Level};

/// What one audit concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every setting was read and none is a route out of the LAN.
    Isolated,
    /// Some setting is a possible route out (a gateway, an outside DNS or NTP server).
    RouteOut,
    /// No route out was found, but the camera withheld some setting.
    NotShown,
    /// The camera could not be audited (unreachable, refused).
    Failed,
}

impl Verdict {
    /// In words, for the report.
    pub fn words(self) -> &'static str {
        match self {
            Verdict::Isolated => "isolated",
            Verdict::RouteOut => "possible route out",
            Verdict::NotShown => "isolation not shown (settings withheld)",
            Verdict::Failed => "audit failed",
        }
    }
}

/// One camera's latest audit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Camera id.
    pub camera: String,
    /// When it ran, ns since the epoch.
    pub time_ns: i64,
    /// Who ran it (a user name, or `cli`).
    pub by: String,
    /// The conclusion.
    pub verdict: Verdict,
    /// The findings that are not fine (warnings and unknowns), or why it failed.
    pub findings: Vec<String>,
}

impl Record {
    /// The record of a finished audit (`Err`: the camera could not be audited).
    pub fn of(
        camera: &str,
        time_ns: i64,
        by: &str,
        result: Result<&IsolationReport, String>,
    ) -> Record {
        let (verdict, findings) = match result {
            Err(e) => (Verdict::Failed, vec![e]),
            Ok(r) => {
                let verdict = if r.has_route_out() {
                    Verdict::RouteOut
                } else if r.findings.iter().any(|f| f.level == Level::Unknown) {
                    Verdict::NotShown
                } else {
                    Verdict::Isolated
                };
                let notable = r
                    .findings
                    .iter()
                    .filter(|f| matches!(f.level, Level::Warning | Level::Unknown))
                    .map(|f| f.message.clone())
                    .collect();
                (verdict, notable)
            }
        };
        Record {
            camera: camera.to_owned(),
            time_ns,
            by: by.to_owned(),
            verdict,
            findings,
        }
    }
}

/// The `isolation_audits` tree: camera id → its latest [`Record`].
pub struct Records {
    tree: sled::Tree,
}

impl Records {
    /// Opens the tree in the index.
    pub fn open(db: &sled::Db) -> anyhow::Result<Records> {
        Ok(Records {
            tree: db
                .open_tree("isolation_audits")
                .context("opening the isolation_audits tree")?,
        })
    }

    /// Keeps `r` as its camera's latest audit (flushed: it is evidence for a review).
    pub fn put(&self, r: &Record) -> anyhow::Result<()> {
        self.tree
            .insert(r.camera.as_bytes(), serde_json::to_vec(r)?)
            .with_context(|| format!("camera {}: storing its isolation audit", r.camera))?;
        self.tree
            .flush()
            .context("flushing the isolation audit record")?;
        Ok(())
    }

    /// The latest audit of `camera`, if it was ever audited.
    pub fn latest(&self, camera: &str) -> anyhow::Result<Option<Record>> {
        let Some(v) = self.tree.get(camera.as_bytes())? else {
            return Ok(None);
        };
        let r = serde_json::from_slice(&v)
            .with_context(|| format!("camera {camera}: reading its isolation audit"))?;
        Ok(Some(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onvif::audit::{Check, Finding, Hostname};

    fn report(levels: &[Level]) -> IsolationReport {
        IsolationReport {
            camera: "gate".into(),
            host: "10.0.0.2:80".into(),
            gateways: Check::Ok(vec![]),
            dns: Check::Ok(Default::default()),
            ntp: Check::Ok(Default::default()),
            time_source: Check::Ok(None),
            protocols: Check::Ok(vec![]),
            hostname: Check::Ok(Hostname::default()),
            findings: levels
                .iter()
                .enumerate()
                .map(|(i, &level)| Finding {
                    level,
                    message: format!("finding {i}"),
                })
                .collect(),
        }
    }

    #[test]
    fn verdicts_and_the_latest_per_camera() {
        let r = Record::of("gate", 1, "root", Ok(&report(&[Level::Ok, Level::Info])));
        assert_eq!((r.verdict, r.findings.len()), (Verdict::Isolated, 0));
        let r = Record::of("gate", 1, "root", Ok(&report(&[Level::Ok, Level::Unknown])));
        assert_eq!(
            (r.verdict, r.findings),
            (Verdict::NotShown, vec!["finding 1".into()])
        );
        let r = Record::of(
            "gate",
            1,
            "root",
            Ok(&report(&[Level::Unknown, Level::Warning])),
        );
        assert_eq!(r.verdict, Verdict::RouteOut);
        assert_eq!(r.findings.len(), 2);
        let failed = Record::of("gate", 2, "cli", Err("timed out".into()));
        assert_eq!(failed.verdict, Verdict::Failed);

        let db = sled::Config::new().temporary(true).open().unwrap();
        let records = Records::open(&db).unwrap();
        assert_eq!(records.latest("gate").unwrap(), None);
        records.put(&r).unwrap();
        records.put(&failed).unwrap();
        assert_eq!(records.latest("gate").unwrap(), Some(failed));
        assert_eq!(records.latest("yard").unwrap(), None);
    }
}
