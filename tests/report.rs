//! The Code of Practice report against a camera recorded from GStreamer's RTSP server:
//! the camera is disabled for a known interval, an operator watches it live, plays it
//! back and exports it, someone fails to log in; the report for the period must show
//! the availability and outages the index really holds (recomputed here from
//! `/api/cameras/{id}/recordings`), the outage covering the interval the camera was
//! off, those accesses, the disclosure and the audit chain's state. The command line
//! gives the same figures through the running server's control socket and, once it has
//! stopped, from the index directly.

mod common;

use std::path::Path;
use std::time::Duration;

use cleannvr::clock::{parse_rfc3339, rfc3339, NS_PER_SEC};
use common::*;
use serde_json::{json, Value};

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn t(v: &Value) -> i64 {
    parse_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}"))).unwrap()
}

/// The segments of `cam` overlapping `[from, to)` as the index holds them.
fn segments(s: &HttpSession, cam: &str, from: i64, to: i64) -> Vec<(i64, i64)> {
    s.json(&format!(
        "/api/cameras/{cam}/recordings?start={}&end={}",
        rfc3339(from),
        rfc3339(to)
    ))["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (t(&r["start"]), t(&r["end"])))
        .collect()
}

/// Gaps of 5 s or more in `[from, to)` between `segs` (the report's rule), recomputed
/// independently of the report's code.
fn gaps(segs: &[(i64, i64)], from: i64, to: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut cursor = from;
    for &(s, e) in segs {
        let (s, e) = (s.max(from), e.min(to));
        if s - cursor >= 5 * NS_PER_SEC {
            out.push((cursor, s));
        }
        cursor = cursor.max(e);
    }
    if to - cursor >= 5 * NS_PER_SEC {
        out.push((cursor, to));
    }
    out
}

/// Opens a live view (audited when the WebSocket is accepted) and reads its first message.
fn live_view(base: &str, cookie: &str, cam: &str) {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("{}/api/cameras/{cam}/live", base.replacen("http", "ws", 1));
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut req = url.as_str().into_client_request().unwrap();
        req.headers_mut().insert("cookie", cookie.parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let first = tokio::time::timeout(Duration::from_secs(120), ws.next()).await;
        assert!(matches!(first, Ok(Some(Ok(_)))), "no live data: {first:?}");
    });
}

