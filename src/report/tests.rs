//! The report's figures from an index and audit log written by hand with known gaps and
//! entries (the end-to-end test, `tests/report.rs`, checks them against real recording).

use super::*;
use crate::audit::Event;
use crate::auth::Role;
use crate::store::SegmentRecord;

const T0: i64 = 1_800_000_000 * NS_PER_SEC;
const S: i64 = NS_PER_SEC;

fn seg(camera: &str, start: i64, end: i64) -> SegmentRecord {
    SegmentRecord {
        camera: camera.into(),
        start_ns: start,
        end_ns: end,
        path: crate::store::segment_rel_path(camera, start),
        bytes: 1000,
        codec: "avc1.42C01E".into(),
        width: 640,
        height: 360,
        frames: 25,
        has_audio: false,
        keyframes: vec![(0, 0)],
        drift_ms: 0,
        archived: None,
    }
}

fn ev(actor: &str, action: Action, target: &str, detail: &str) -> Event {
    Event {
        actor: actor.into(),
        action,
        target: target.into(),
        client: "10.0.0.9".into(),
        detail: detail.into(),
        role: None,
    }
}

/// `e` as a signed-in user with `role` writes it (entries without one are as an older
/// cleannvr wrote them).
fn as_role(mut e: Event, role: &str) -> Event {
    e.role = Some(role.into());
    e
}

struct Fixture {
    _dir: tempfile::TempDir,
    config: Config,
    store: Store,
    audit: AuditLog,
    users: Users,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[server]\ntimezone = \"Europe/London\"\n[storage]\ndir = \"{}\"\n\
         [[camera]]\nid = \"a\"\nname = \"Gate\"\nurl = \"rtsp://h/a\"\nretain_days = 30\n\
         purpose = \"<script>x</script> Crime prevention\"\nreview_date = 2020-01-01\n\
         [[camera]]\nid = \"b\"\nurl = \"rtsp://h/b\"\nlocation = \"=HYPERLINK(\\\"x\\\")\"\n",
        dir.path().display()
    );
    let config = Config::from_toml(&toml, std::path::Path::new("t"), |_| None).unwrap();
    let store = Store::open(dir.path()).unwrap();
    let audit = AuditLog::open(store.db(), dir.path()).unwrap();
    let users = Users::for_store(&store).unwrap();
    Fixture {
        _dir: dir,
        config,
        store,
        audit,
        users,
    }
}

