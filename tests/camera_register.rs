//! The camera register (Surveillance Camera Code of Practice, principles 1-3): each
//! camera's purpose, location, lawful basis and review date, set through the API
//! (written into the config file with its comments kept), shown in `/api/cameras` to
//! everyone who may see the camera, flagged when the purpose is missing or the review
//! is overdue, and audited like any other camera change. The camera itself is disabled:
//! what is tested is the running server's config path, not recording.

mod common;

use common::*;
use serde_json::{json, Value};

fn camera(s: &HttpSession, id: &str) -> Value {
    s.json("/api/cameras")["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no camera {id}"))
        .clone()
}

#[test]
fn the_register_is_edited_shown_flagged_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cleannvr.toml");
    let cams = "# Market square, installed 2024\n[[camera]]\nid = \"market\"\nname = \"Market\"\n\
                url = \"rtsp://127.0.0.1:9/m\"\nenabled = false\n\
                purpose = \"Crime prevention\" # agreed with the council\nreview_date = 2020-01-31\n\
                [[camera]]\nid = \"yard\"\nurl = \"rtsp://127.0.0.1:9/y\"\nenabled = false\n";
    std::fs::write(&cfg, config(dir.path(), 2, cams)).unwrap();
    add_user(&cfg, "root", "admin", "admin pass 12345");
    add_user(&cfg, "vera", "viewer", "viewer pass 12345");
    let nvr = Nvr::start(cfg.clone(), &["run"]);
    let admin = HttpSession::login(&nvr.http, "root", "admin pass 12345");
    let viewer = HttpSession::login(&nvr.http, "vera", "viewer pass 12345");

    // From the file: a review date in 2020 is overdue; the yard camera has no purpose.
    let m = camera(&viewer, "market");
    assert_eq!(
        (
            &m["purpose"],
            &m["review_date"],
            &m["review_overdue"],
            &m["purpose_missing"]
        ),
        (
            &json!("Crime prevention"),
            &json!("2020-01-31"),
            &json!(true),
            &json!(false)
        ),
        "{m}"
    );
    let y = camera(&viewer, "yard");
    assert_eq!(
        (
            &y["purpose_missing"],
            &y["review_overdue"],
            &y["review_date"]
        ),
        (&json!(true), &json!(false), &Value::Null),
        "{y}"
    );

    // Set through the API as the Camera setup page does (the stored settings plus the
    // register): written as a TOML date, the comments kept, no longer overdue.
    let mut body = camera(&admin, "market")["config"].clone();
    let o = body.as_object_mut().unwrap();
    o.retain(|k, v| {
        !v.is_null() && !k.ends_with("_set") && k != "url_has_credentials" && k != "id"
    });
    o.insert(
        "location".into(),
        json!("Market Square, north side, facing the stalls"),
    );
    o.insert(
        "lawful_basis".into(),
        json!("UK GDPR Art. 6(1)(e), public task"),
    );
    o.insert("review_date".into(), json!("2099-06-30"));
    let (code, v) = admin.send("PUT", "/api/cameras/market", &body);
    assert_eq!(code, 200, "{v}");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("review_date = 2099-06-30\n"), "{text}");
    assert!(
        text.contains("purpose = \"Crime prevention\" # agreed with the council")
            && text.contains("# Market square, installed 2024"),
        "{text}"
    );
    let m = camera(&viewer, "market");
    assert_eq!(
        m["location"], "Market Square, north side, facing the stalls",
        "{m}"
    );
    assert_eq!(
        m["lawful_basis"], "UK GDPR Art. 6(1)(e), public task",
        "{m}"
    );
    assert_eq!(
        (&m["review_overdue"], &m["review_date"]),
        (&json!(false), &json!("2099-06-30")),
        "{m}"
    );
    assert!(m.get("config").is_none(), "viewers get no config: {m}");

    // The change is audited with what changed, from and to.
    let entries = admin.audit("camera_change");
    let e = entries
        .iter()
        .find(|e| e["target"] == "market")
        .unwrap_or_else(|| panic!("no camera_change for market: {entries:?}"));
    let detail = e["detail"].as_str().unwrap();
    assert!(
        detail.contains("\"review_date\":{\"from\":\"2020-01-31\",\"to\":\"2099-06-30\"}")
            && detail.contains("\"location\":{\"from\":null"),
        "{detail}"
    );

    // Refused, with the field named, and the file unchanged: a bad date, an empty purpose.
    for bad in [
        json!({"review_date": "31/06/2099"}),
        json!({"purpose": "  "}),
    ] {
        let mut b = body.clone();
        b.as_object_mut()
            .unwrap()
            .extend(bad.as_object().unwrap().clone());
        let (code, v) = admin.send("PUT", "/api/cameras/market", &b);
        assert_eq!(code, 400, "{bad}: {v}");
        let detail = v["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("review_date") || detail.contains("purpose"),
            "{v}"
        );
    }
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), text);
    // Viewers cannot edit the register.
    assert_eq!(viewer.send("PUT", "/api/cameras/market", &body).0, 403);
}
