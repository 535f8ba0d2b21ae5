//! The disclosure register: every export, with who received it, why and on what
//! legal basis (ICO CCTV guidance; Surveillance Camera Code of Practice,
//! principle 7).
//!
//! Exports expire; the register does not. Each finished export adds one
//! [`Record`] to the `disclosures` tree of the index in the same step as its
//! audit entry ([`super::jobs::write_recorded`]), so the register lists
//! exactly the exports that exist or existed. A subject-access request can
//! carry the day it was received; the response is due one calendar month later.

use anyhow::{ensure, Context};
use serde::{Deserialize, Serialize};

use super::{Outcome, Request};
use crate::clock::rfc3339;

/// Longest recipient, reference or legal basis, in bytes.
const MAX_FIELD: usize = 300;

/// To whom and why footage is disclosed (given with the export; in the
/// manifest and the register).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disclosure {
    /// Who receives the footage: a person and organisation, e.g. "PC 1234 Smith, Kent Police".
    pub recipient: String,
    /// Case, crime or subject-access reference.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reference: String,
    /// The legal basis for disclosing, e.g. "UK GDPR Art. 15 (subject access)".
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub legal_basis: String,
    /// For a subject-access request: the day it was received (YYYY-MM-DD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_received: Option<String>,
}

impl Disclosure {
    /// Checks lengths, characters and the received date (not after `today`).
    pub fn validate(&self, today: jiff::civil::Date) -> anyhow::Result<()> {
        for (name, v) in [
            ("recipient", &self.recipient),
            ("reference", &self.reference),
            ("legal_basis", &self.legal_basis),
        ] {
            ensure!(v.len() <= MAX_FIELD, "{name} longer than {MAX_FIELD} bytes");
            ensure!(
                !v.chars().any(char::is_control),
                "{name} contains control characters"
            );
        }
        ensure!(
            !self.recipient.trim().is_empty(),
            "a recipient is required: who receives the footage"
        );
        if let Some(d) = &self.request_received {
            let day = received_day(d)?;
            ensure!(day <= today, "request_received {d} is in the future");
        }
        Ok(())
    }

    /// When the response to a subject-access request is due: one calendar
    /// month after it was received (31 January gives the last day of February).
    pub fn response_due(&self) -> Option<String> {
        let day = received_day(self.request_received.as_deref()?).ok()?;
        day.checked_add(jiff::Span::new().months(1))
            .ok()
            .map(|d| d.to_string())
    }
}

fn received_day(s: &str) -> anyhow::Result<jiff::civil::Date> {
    s.parse::<jiff::civil::Date>()
        .with_context(|| format!("request_received {s:?} is not a date (YYYY-MM-DD)"))
}

/// One entry of the register.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The export: its id (web) or directory (command line).
    pub export: String,
    /// When it was made.
    pub exported_at: String,
    /// Who made it.
    pub exported_by: String,
    /// Camera ids.
    pub cameras: Vec<String>,
    /// The footage's range.
    pub start: String,
    /// End of the range.
    pub end: String,
    /// The requester's reason.
    pub reason: String,
    /// What was given out: `master`, `working_copy` (masters plus converted copies)
    /// or `redacted`.
    pub kind: String,
    /// Recipient and basis; `None` for a command-line export made without them.
    pub disclosure: Option<Disclosure>,
    /// When the response to a subject-access request is due.
    pub response_due: Option<String>,
    /// SHA-256 of the signed manifest: ties this row to the package.
    pub manifest_sha256: String,
    /// Bytes of the exported files.
    pub bytes: u64,
    /// Number of exported files.
    pub files: usize,
}

impl Record {
    /// The register row of a finished export.
    pub fn of(req: &Request, outcome: &Outcome, export: &str, now_ns: i64) -> Record {
        let kind = match (&req.redact, req.working_copy) {
            (Some(_), _) => "redacted",
            (None, true) => "working_copy",
            (None, false) => "master",
        };
        Record {
            export: export.to_owned(),
            exported_at: rfc3339(now_ns),
            exported_by: req.user.clone(),
            cameras: req.cameras.iter().map(|c| c.0.clone()).collect(),
            start: rfc3339(req.start_ns),
            end: rfc3339(req.end_ns),
            reason: req.reason.clone(),
            kind: kind.into(),
            response_due: req.disclosure.as_ref().and_then(Disclosure::response_due),
            disclosure: req.disclosure.clone(),
            manifest_sha256: outcome.manifest_sha256.clone(),
            bytes: outcome.manifest.files().map(|f| f.bytes).sum(),
            files: outcome.manifest.files().count(),
        }
    }
}

/// The register: a tree keyed by export time (big-endian ns) and export name.
#[derive(Clone)]
pub struct Register {
    tree: sled::Tree,
}

impl Register {
    /// The register in `db` (the index).
    pub fn open(db: &sled::Db) -> anyhow::Result<Register> {
        Ok(Register {
            tree: db
                .open_tree("disclosures")
                .context("opening the disclosure register")?,
        })
    }

