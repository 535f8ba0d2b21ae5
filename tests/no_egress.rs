//! The promise to councils, as a test: cleannvr opens no connection and sends
//! no datagram to anything but the cameras it is configured with.
//!
//! Inside a network namespace of its own the test gives the "outside world"
//! a route that leads nowhere (a veth end as the default route, IPv4
//! and IPv6), so any attempt to reach it (a TCP SYN, a DNS query, NTP, STUN,
//! telemetry) leaves as a packet on that interface instead of failing before
//! it is sent. An nftables rule counts, and collects the destinations of,
//! every packet that cleannvr's user (nobody, 65534) sends anywhere but
//! loopback, where its two cameras are: an ONVIF camera (ipycam) and the
//! GStreamer RTSP server. The peers and the browser run as root, so their
//! own traffic (ipycam multicasts WS-Discovery Hello) is not counted.
//! cleannvr records both cameras while Chromium visits every page of its UI;
//! then the count must be zero. A positive control (nobody sending a
//! datagram and a SYN out) shows the rule counts what it should.

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::ipycam::{ipycam_python, Ipycam, ONVIF_PORT};
use common::netns::{inside_namespace, ip};
use common::*;

const NOBODY: u32 = 65534;

/// Whether everything this test needs is here (root, ip, nft, ipycam,
/// GStreamer, node with chromium); skips or fails per `require_peer`.
fn peers() -> bool {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    let missing = if unsafe { libc::geteuid() } != 0 {
        Some("root (network namespaces, nftables)".to_owned())
    } else if Command::new("nft").arg("--version").output().is_err() {
        Some("nft (nftables)".to_owned())
    } else if Command::new("ip").arg("-V").output().is_err() {
        Some("ip (iproute2)".to_owned())
    } else if !ipycam_python().exists() {
        Some(format!("ipycam at {}", ipycam_python().display()))
    } else if !Path::new("/usr/bin/chromium").exists()
        || !ui
            .join("node_modules/playwright-core/package.json")
            .exists()
    {
        Some("chromium and tests/ui/node_modules".to_owned())
    } else {
        None
    };
    require_peer(missing.is_none(), &missing.unwrap_or_default())
}

fn nft(script: &str) {
    let st = Command::new("nft")
        .arg(script)
        .status()
        .expect("running nft");
    assert!(st.success(), "nft {script}");
}

fn nft_out(args: &[&str]) -> String {
    let out = Command::new("nft")
        .args(args)
        .output()
        .expect("running nft");
    assert!(out.status.success(), "nft {args:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Packets counted so far by the egress rules, and the addresses they went to.
fn egress() -> (u64, String) {
    let chain = nft_out(&["list", "chain", "inet", "egress", "out"]);
    let packets = chain
        .split("packets ")
        .skip(1)
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    let v4 = nft_out(&["list", "set", "inet", "egress", "seen4"]);
    let v6 = nft_out(&["list", "set", "inet", "egress", "seen6"]);
    (packets, format!("{v4}{v6}"))
}

#[test]
fn nothing_leaves_but_camera_traffic() {
    if !peers() || !inside_namespace("nothing_leaves_but_camera_traffic") {
        return;
    }
    // A default route into one end of a veth pair whose other end goes nowhere
    // (this kernel has no dummy interfaces): the way out exists, and leads nowhere.
    ip(&["link", "add", "eg0", "type", "veth", "peer", "name", "eg1"]);
    ip(&["link", "set", "eg1", "up"]);
    ip(&["addr", "add", "192.0.2.1/24", "dev", "eg0"]);
    ip(&["addr", "add", "2001:db8::1/64", "dev", "eg0", "nodad"]);
    ip(&["link", "set", "eg0", "up"]);
    ip(&["route", "add", "default", "via", "192.0.2.2", "dev", "eg0"]);
    ip(&[
        "-6",
        "route",
        "add",
        "default",
        "via",
        "2001:db8::2",
        "dev",
        "eg0",
    ]);
    nft("add table inet egress");
    nft("add chain inet egress out { type filter hook output priority 0; }");
    nft("add set inet egress seen4 { type ipv4_addr; flags dynamic; }");
    nft("add set inet egress seen6 { type ipv6_addr; flags dynamic; }");
    let uid = NOBODY.to_string();
    nft(&format!(
        "add rule inet egress out meta skuid {uid} oifname != \"lo\" meta nfproto ipv4 update @seen4 {{ ip daddr }} counter"
    ));
    nft(&format!(
        "add rule inet egress out meta skuid {uid} oifname != \"lo\" meta nfproto ipv6 update @seen6 {{ ip6 daddr }} counter"
    ));

    let gst = GstServer::start(&[]);
    let _cam = Ipycam::start("", "");
    let dir = tempfile::tempdir().unwrap();
    let cameras = format!(
        "[[camera]]\nid = \"lobby\"\nname = \"Lobby (ONVIF)\"\nonvif = {{ host = \"127.0.0.1\", port = {ONVIF_PORT} }}\n\
         [[camera]]\nid = \"gate\"\nname = \"Gate\"\nurl = \"{}\"\n",
        gst.url("h264aac")
    );
    let cfg = dir.path().join("cleannvr.toml");
    std::fs::write(&cfg, config(dir.path(), 3, &cameras)).unwrap();
    add_user(&cfg, "root", "admin", "admin pass 12345");
    // cleannvr runs as nobody: it must own its data (the admin was added as root).
    let st = Command::new("chown")
        .args(["-R", &format!("{uid}:{uid}")])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    let nvr = Nvr::start_as(cfg, &["run"], NOBODY);
    let base = nvr.http.clone();
    let admin = login(&base, "root", "admin pass 12345");
    wait_for(Duration::from_secs(90), "both cameras recorded", || {
        let (_, body) = get(&base, "/api/cameras", &admin);
        let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
        let cams = v["cameras"].as_array()?;
        (cams.len() == 2 && cams.iter().all(|c| c["segments"].as_u64() > Some(0))).then_some(())
    });

    let screens = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-tour");
    std::fs::create_dir_all(&screens).unwrap();
    let cfg_json = serde_json::json!({"admin": ["root", "admin pass 12345"], "screens": screens});
    let out = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/tour.mjs"))
        .args([&base, &cfg_json.to_string()])
        .output()
        .expect("starting node");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(
        out.status.success() && text.contains(", 0 failed"),
        "UI tour failed:\n{text}\n--- cleannvr log ---\n{}",
        nvr.log.text()
    );

    let (packets, seen) = egress();
    assert_eq!(
        packets,
        0,
        "cleannvr sent {packets} packets to somewhere other than its cameras:\n{seen}\n--- cleannvr log ---\n{}",
        nvr.log.text()
    );
    drop(nvr);

    // Positive control: the same rules see nobody's datagram and SYN to the outside.
    let st = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import socket\n\
             socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('198.51.100.7', 53))\n\
             s = socket.socket(); s.setblocking(False)\n\
             try: s.connect(('203.0.113.9', 443))\n\
             except BlockingIOError: pass",
        ])
        .uid(NOBODY)
        .gid(NOBODY)
        .status()
        .unwrap();
    assert!(st.success());
    let (packets, seen) = egress();
    assert!(
        packets >= 2 && seen.contains("198.51.100.7") && seen.contains("203.0.113.9"),
        "the egress rules did not see the control traffic ({packets} packets):\n{seen}"
    );
    drop(gst);
}