#[test]
fn the_report_shows_what_was_recorded_accessed_and_disclosed() {
    if !require_peer(
        Path::new("/usr/bin/python3").exists(),
        "GStreamer's RTSP server",
    ) {
        return;
    }
    let gst = GstServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cleannvr.toml");
    let cams = format!(
        "[[camera]]\nid = \"gate\"\nname = \"Gate\"\nurl = \"{}\"\nretain_days = 31\n\
         purpose = \"Crime prevention at the depot gate\"\nlocation = \"Depot, north gate\"\n\
         review_date = 2020-06-30\n",
        gst.url("h264aac")
    );
    std::fs::write(&cfg, config(dir.path(), 2, &cams)).unwrap();
    add_user(&cfg, "root", "admin", "admin pass 12345");
    add_user(&cfg, "olive", "operator", "operator pass 12345");
    let mut nvr = Nvr::start(cfg.clone(), &["run"]);
    let admin = HttpSession::login(&nvr.http, "root", "admin pass 12345");
    let olive = HttpSession::login(&nvr.http, "olive", "operator pass 12345");
    wait_segments(&nvr, Some(&admin.cookie), "gate", 3);
    let from = now_ns();
    wait_for(
        Duration::from_secs(120),
        "a segment after the period starts",
        || {
            segments(&admin, "gate", from, now_ns() + 3600 * NS_PER_SEC)
                .iter()
                .any(|s| s.0 > from)
                .then_some(())
        },
    );

    // Off for a known interval: nothing can be recorded between the two changes.
    let mut body = admin.json("/api/cameras")["cameras"][0]["config"].clone();
    body.as_object_mut().unwrap().retain(|k, v| {
        !v.is_null() && !k.ends_with("_set") && k != "url_has_credentials" && k != "id"
    });
    body["enabled"] = json!(false);
    let off_sent = now_ns();
    assert_eq!(admin.send("PUT", "/api/cameras/gate", &body).0, 200);
    let off_done = now_ns();
    std::thread::sleep(Duration::from_secs(12));
    body["enabled"] = json!(true);
    let on_sent = now_ns();
    assert_eq!(admin.send("PUT", "/api/cameras/gate", &body).0, 200);
    wait_for(
        Duration::from_secs(150),
        "recording again after re-enabling",
        || {
            let segs = segments(&admin, "gate", on_sent, now_ns() + 3600 * NS_PER_SEC);
            (segs.iter().filter(|s| s.0 > on_sent).count() >= 2).then_some(())
        },
    );

    // Accesses: a live view, a playback, an export with its recipient, a failed login.
    live_view(&nvr.http, &olive.cookie, "gate");
    let segs = segments(&admin, "gate", from, now_ns());
    let (code, video) = olive.get(&format!(
        "/api/cameras/gate/video.mp4?start={}&end={}",
        rfc3339(segs[0].0),
        rfc3339(segs[0].1)
    ));
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&video));
    let (code, e) = olive.send(
        "POST",
        "/api/exports",
        &json!({"cameras": ["gate"], "start": rfc3339(segs[0].0), "end": rfc3339(segs[0].1),
            "reason": "incident 2026/44", "recipient": "PC 4321 Jones, Kent Police",
            "reference": "CR/2026/44"}),
    );
    assert!(code == 202 || code == 200 || code == 201, "{code} {e}");
    let id = e["id"].as_str().unwrap_or_else(|| panic!("{e}")).to_owned();
    wait_for(Duration::from_secs(120), "the export", || {
        let j = olive.json(&format!("/api/exports/{id}"));
        assert_ne!(j["status"], "failed", "{j}");
        (j["status"] == "done").then_some(())
    });
    let (code, _) = http(
        &nvr.http,
        "POST",
        "/api/login",
        None,
        None,
        Some(r#"{"username":"mallory","password":"guess guess 1"}"#),
        &[],
    );
    assert_eq!(code, 401);
    let (code, h) = admin.send(
        "POST",
        "/api/holds",
        &json!({"cameras": ["gate"], "start": rfc3339(segs[0].0), "end": rfc3339(segs[0].1),
            "reason": "CR/2026/44"}),
    );
    assert_eq!(code, 201, "{h}");
    // Olive is demoted after her accesses: the report must still say what she was then.
    let (code, u) = admin.send("PUT", "/api/users/olive", &json!({"role": "viewer"}));
    assert_eq!(code, 200, "{u}");
    // The period ends where a segment indexed after all that ends: a segment indexed
    // while the report is made cannot then change what the index holds for the period.
    let accessed = now_ns();
    let to = wait_for(
        Duration::from_secs(150),
        "a segment after the accesses",
        || {
            segments(&admin, "gate", accessed, now_ns() + 3600 * NS_PER_SEC)
                .iter()
                .map(|s| s.1)
                .find(|&e| e > accessed)
        },
    );

    let q = format!("/api/report?from={}&to={}", rfc3339(from), rfc3339(to));
    assert_eq!(olive.get(&q).0, 403, "operators may not read the report");
    let r = admin.json(&q);
    let cam = r["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "gate")
        .unwrap_or_else(|| panic!("{r}"))
        .clone();

    // Availability and outages: exactly what the index holds.
    let held = segments(&admin, "gate", from, to);
    let want = gaps(&held, from, to);
    let outage_ns: i64 = want.iter().map(|g| g.1 - g.0).sum();
    let period = (to - from) as f64 / 1e9;
    let recorded = period - outage_ns as f64 / 1e9;
    assert!(
        (cam["period_seconds"].as_f64().unwrap() - period).abs() < 0.02,
        "{cam}"
    );
    assert!(
        (cam["recorded_seconds"].as_f64().unwrap() - recorded).abs() < 0.02,
        "report {} s recorded, index {recorded} s: {cam}",
        cam["recorded_seconds"]
    );
    let pct = cam["availability_percent"].as_f64().unwrap();
    assert!(
        (pct - 100.0 * recorded / period).abs() < 0.02,
        "{pct} {cam}"
    );
    assert!(pct < 100.0 && pct > 10.0, "{cam}");
    let got: Vec<(i64, i64)> = cam["outages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (t(&g["start"]), t(&g["end"])))
        .collect();
    let ms = |v: &[(i64, i64)]| -> Vec<(i64, i64)> {
        v.iter()
            .map(|g| (g.0 / 1_000_000, g.1 / 1_000_000))
            .collect()
    };
    assert_eq!(ms(&got), ms(&want), "outages: {cam}");
    // One of them is the time the camera was off, and covers it (the camera's last
    // frames may be stamped a moment after the change returned: a 5 s allowance).
    let off = got
        .iter()
        .find(|g| g.0 <= off_done + 5 * NS_PER_SEC && g.1 >= on_sent)
        .unwrap_or_else(|| {
            panic!(
                "no outage covers {}..{}: {cam}",
                rfc3339(off_done),
                rfc3339(on_sent)
            )
        });
    assert!(off.0 >= off_sent - 10 * NS_PER_SEC, "{cam}");
    assert_eq!(cam["review_overdue"], true, "{cam}");
    assert_eq!(
        cam["purpose"], "Crime prevention at the depot gate",
        "{cam}"
    );
    assert_eq!(cam["retain_days"], 31, "{cam}");
    let status = camera_status(&nvr.http, &admin.cookie, "gate");
    assert_eq!(cam["oldest_footage"], status["oldest"], "{cam} {status}");
    assert_eq!(
        (&cam["live_views"], &cam["playbacks"], &cam["exports"]),
        (&json!(1), &json!(1), &json!(1)),
        "{cam}\n{r}\n{}",
        admin.json("/api/audit?limit=50")
    );

    // Access by user, failed logins, the disclosure and the hold.
    let o = r["access"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user"] == "olive")
        .unwrap_or_else(|| panic!("{r}"));
    assert_eq!(
        (&o["role"], &o["role_now"]),
        (&json!("operator"), &json!("viewer")),
        "the role at the time of access, and now: {o}"
    );
    assert_eq!(
        r["access"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["user"] == "olive")
            .count(),
        1,
        "{r}"
    );
    assert_eq!(
        (
            &o["logins"],
            &o["live_views"],
            &o["playbacks"],
            &o["exports"]
        ),
        (&json!(0), &json!(1), &json!(1), &json!(1)),
        "{o}"
    );
    assert_eq!(o["cameras"], json!(["gate"]), "{o}");
    assert_eq!(r["failed_logins"]["total"], 1, "{r}");
    assert_eq!(
        r["failed_logins"]["by_name"],
        json!([["mallory", 1]]),
        "{r}"
    );
    let d = r["disclosures"].as_array().unwrap();
    assert_eq!(d.len(), 1, "{r}");
    assert_eq!(
        d[0]["disclosure"]["recipient"],
        "PC 4321 Jones, Kent Police"
    );
    assert_eq!(d[0]["export"], id.as_str());
    assert_eq!(r["holds"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(
        (&r["holds_placed"], &r["camera_changes"]),
        (&json!(1), &json!(2)),
        "{r}"
    );
    let verify = admin.json("/api/audit/verify");
    assert_eq!(r["audit"]["chain_intact"], true, "{r}");
    assert_eq!(
        r["audit"]["last_checkpoint"]["seq"], verify["last_checkpoint"]["seq"],
        "{r} {verify}"
    );

    // Downloads: HTML (printable, no external resources) and CSV.
    let (code, page) = admin.get(&format!("{q}&format=html"));
    let page = String::from_utf8(page).unwrap();
    assert_eq!(code, 200);
    assert!(
        page.contains("@media print") && page.contains("PC 4321 Jones"),
        "{page}"
    );
    assert!(
        !page.contains("src=") && !page.contains("href="),
        "external resources"
    );
    assert!(
        page.contains("<td>olive</td><td>operator</td><td>viewer</td>"),
        "olive's row names her role then and now: {page}"
    );
    let (code, csv) = admin.get(&format!("{q}&format=csv"));
    assert_eq!(code, 200);
    let csv = String::from_utf8(csv).unwrap();
    assert!(
        csv.contains("gate,Gate,true,true,Crime prevention"),
        "{csv}"
    );
    assert!(csv.contains("\r\nolive,operator,viewer,"), "{csv}");

    // The command line through the running server: the same figures.
    let (from_s, to_s) = (rfc3339(from), rfc3339(to));
    let (ok, out) = cli(
        &cfg,
        &[
            "report", "--from", &from_s, "--to", &to_s, "--format", "json",
        ],
        "",
    );
    assert!(ok, "{out}");
    let c: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    for k in ["recorded_seconds", "outages", "live_views", "exports"] {
        assert_eq!(c["cameras"][0][k], cam[k], "{k}: {out}");
    }
    assert_eq!(c["access"], r["access"]);
    let html = dir.path().join("report.html");
    let (ok, out) = cli(
        &cfg,
        &[
            "report",
            "--from",
            &from_s,
            "--to",
            &to_s,
            "--out",
            html.to_str().unwrap(),
        ],
        "",
    );
    assert!(ok, "{out}");
    let text = std::fs::read_to_string(&html).unwrap();
    assert!(
        text.starts_with("<!doctype html>") && text.contains("Depot, north gate"),
        "{text}"
    );

    // With the server stopped: the index directly, the same figures again.
    nvr.stop();
    let (ok, out) = cli(
        &cfg,
        &[
            "report", "--from", &from_s, "--to", &to_s, "--format", "csv",
        ],
        "",
    );
    assert!(ok, "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with("gate,"))
        .unwrap_or_else(|| panic!("{out}"));
    // period_seconds, recorded_seconds and availability_percent, as the API gave them.
    let figures = format!(
        ",{},{},{},",
        cam["period_seconds"], cam["recorded_seconds"], cam["availability_percent"]
    );
    assert!(row.contains(&figures), "{figures} not in {row}");
    let (ok, out) = cli(&cfg, &["report", "--from", "2026-02-30", "--to", &to_s], "");
    assert!(!ok && out.contains("--from"), "{out}");
}
