//! A [`Report`] as a printable HTML document (one file, its own styles, nothing from
//! anywhere else, times in the server's zone) or as CSV for a spreadsheet (one block
//! per section, each with its own header row). JSON is the report's serde form.

use std::fmt::Write as _;

use super::Report;
use crate::export::disclosure::cell;
use crate::onvif::isolation_record::Verdict;

/// Output formats of `cleannvr report` and `GET /api/report`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The report's JSON (as `GET /api/report` answers).
    Json,
    /// CSV blocks, one per section.
    Csv,
    /// A printable HTML document.
    Html,
}

impl Format {
    /// The format a file name's extension implies (`.json`, `.csv`, `.html`/`.htm`).
    pub fn of_path(path: &std::path::Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            "html" | "htm" => Some(Format::Html),
            _ => None,
        }
    }

    /// The report in this format.
    pub fn render(self, r: &Report) -> String {
        match self {
            Format::Json => {
                let mut s = serde_json::to_string_pretty(r).expect("a report serializes");
                s.push('\n');
                s
            }
            Format::Csv => csv(r),
            Format::Html => html(r),
        }
    }

    /// Its media type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Html => "text/html; charset=utf-8",
        }
    }

    /// Its file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Html => "html",
        }
    }
}

/// Text for HTML: the five characters that could make markup escaped.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A UTC RFC 3339 time in the report's zone, for people (the JSON keeps UTC).
fn local(r: &Report, utc: &str) -> String {
    let tz = jiff::tz::TimeZone::get(&r.time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
    match crate::clock::parse_rfc3339(utc) {
        Some(ns) => {
            let ts = jiff::Timestamp::from_nanosecond(i128::from(ns))
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
            ts.to_zoned(tz).strftime("%Y-%m-%d %H:%M:%S %Z").to_string()
        }
        None => utc.to_owned(),
    }
}

/// Bytes as GiB/MiB for people.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// Seconds as `2 d 03:04:05`, `03:04:05` or `12.5 s`.
pub fn duration(s: f64) -> String {
    if s < 60.0 {
        return format!("{s:.1} s");
    }
    let t = s.round() as u64;
    let (d, h, m, sec) = (t / 86_400, t / 3600 % 24, t / 60 % 60, t % 60);
    if d > 0 {
        format!("{d} d {h:02}:{m:02}:{sec:02}")
    } else {
        format!("{h:02}:{m:02}:{sec:02}")
    }
}

const STYLE: &str = "
body { font-family: system-ui, 'Segoe UI', Roboto, 'Noto Sans', 'Liberation Sans', Arial, sans-serif;
  color: #15202b; margin: 2rem auto; max-width: 75rem; padding: 0 1rem; line-height: 1.4; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.2rem; margin-top: 2rem;
  border-bottom: 2px solid #1d4f91; padding-bottom: .2rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0; font-size: .9rem; }
th, td { border: 1px solid #c5ccd3; padding: .25rem .4rem; text-align: left; vertical-align: top; }
th { background: #eef1f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: #56636f; } .warn { color: #8a5300; font-weight: 600; } .bad { color: #a4161a; font-weight: 600; }
.ok { color: #17663a; font-weight: 600; } code { font-size: .85em; word-break: break-all; }
dl { display: grid; grid-template-columns: max-content auto; gap: .1rem 1rem; } dt { font-weight: 600; }
@media print { body { margin: 0; max-width: none; font-size: 10pt; } h2 { break-after: avoid; }
  tr { break-inside: avoid; } thead { display: table-header-group; } a { color: inherit; text-decoration: none; } }
@page { size: A4 landscape; margin: 12mm; }
";

fn table(out: &mut String, headers: &[&str], rows: &[Vec<String>], empty: &str) {
    out.push_str("<table><thead><tr>");
    for h in headers {
        let _ = write!(out, "<th scope=\"col\">{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    if rows.is_empty() {
        let _ = write!(
            out,
            "<tr><td colspan=\"{}\" class=\"muted\">{}</td></tr>",
            headers.len(),
            esc(empty)
        );
    }
    for r in rows {
        out.push_str("<tr>");
        for c in r {
            // Cells are already escaped HTML (see `num` and `txt`).
            out.push_str(c);
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
}

fn txt(s: &str) -> String {
    format!("<td>{}</td>", esc(s))
}

fn num(s: impl std::fmt::Display) -> String {
    format!("<td class=\"num\">{}</td>", esc(&s.to_string()))
}

fn flagged(text: &str, class: &str) -> String {
    format!("<td><span class=\"{class}\">{}</span></td>", esc(text))
}

/// The printable document.
pub fn html(r: &Report) -> String {
    let mut o = String::new();
    let title = format!(
        "Surveillance camera report: {} to {}",
        local(r, &r.from),
        local(r, &r.to)
    );
    let _ = write!(
        o,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n",
        esc(&title)
    );
    let _ = writeln!(
        o,
        "<h1>{}</h1><p class=\"muted\">Surveillance Camera Code of Practice review report. \
         Server {} (cleannvr {}); made {}; times in {}. The period runs from the first \
         instant of its start to the first instant after its end; availability is measured \
         up to {}.</p>",
        esc(&title),
        esc(&r.server_name),
        esc(&r.version),
        esc(&local(r, &r.generated_at)),
        esc(&r.time_zone),
        esc(&local(r, &r.measured_to)),
    );

    o.push_str("<h2>Camera register</h2>");
    let rows: Vec<Vec<String>> = r
        .cameras
        .iter()
        .map(|c| {
            vec![
                txt(&if c.name == c.id {
                    c.id.clone()
                } else {
                    format!("{} ({})", c.name, c.id)
                }),
                match &c.purpose {
                    Some(p) => txt(p),
                    None => flagged("No purpose stated", "warn"),
                },
                txt(c.location.as_deref().unwrap_or("")),
                txt(c.lawful_basis.as_deref().unwrap_or("")),
                match (&c.review_date, c.review_overdue) {
                    (Some(d), true) => flagged(&format!("{d} (overdue)"), "warn"),
                    (Some(d), false) => txt(d),
                    (None, _) => flagged("No review date", "muted"),
                },
                txt(match (c.enabled, c.record) {
                    (false, _) => "Disabled",
                    (true, true) => "Recording",
                    (true, false) => "Live view only",
                }),
            ]
        })
        .collect();
    table(
        &mut o,
        &[
            "Camera",
            "Purpose",
            "Location",
            "Lawful basis",
            "Next review",
            "State",
        ],
        &rows,
        "No cameras configured.",
    );

    o.push_str("<h2>Retention and storage</h2>");
    let rows: Vec<Vec<String>> = r
        .cameras
        .iter()
        .map(|c| {
            vec![
                txt(&c.id),
                txt(&if c.retain_days == 0 {
                    "no age limit".into()
                } else {
                    format!("{} days", c.retain_days)
                }),
                txt(&if c.retain_bytes == 0 {
                    "no size limit".into()
                } else {
                    bytes(c.retain_bytes)
                }),
                txt(&c
                    .oldest_footage
                    .as_deref()
                    .map(|t| local(r, t))
                    .unwrap_or_else(|| "none held".into())),
                num(c
                    .retention_achieved_days
                    .map(|d| format!("{d:.1} days"))
                    .unwrap_or_default()),
                num(bytes(c.held_bytes)),
                num(c.held_segments),
                num(if c.deleted_segments > 0 {
                    format!("{} ({})", c.deleted_segments, bytes(c.deleted_bytes))
                } else {
                    "0".into()
                }),
            ]
        })
        .collect();
    table(
        &mut o,
        &[
            "Camera",
            "Keep (configured)",
            "Size limit",
            "Oldest footage held",
            "Retention achieved",
            "Footage held",
            "Segments",
            "Deleted by retention in period",
        ],
        &rows,
        "No cameras configured.",
    );
    let s = &r.storage;
    let _ = write!(
        o,
        "<p>Volume {}: {} free of {} (retention keeps at least {} free); footage of all \
         cameras {} in {} segments.</p>",
        esc(&s.dir),
        esc(&s.free_bytes.map(bytes).unwrap_or_else(|| "?".into())),
        esc(&s.total_bytes.map(bytes).unwrap_or_else(|| "?".into())),
        esc(&bytes(s.min_free_bytes)),
        esc(&bytes(s.footage_bytes)),
        s.footage_segments
    );

    o.push_str("<h2>Recording availability</h2>");
    let rows: Vec<Vec<String>> = r
        .cameras
        .iter()
        .map(|c| {
            vec![
                txt(&c.id),
                num(c
                    .availability_percent
                    .map(|p| format!("{p:.2} %"))
                    .unwrap_or_default()),
                num(duration(c.recorded_seconds)),
                num(duration(c.period_seconds)),
                num(c.outage_count),
                num(duration(c.outage_seconds)),
            ]
        })
        .collect();
    table(
        &mut o,
        &[
            "Camera",
            "Available",
            "Recorded",
            "Of period",
            "Outages (5 s or longer)",
            "Total outage",
        ],
        &rows,
        "No cameras configured.",
    );
    let rows: Vec<Vec<String>> = r
        .cameras
        .iter()
        .flat_map(|c| {
            c.outages.iter().map(move |g| {
                vec![
                    txt(&c.id),
                    txt(&local(r, &g.start)),
                    txt(&if g.ongoing {
                        "ongoing at report time".to_owned()
                    } else {
                        local(r, &g.end)
                    }),
                    num(duration(g.seconds)),
                ]
            })
        })
        .collect();
    o.push_str("<h3>Outages</h3>");
    table(
        &mut o,
        &["Camera", "From", "To", "Length"],
        &rows,
        "No outages in the period.",
    );
    if r.cameras
        .iter()
        .any(|c| c.outage_count as usize > c.outages.len())
    {
        o.push_str(
            "<p class=\"muted\">Only the first 100 outages of a camera are listed; the \
             counts above include all.</p>",
        );
    }

    o.push_str("<h2>Access</h2>");
    let rows: Vec<Vec<String>> = r
        .access
        .iter()
        .map(|a| {
            vec![
                txt(&a.user),
                txt(&a.role),
                txt(&a.role_now),
                num(a.logins),
                num(a.live_views),
                num(a.playbacks),
                num(a.snapshots),
                num(a.exports),
                num(a.export_downloads),
                txt(&a.cameras.join(", ")),
            ]
        })
        .collect();
    table(
        &mut o,
        &[
            "User",
            "Role then",
            "Role now",
            "Logins",
            "Live views",
            "Playbacks",
            "Stills",
            "Exports",
            "Downloads",
            "Cameras",
        ],
        &rows,
        "Nobody viewed or exported footage in the period.",
    );
    let f = &r.failed_logins;
    let _ = write!(
        o,
        "<h3>Failed logins</h3><p>{} failed logins{}.</p>",
        f.total,
        if f.setup_refused > 0 {
            format!("; {} refused first-run setup attempts", f.setup_refused)
        } else {
            String::new()
        }
    );
    if f.total > 0 {
        let rows: Vec<Vec<String>> = f
            .by_name
            .iter()
            .map(|(n, c)| vec![txt(n), num(c)])
            .collect();
        table(&mut o, &["Name tried", "Failures"], &rows, "");
        let rows: Vec<Vec<String>> = f
            .by_client
            .iter()
            .map(|(n, c)| vec![txt(n), num(c)])
            .collect();
        table(&mut o, &["From address", "Failures"], &rows, "");
    }

    o.push_str("<h2>Disclosures</h2>");
    let rows: Vec<Vec<String>> = r
        .disclosures
        .iter()
        .map(|d| {
            let x = d.disclosure.clone().unwrap_or_default();
            vec![
                txt(&local(r, &d.exported_at)),
                txt(&d.exported_by),
                txt(&d.cameras.join(", ")),
                txt(&format!("{} to {}", local(r, &d.start), local(r, &d.end))),
                if x.recipient.is_empty() {
                    flagged("not recorded", "muted")
                } else {
                    txt(&x.recipient)
                },
                txt(&x.reference),
                txt(&x.legal_basis),
                txt(&d.reason),
                txt(d.response_due.as_deref().unwrap_or("")),
                format!(
                    "<td><code>{}</code></td>",
                    esc(&d.manifest_sha256[..d.manifest_sha256.len().min(16)])
                ),
            ]
        })
        .collect();
    table(
        &mut o,
        &[
            "Exported",
            "By",
            "Cameras",
            "Footage",
            "Recipient",
            "Reference",
            "Legal basis",
            "Reason",
            "SAR due",
            "Manifest SHA-256",
        ],
        &rows,
        "No footage was disclosed in the period.",
    );
    if r.disclosures_truncated {
        o.push_str("<p class=\"warn\">Only the first 10,000 disclosures are listed.</p>");
    }

    o.push_str("<h2>Legal holds</h2>");
    let rows: Vec<Vec<String>> = r
        .holds
        .iter()
        .map(|h| {
            vec![
                txt(&h.cameras.join(", ")),
                txt(&format!("{} to {}", local(r, &h.start), local(r, &h.end))),
                txt(&h.reason),
                txt(&h.created_by),
                txt(&local(r, &h.created)),
                txt(&h
                    .until
                    .as_deref()
                    .map(|u| local(r, u))
                    .unwrap_or_else(|| "until released".into())),
            ]
        })
        .collect();
    table(
        &mut o,
        &[
            "Cameras",
            "Footage",
            "Reason",
            "Placed by",
            "Placed",
            "Until",
        ],
        &rows,
        "No legal holds in force in the period.",
    );
    let _ = write!(
        o,
        "<p>{} holds placed and {} released in the period; {} camera configuration changes.</p>",
        r.holds_placed, r.holds_released, r.camera_changes
    );

    o.push_str("<h2>Camera isolation audit</h2>");
    let rows: Vec<Vec<String>> = r
        .isolation
        .iter()
        .map(|i| {
            let class = match i.verdict {
                Some(Verdict::Isolated) => "ok",
                _ => "bad",
            };
            vec![
                txt(&i.camera),
                txt(&i
                    .audited
                    .as_deref()
                    .map(|t| local(r, t))
                    .unwrap_or_else(|| "never".into())),
                txt(i.by.as_deref().unwrap_or("")),
                format!("<td class=\"{class}\">{}</td>", esc(&i.result)),
                txt(&i.findings.join("; ")),
            ]
        })
        .collect();
    table(
        &mut o,
        &["Camera", "Latest audit", "Run by", "Result", "Findings"],
        &rows,
        "No camera is configured by ONVIF, so none can be audited.",
    );
    o.push_str(
        "<p class=\"muted\">The latest ONVIF isolation audit of each camera (the Isolation \
         page): whether the camera's own settings (gateway, DNS, NTP) give it a way \
         beyond the LAN. Run it again before publishing if it is old.</p>",
    );

    o.push_str("<h2>Audit log</h2><dl>");
    let a = &r.audit;
    let _ = write!(
        o,
        "<dt>Chain</dt><dd>{}</dd><dt>Entries</dt><dd>{} in the period, {} in all</dd>",
        if a.chain_intact {
            format!(
                "<span class=\"ok\">intact</span>: all {} entries verify",
                a.verified
            )
        } else {
            format!(
                "<span class=\"bad\">BROKEN</span>: {}",
                esc(a.broken.as_deref().unwrap_or(""))
            )
        },
        a.entries_in_period,
        a.entries_total
    );
    match &a.last_checkpoint {
        Some(c) => {
            let _ = write!(
                o,
                "<dt>Signed checkpoints</dt><dd>{} checked; the newest, signed {}, covers \
                 entry {} with hash <code>{}</code> (key {}). Compare it with the newest \
                 \"audit checkpoint\" line in the server's log or syslog.</dd>",
                a.checkpoints,
                esc(&local(r, &c.time)),
                c.seq,
                esc(&c.hash),
                esc(&c.key)
            );
        }
        None => o.push_str("<dt>Signed checkpoints</dt><dd>none yet</dd>"),
    }
    o.push_str("</dl>\n</body></html>\n");
    o
}

fn line(out: &mut String, cells: &[String]) {
    let v: Vec<String> = cells.iter().map(|c| cell(c)).collect();
    out.push_str(&v.join(","));
    out.push_str("\r\n");
}

macro_rules! cells {
    ($($x:expr),* $(,)?) => { [$($x.to_string()),*] };
}

/// CSV (RFC 4180): one block per section, a blank line between them; the first cell of
/// each block's header row names the section.
pub fn csv(r: &Report) -> String {
    let mut o = String::new();
    line(
        &mut o,
        &cells![
            "report",
            "from",
            "to",
            "generated_at",
            "time_zone",
            "server",
            "measured_to"
        ],
    );
    line(
        &mut o,
        &cells![
            "period",
            r.from,
            r.to,
            r.generated_at,
            r.time_zone,
            r.server_name,
            r.measured_to
        ],
    );
    o.push_str("\r\n");
    line(
        &mut o,
        &cells![
            "camera",
            "name",
            "enabled",
            "record",
            "purpose",
            "location",
            "lawful_basis",
            "review_date",
            "review_overdue",
            "retain_days",
            "retain_bytes",
            "oldest_footage",
            "retention_achieved_days",
            "held_bytes",
            "held_segments",
            "period_seconds",
            "recorded_seconds",
            "availability_percent",
            "outage_count",
            "outage_seconds",
            "deleted_segments",
            "deleted_bytes",
            "live_views",
            "playbacks",
            "exports",
        ],
    );
    let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    for c in &r.cameras {
        line(
            &mut o,
            &cells![
                c.id,
                c.name,
                c.enabled,
                c.record,
                c.purpose.clone().unwrap_or_default(),
                c.location.clone().unwrap_or_default(),
                c.lawful_basis.clone().unwrap_or_default(),
                c.review_date.clone().unwrap_or_default(),
                c.review_overdue,
                c.retain_days,
                c.retain_bytes,
                c.oldest_footage.clone().unwrap_or_default(),
                opt(c.retention_achieved_days),
                c.held_bytes,
                c.held_segments,
                c.period_seconds,
                c.recorded_seconds,
                opt(c.availability_percent),
                c.outage_count,
                c.outage_seconds,
                c.deleted_segments,
                c.deleted_bytes,
                c.live_views,
                c.playbacks,
                c.exports,
            ],
        );
    }
    o.push_str("\r\n");
    line(
        &mut o,
        &cells!["outage_camera", "start", "end", "seconds", "ongoing"],
    );
    for c in &r.cameras {
        for g in &c.outages {
            line(&mut o, &cells![c.id, g.start, g.end, g.seconds, g.ongoing]);
        }
    }
    o.push_str("\r\n");
    line(
        &mut o,
        &cells![
            "access_user",
            "role",
            "role_now",
            "logins",
            "live_views",
            "playbacks",
            "snapshots",
            "exports",
            "export_downloads",
            "cameras",
        ],
    );
    for a in &r.access {
        line(
            &mut o,
            &cells![
                a.user,
                a.role,
                a.role_now,
                a.logins,
                a.live_views,
                a.playbacks,
                a.snapshots,
                a.exports,
                a.export_downloads,
                a.cameras.join(" "),
            ],
        );
    }
    o.push_str("\r\n");
    line(&mut o, &cells!["failed_login_name", "count"]);
    for (n, c) in &r.failed_logins.by_name {
        line(&mut o, &cells![n, c]);
    }
    line(
        &mut o,
        &cells!["failed_logins_total", r.failed_logins.total],
    );
    o.push_str("\r\n");
    line(
        &mut o,
        &cells![
            "disclosure_exported_at",
            "exported_by",
            "cameras",
            "start",
            "end",
            "recipient",
            "reference",
            "legal_basis",
            "reason",
            "response_due",
            "manifest_sha256",
        ],
    );
    for d in &r.disclosures {
        let x = d.disclosure.clone().unwrap_or_default();
        line(
            &mut o,
            &cells![
                d.exported_at,
                d.exported_by,
                d.cameras.join(" "),
                d.start,
                d.end,
                x.recipient,
                x.reference,
                x.legal_basis,
                d.reason,
                d.response_due.clone().unwrap_or_default(),
                d.manifest_sha256,
            ],
        );
    }
    o.push_str("\r\n");
    line(
        &mut o,
        &cells![
            "hold_id",
            "cameras",
            "start",
            "end",
            "reason",
            "created_by",
            "created",
            "until"
        ],
    );
    for h in &r.holds {
        line(
            &mut o,
            &cells![
                h.id,
                h.cameras.join(" "),
                h.start,
                h.end,
                h.reason,
                h.created_by,
                h.created,
                h.until.clone().unwrap_or_default(),
            ],
        );
    }
    o.push_str("\r\n");
    line(
        &mut o,
        &cells!["isolation_camera", "audited", "by", "result", "findings"],
    );
    for i in &r.isolation {
        line(
            &mut o,
            &cells![
                i.camera,
                i.audited.clone().unwrap_or_default(),
                i.by.clone().unwrap_or_default(),
                i.result,
                i.findings.join("; "),
            ],
        );
    }
    o.push_str("\r\n");
    let a = &r.audit;
    line(
        &mut o,
        &cells![
            "audit_chain_intact",
            "verified",
            "broken",
            "entries_in_period",
            "checkpoints",
            "last_checkpoint_seq",
            "last_checkpoint_hash",
            "last_checkpoint_time",
        ],
    );
    let cp = a.last_checkpoint.as_ref();
    line(
        &mut o,
        &cells![
            a.chain_intact,
            a.verified,
            a.broken.clone().unwrap_or_default(),
            a.entries_in_period,
            a.checkpoints,
            cp.map(|c| c.seq.to_string()).unwrap_or_default(),
            cp.map(|c| c.hash.clone()).unwrap_or_default(),
            cp.map(|c| c.time.clone()).unwrap_or_default(),
        ],
    );
    o
}