#[test]
fn availability_outages_access_and_audit_come_from_the_index_and_the_log() {
    let f = fixture();
    // Camera a: 0-60 s, 60.1-120 s (a 0.1 s seam, not an outage), 150-200 s.
    for (s, e) in [(0, 60 * S), (60 * S + S / 10, 120 * S), (150 * S, 200 * S)] {
        f.store.insert(&seg("a", T0 + s, T0 + e)).unwrap();
    }
    // Before the period: held footage, not part of the period's availability.
    f.store
        .insert(&seg("a", T0 - 500 * S, T0 - 400 * S))
        .unwrap();
    f.users
        .add("olive", Role::Operator, None, "olive password 1", T0)
        .unwrap();
    let at = |s: i64| T0 + s * S;
    f.audit
        .append(at(-1), ev("olive", Action::LiveView, "a", ""))
        .unwrap();
    for (t, e) in [
        (1, as_role(ev("olive", Action::Login, "", ""), "operator")),
        (
            2,
            as_role(ev("olive", Action::LiveView, "a", ""), "operator"),
        ),
        (
            3,
            as_role(
                ev("olive", Action::Playback, "a", "start=x end=y"),
                "operator",
            ),
        ),
        (
            4,
            as_role(
                ev("olive", Action::Playback, "b", "start=x end=y"),
                "operator",
            ),
        ),
        // Olive was an admin when she exported (demoted since): a row of its own.
        (
            5,
            as_role(ev("olive", Action::Export, "a,b", "reason=x"), "admin"),
        ),
        (6, ev("gone", Action::Snapshot, "b", "")),
        (7, ev("mallory", Action::LoginFailed, "", "")),
        (8, ev("mallory", Action::LoginFailed, "", "")),
        (9, ev("admin", Action::LoginFailed, "", "")),
        (
            10,
            ev(
                "cli",
                Action::RetentionDelete,
                "a",
                "segments=4 bytes=4096 from=x to=y reason=retain_days",
            ),
        ),
        (11, ev("olive", Action::HoldCreate, "a", "")),
    ] {
        f.audit.append(at(t), e).unwrap();
    }
    // After the period's end: not counted.
    f.audit
        .append(at(400), ev("olive", Action::LiveView, "a", ""))
        .unwrap();
    let src = Sources {
        config: &f.config,
        cameras: &f.config.cameras,
        store: &f.store,
        audit: &f.audit,
        users: &f.users,
        now_ns: at(1000),
    };
    let r = build(&src, T0, at(300)).unwrap();

    let a = &r.cameras[0];
    assert_eq!((a.id.as_str(), a.name.as_str()), ("a", "Gate"));
    assert_eq!(a.period_seconds, 300.0);
    assert_eq!(a.recorded_seconds, 170.0);
    assert_eq!(a.availability_percent, Some(56.67));
    assert_eq!((a.outage_count, a.outage_seconds), (2, 130.0));
    assert_eq!(a.outages[0].start, rfc3339(at(120)));
    assert_eq!(a.outages[0].end, rfc3339(at(150)));
    assert_eq!(a.outages[1].seconds, 100.0);
    assert!(!a.outages[1].ongoing);
    assert_eq!(
        a.oldest_footage.as_deref(),
        Some(rfc3339(T0 - 500 * S).as_str())
    );
    assert_eq!(a.retention_achieved_days, Some(round2(1500.0 / 86_400.0)));
    assert_eq!((a.held_segments, a.held_bytes), (4, 4000));
    assert_eq!((a.live_views, a.playbacks, a.exports), (1, 1, 1));
    assert_eq!((a.deleted_segments, a.deleted_bytes), (4, 4096));
    assert!(a.review_overdue && !a.purpose_missing);
    // Camera b has no footage at all: one outage, the whole period.
    let b = &r.cameras[1];
    assert_eq!((b.availability_percent, b.outage_count), (Some(0.0), 1));
    assert!(b.purpose_missing && !b.review_overdue);
    assert_eq!((b.playbacks, b.exports), (1, 1));

    let row = |user: &str, role: &str| {
        r.access
            .iter()
            .find(|u| u.user == user && u.role == role)
            .unwrap_or_else(|| panic!("no row for {user} as {role}: {:?}", r.access))
    };
    let olive = row("olive", "operator");
    assert_eq!(olive.role_now, "operator");
    assert_eq!(
        (
            olive.logins,
            olive.live_views,
            olive.playbacks,
            olive.exports
        ),
        (1, 1, 2, 0)
    );
    assert_eq!(olive.cameras, vec!["a", "b"]);
    let olive_admin = row("olive", "admin");
    assert_eq!(
        (
            olive_admin.role_now.as_str(),
            olive_admin.exports,
            olive_admin.logins
        ),
        ("operator", 1, 0)
    );
    assert_eq!(olive_admin.cameras, vec!["a", "b"]);
    // An entry without a role (an older cleannvr's) says so; the user is gone since.
    let gone = row("gone", ROLE_UNKNOWN);
    assert_eq!((gone.role_now.as_str(), gone.snapshots), ("removed", 1));
    assert_eq!(r.access.len(), 3, "{:?}", r.access);
    assert!(r.access.iter().all(|u| u.user != "mallory"));
    assert_eq!(r.failed_logins.total, 3);
    assert_eq!(r.failed_logins.by_name[0], ("mallory".to_string(), 2));
    assert_eq!(r.failed_logins.by_client, vec![("10.0.0.9".to_string(), 3)]);
    assert_eq!(r.holds_placed, 1);
    assert_eq!(r.audit.entries_in_period, 11);
    assert!(r.audit.chain_intact, "{:?}", r.audit.broken);
    assert_eq!(r.audit.verified, 13);
    assert_eq!(r.time_zone, "Europe/London");

    // A period running past now: measured up to now, the trailing gap ongoing.
    let src = Sources {
        now_ns: at(250),
        ..src
    };
    let r2 = build(&src, T0, at(3600)).unwrap();
    let a2 = &r2.cameras[0];
    assert_eq!(a2.period_seconds, 250.0);
    assert!(a2.outages.last().unwrap().ongoing);

    // Rendered: escaped HTML, defused CSV, JSON round trip.
    let html = render::html(&r);
    assert!(html.contains("56.67 %"), "{html}");
    assert!(
        html.contains("<th scope=\"col\">Role then</th><th scope=\"col\">Role now</th>")
            && html.contains("<td>olive</td><td>admin</td><td>operator</td>")
            && html.contains("<td>gone</td><td>unknown</td><td>removed</td>"),
        "{html}"
    );
    assert!(!html.contains("<script>") && html.contains("&lt;script&gt;"));
    assert!(html.contains("No purpose stated") && html.contains("2020-01-01 (overdue)"));
    assert!(
        html.contains("@media print") && !html.contains("http"),
        "no external resources"
    );
    let csv = render::csv(&r);
    assert!(csv.contains("\"'=HYPERLINK(\"\"x\"\")\""), "{csv}");
    assert!(csv.contains("a,Gate,true,true,"), "{csv}");
    assert!(
        csv.contains("access_user,role,role_now,")
            && csv.contains("\r\nolive,admin,operator,0,0,0,0,1,0,a b\r\n"),
        "{csv}"
    );
    let back: Report = serde_json::from_str(&render::Format::Json.render(&r)).unwrap();
    assert_eq!(back.cameras[0].recorded_seconds, 170.0);
}

#[test]
fn bounds_are_days_in_the_server_zone_or_rfc3339_times() {
    let tz = jiff::tz::TimeZone::get("Europe/London").unwrap();
    // Summer: the day starts at 23:00 UTC the day before; `to` is the next day's start.
    let from = parse_bound("2026-07-01", false, &tz).unwrap();
    let to = parse_bound("2026-07-31", true, &tz).unwrap();
    assert_eq!(rfc3339(from), "2026-06-30T23:00:00.000Z");
    assert_eq!(rfc3339(to), "2026-07-31T23:00:00.000Z");
    assert_eq!(
        parse_bound("2026-07-01T10:00:00Z", false, &tz).unwrap(),
        crate::clock::parse_rfc3339("2026-07-01T10:00:00Z").unwrap()
    );
    assert!(parse_bound("July", false, &tz).is_err());
    assert!(check_period(to, from).is_err());
    assert!(check_period(from, from).is_err());
    assert!(check_period(from, to).is_ok());
}