    /// Adds `rec` made at `now_ns`, durably; returns its key (for [`Register::remove`]).
    pub fn add(&self, now_ns: i64, rec: &Record) -> anyhow::Result<Vec<u8>> {
        let mut key = now_ns.to_be_bytes().to_vec();
        key.extend_from_slice(rec.export.as_bytes());
        self.tree
            .insert(&key, serde_json::to_vec(rec)?)
            .context("writing the disclosure register")?;
        self.tree
            .flush()
            .context("flushing the disclosure register")?;
        Ok(key)
    }

    /// Takes back a row whose export failed after all (its audit entry could not be written).
    pub fn remove(&self, key: &[u8]) -> anyhow::Result<()> {
        self.tree.remove(key)?;
        self.tree.flush()?;
        Ok(())
    }

    /// Rows of exports made in `[start_ns, end_ns)`, oldest first, at most `limit`.
    pub fn list(&self, start_ns: i64, end_ns: i64, limit: usize) -> anyhow::Result<Vec<Record>> {
        let mut out = Vec::new();
        for kv in self
            .tree
            .range(start_ns.to_be_bytes()..end_ns.to_be_bytes())
            .take(limit)
        {
            let (_, v) = kv.context("reading the disclosure register")?;
            out.push(serde_json::from_slice(&v).context("a disclosure register row")?);
        }
        Ok(out)
    }
}

/// The register as CSV (RFC 4180), for a spreadsheet. Cells a spreadsheet would
/// run as a formula (`= + - @`, tab, CR) are prefixed with `'`.
pub fn csv(rows: &[Record]) -> String {
    let mut out = String::from(
        "exported_at,exported_by,cameras,start,end,kind,recipient,reference,legal_basis,\
         request_received,response_due,reason,export,manifest_sha256,files,bytes\r\n",
    );
    for r in rows {
        let d = r.disclosure.clone().unwrap_or_default();
        let cells = [
            r.exported_at.clone(),
            r.exported_by.clone(),
            r.cameras.join(" "),
            r.start.clone(),
            r.end.clone(),
            r.kind.clone(),
            d.recipient,
            d.reference,
            d.legal_basis,
            d.request_received.unwrap_or_default(),
            r.response_due.clone().unwrap_or_default(),
            r.reason.clone(),
            r.export.clone(),
            r.manifest_sha256.clone(),
            r.files.to_string(),
            r.bytes.to_string(),
        ];
        let line: Vec<String> = cells.iter().map(|c| cell(c)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

/// One CSV cell: quoted when needed, a would-be formula defused with `'`.
pub fn cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(recipient: &str, received: Option<&str>) -> Disclosure {
        Disclosure {
            recipient: recipient.into(),
            request_received: received.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn a_recipient_is_required_and_dates_are_checked() {
        let today: jiff::civil::Date = "2026-03-10".parse().unwrap();
        assert!(d("Kent Police", None).validate(today).is_ok());
        let e = d("  ", None).validate(today).unwrap_err().to_string();
        assert!(e.contains("recipient is required"), "{e}");
        assert!(d("A\nB", None).validate(today).is_err());
        assert!(d("A", Some("2026-03-11")).validate(today).is_err());
        assert!(d("A", Some("10/03/2026")).validate(today).is_err());
        assert!(d("A", Some("2026-03-10")).validate(today).is_ok());
        assert!(d(&"x".repeat(301), None).validate(today).is_err());
    }

    #[test]
    fn a_subject_access_response_is_due_one_calendar_month_later() {
        assert_eq!(
            d("A", Some("2026-01-31")).response_due().as_deref(),
            Some("2026-02-28")
        );
        assert_eq!(
            d("A", Some("2026-03-15")).response_due().as_deref(),
            Some("2026-04-15")
        );
        assert_eq!(d("A", None).response_due(), None);
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("-1"), "'-1");
    }

    #[test]
    fn register_lists_by_time_and_takes_back_a_row() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let reg = Register::open(&db).unwrap();
        let rec = |export: &str| Record {
            export: export.into(),
            exported_at: String::new(),
            exported_by: "op".into(),
            cameras: vec!["c1".into()],
            start: String::new(),
            end: String::new(),
            reason: "r".into(),
            kind: "master".into(),
            disclosure: Some(d("Kent Police", None)),
            response_due: None,
            manifest_sha256: "00".into(),
            bytes: 1,
            files: 1,
        };
        reg.add(100, &rec("a")).unwrap();
        let kb = reg.add(200, &rec("b")).unwrap();
        reg.add(300, &rec("c")).unwrap();
        let names = |v: Vec<Record>| v.into_iter().map(|r| r.export).collect::<Vec<_>>();
        assert_eq!(names(reg.list(0, 1000, 10).unwrap()), ["a", "b", "c"]);
        assert_eq!(names(reg.list(150, 300, 10).unwrap()), ["b"]);
        assert_eq!(names(reg.list(0, 1000, 2).unwrap()), ["a", "b"]);
        reg.remove(&kb).unwrap();
        assert_eq!(names(reg.list(0, 1000, 10).unwrap()), ["a", "c"]);
    }
}
