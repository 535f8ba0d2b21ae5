//! The ONVIF client against a scripted camera on loopback, for behaviour
//! ipycam does not have: HTTP digest instead of WS-Security, a skewed camera
//! clock, wrong XAddr hosts, `ter:NotAuthorized` faults, leaky network
//! settings for the isolation audit, and hostile replies (DTD, oversized).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use cleannvr::onvif::audit::{self, Check, Level};
use cleannvr::onvif::{Credentials, ErrorKind, OnvifClient};
use md5::Digest as _;

const USER: &str = "operator";
const PASS: &str = "pa\"ss<word";

#[derive(Clone, Copy, PartialEq)]
enum Auth {
    /// WS-Security UsernameToken, checked against the camera's (skewed) clock.
    Wsse,
    /// HTTP digest only; UsernameTokens are ignored.
    Digest,
}

struct Cam {
    auth: Auth,
    /// Camera clock minus real time.
    skew: time::Duration,
    requests: AtomicUsize,
    digest_ok: AtomicUsize,
    /// Our listening port, for XAddrs.
    port: std::sync::OnceLock<u16>,
}

fn envelope(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:trt="http://www.onvif.org/ver10/media/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:ter="http://www.onvif.org/ver10/error"><SOAP-ENV:Body>{body}</SOAP-ENV:Body></SOAP-ENV:Envelope>"#
    )
}

fn not_authorized() -> Response {
    let body = envelope(
        "<SOAP-ENV:Fault><SOAP-ENV:Code><SOAP-ENV:Value>SOAP-ENV:Sender</SOAP-ENV:Value><SOAP-ENV:Subcode><SOAP-ENV:Value>ter:NotAuthorized</SOAP-ENV:Value></SOAP-ENV:Subcode></SOAP-ENV:Code><SOAP-ENV:Reason><SOAP-ENV:Text xml:lang=\"en\">Sender not Authorized</SOAP-ENV:Text></SOAP-ENV:Reason></SOAP-ENV:Fault>",
    );
    (StatusCode::BAD_REQUEST, body).into_response()
}

/// Text of the first element with this local name in a request.
fn element(body: &str, name: &str) -> Option<String> {
    let root = cleannvr::onvif::xml::parse(body.as_bytes()).ok()?;
    root.find(name).map(|e| e.text.trim().to_owned())
}

fn wsse_ok(cam: &Cam, body: &str) -> bool {
    let (Some(user), Some(pw), Some(nonce), Some(created)) = (
        element(body, "Username"),
        element(body, "Password"),
        element(body, "Nonce"),
        element(body, "Created"),
    ) else {
        return false;
    };
    let Ok(t) =
        time::OffsetDateTime::parse(&created, &time::format_description::well_known::Rfc3339)
    else {
        return false;
    };
    // The token must be fresh by the camera's clock, which is `skew` off ours.
    let camera_now = time::OffsetDateTime::now_utc() + cam.skew;
    if (t - camera_now).abs() > time::Duration::seconds(10) {
        return false;
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut h = sha1::Sha1::new();
    h.update(b64.decode(nonce).unwrap());
    h.update(created.as_bytes());
    h.update(PASS.as_bytes());
    user == USER && pw == b64.encode(h.finalize())
}

fn digest_ok(headers: &HeaderMap) -> bool {
    let Some(a) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let field = |k: &str| {
        let i = a.find(&format!("{k}="))? + k.len() + 1;
        let rest = &a[i..];
        Some(if let Some(r) = rest.strip_prefix('"') {
            r[..r.find('"')?].to_owned()
        } else {
            rest.split(',').next()?.trim().to_owned()
        })
    };
    let md5 = |s: String| format!("{:x}", md5::Md5::digest(s.as_bytes()));
    let (Some(user), Some(nc), Some(cnonce), Some(uri), Some(resp)) = (
        field("username"),
        field("nc"),
        field("cnonce"),
        field("uri"),
        field("response"),
    ) else {
        return false;
    };
    let ha1 = md5(format!("{USER}:fake:{PASS}"));
    let ha2 = md5(format!("POST:{uri}"));
    user == USER
        && field("opaque").as_deref() == Some("op")
        && resp == md5(format!("{ha1}:n0nce:{nc}:{cnonce}:auth:{ha2}"))
}

async fn handle(State(cam): State<Arc<Cam>>, headers: HeaderMap, body: String) -> Response {
    cam.requests.fetch_add(1, Ordering::SeqCst);
    let op = |n: &str| body.contains(&format!(":{n}>")) || body.contains(&format!(":{n}/>"));
    if op("GetSystemDateAndTime") {
        // ONVIF: answered without authentication, so clients can measure the offset.
        let t = time::OffsetDateTime::now_utc() + cam.skew;
        return envelope(&format!(
            "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>NTP</tt:DateTimeType><tt:UTCDateTime><tt:Time><tt:Hour>{}</tt:Hour><tt:Minute>{}</tt:Minute><tt:Second>{}</tt:Second></tt:Time><tt:Date><tt:Year>{}</tt:Year><tt:Month>{}</tt:Month><tt:Day>{}</tt:Day></tt:Date></tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>",
            t.hour(), t.minute(), t.second(), t.year(), u8::from(t.month()), t.day()
        ))
        .into_response();
    }
    match cam.auth {
        Auth::Wsse if !wsse_ok(&cam, &body) => return not_authorized(),
        Auth::Digest if !digest_ok(&headers) => {
            return Response::builder()
                .status(401)
                .header("www-authenticate", r#"Basic realm="fake""#)
                .header(
                    "www-authenticate",
                    r#"Digest realm="fake", qop="auth", nonce="n0nce", opaque="op", algorithm=MD5"#,
                )
                .body(Body::from("401"))
                .unwrap();
        }
        Auth::Digest => {
            cam.digest_ok.fetch_add(1, Ordering::SeqCst);
        }
        Auth::Wsse => {}
    }
    let reply = if op("GetServices") {
        // The camera believes it lives at 192.0.2.1 (wrong behind NAT); the client must keep our host.
        "<tds:GetServicesResponse><tds:Service><tds:Namespace>http://www.onvif.org/ver10/media/wsdl</tds:Namespace><tds:XAddr>http://192.0.2.1:PORT/onvif/media_service</tds:XAddr></tds:Service></tds:GetServicesResponse>".replace("PORT", &cam.port.get().unwrap().to_string())
    } else if op("GetDeviceInformation") {
        "<tds:GetDeviceInformationResponse><tds:Manufacturer>Fake</tds:Manufacturer><tds:Model>F1</tds:Model><tds:FirmwareVersion>9</tds:FirmwareVersion><tds:SerialNumber>S</tds:SerialNumber><tds:HardwareId>H</tds:HardwareId></tds:GetDeviceInformationResponse>".to_owned()
    } else if op("GetProfiles") {
        "<trt:GetProfilesResponse><trt:Profiles token=\"p1\"><tt:Name>main</tt:Name><tt:VideoEncoderConfiguration><tt:Encoding>H265</tt:Encoding><tt:Resolution><tt:Width>2688</tt:Width><tt:Height>1520</tt:Height></tt:Resolution></tt:VideoEncoderConfiguration></trt:Profiles></trt:GetProfilesResponse>".to_owned()
    } else if op("GetStreamUri") {
        "<trt:GetStreamUriResponse><trt:MediaUri><tt:Uri>rtsp://0.0.0.0:554/Streaming/Channels/101?transportmode=unicast&amp;profile=p1</tt:Uri></trt:MediaUri></trt:GetStreamUriResponse>".to_owned()
    } else if op("GetNetworkDefaultGateway") {
        "<tds:GetNetworkDefaultGatewayResponse><tds:NetworkGateway><tt:IPv4Address>192.168.1.254</tt:IPv4Address></tds:NetworkGateway></tds:GetNetworkDefaultGatewayResponse>".to_owned()
    } else if op("GetDNS") {
        "<tds:GetDNSResponse><tds:DNSInformation><tt:FromDHCP>false</tt:FromDHCP><tt:DNSManual><tt:Type>IPv4</tt:Type><tt:IPv4Address>8.8.8.8</tt:IPv4Address></tt:DNSManual></tds:DNSInformation></tds:GetDNSResponse>".to_owned()
    } else if op("GetNTP") {
        "<tds:GetNTPResponse><tds:NTPInformation><tt:FromDHCP>false</tt:FromDHCP><tt:NTPManual><tt:Type>DNS</tt:Type><tt:DNSname>time.windows.com</tt:DNSname></tt:NTPManual></tds:NTPInformation></tds:GetNTPResponse>".to_owned()
    } else if op("GetNetworkProtocols") {
        "<tds:GetNetworkProtocolsResponse><tds:NetworkProtocols><tt:Name>HTTP</tt:Name><tt:Enabled>true</tt:Enabled><tt:Port>80</tt:Port></tds:NetworkProtocols><tds:NetworkProtocols><tt:Name>RTSP</tt:Name><tt:Enabled>true</tt:Enabled><tt:Port>554</tt:Port></tds:NetworkProtocols></tds:GetNetworkProtocolsResponse>".to_owned()
    } else if op("GetHostname") {
        // Not every camera implements everything: the audit must report this as unknown.
        return (StatusCode::INTERNAL_SERVER_ERROR, envelope("<SOAP-ENV:Fault><SOAP-ENV:Code><SOAP-ENV:Value>SOAP-ENV:Receiver</SOAP-ENV:Value><SOAP-ENV:Subcode><SOAP-ENV:Value>ter:ActionNotSupported</SOAP-ENV:Value></SOAP-ENV:Subcode></SOAP-ENV:Code><SOAP-ENV:Reason><SOAP-ENV:Text>not implemented</SOAP-ENV:Text></SOAP-ENV:Reason></SOAP-ENV:Fault>")).into_response();
    } else if op("GetLaughs") {
        return r#"<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><Envelope><Body><x>&b;</x></Body></Envelope>"#.into_response();
    } else if op("GetHuge") {
        // An endless stream would do the same; 4 MiB in chunks is enough to cross the cap.
        let chunks = futures::stream::iter(
            (0..4096).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 1024]))),
        );
        return Response::builder()
            .status(200)
            .body(Body::from_stream(chunks))
            .unwrap();
    } else {
        return (StatusCode::BAD_REQUEST, "unknown").into_response();
    };
    envelope(&reply).into_response()
}

async fn start(auth: Auth, skew: time::Duration) -> (Arc<Cam>, u16) {
    let cam = Arc::new(Cam {
        auth,
        skew,
        requests: AtomicUsize::new(0),
        digest_ok: AtomicUsize::new(0),
        port: std::sync::OnceLock::new(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    cam.port.set(port).unwrap();
    let app = axum::Router::new()
        .route("/onvif/{service}", axum::routing::post(handle))
        .with_state(cam.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (cam, port)
}

/// Now, ns since the epoch (the server's clock here is the system clock).
fn wall_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn creds(p: &str) -> Option<Credentials> {
    Some(Credentials {
        username: USER.into(),
        password: p.into(),
    })
}

#[tokio::test]
async fn username_token_follows_a_skewed_camera_clock() {
    // An hour off: a token stamped with our clock would be refused.
    let (_cam, port) = start(Auth::Wsse, time::Duration::hours(1)).await;
    let c = OnvifClient::connect("127.0.0.1", port, creds(PASS))
        .await
        .unwrap();
    // The media XAddr said 192.0.2.1; we keep talking to the host we reached.
    assert_eq!(
        c.services().media.as_ref().unwrap().host_str(),
        Some("127.0.0.1")
    );
    let info = c.device_information().await.unwrap();
    assert_eq!(
        (info.manufacturer.as_str(), info.model.as_str()),
        ("Fake", "F1")
    );
    let p = c.profiles().await.unwrap();
    assert_eq!(
        (p[0].token.as_str(), p[0].encoding.as_deref(), p[0].width),
        ("p1", Some("H265"), Some(2688))
    );
    assert_eq!(
        c.stream_uri("p1").await.unwrap(),
        "rtsp://0.0.0.0:554/Streaming/Channels/101?transportmode=unicast&profile=p1"
    );
    let cfg = cleannvr::config::OnvifCameraConfig {
        host: "127.0.0.1".into(),
        port,
        username: Some(USER.into()),
        password: Some(PASS.into()),
        profile: None,
        events_poll_seconds: None,
    };
    let r = cleannvr::onvif::resolve(&cfg).await.unwrap();
    assert_eq!(
        r.main.0,
        "rtsp://127.0.0.1:554/Streaming/Channels/101?transportmode=unicast&profile=p1"
    );
    assert!(r.sub.is_none());

    // ter:NotAuthorized in an HTTP 400 is "not authorized", not a generic fault.
    let e = OnvifClient::connect("127.0.0.1", port, creds("nope"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotAuthorized, "{e}");
    assert!(!e.to_string().contains("nope"));
}

#[tokio::test]
async fn http_digest_fallback() {
    let (cam, port) = start(Auth::Digest, time::Duration::ZERO).await;
    let c = OnvifClient::connect("127.0.0.1", port, creds(PASS))
        .await
        .unwrap();
    let info = c.device_information().await.unwrap();
    assert_eq!(info.model, "F1");
    c.profiles().await.unwrap();
    // GetServices challenged once; later calls reuse the challenge (nc increments) without a 401.
    let before = cam.requests.load(Ordering::SeqCst);
    c.device_information().await.unwrap();
    assert_eq!(cam.requests.load(Ordering::SeqCst), before + 1);
    assert!(cam.digest_ok.load(Ordering::SeqCst) >= 3);
    let e = OnvifClient::connect("127.0.0.1", port, creds("wrong"))
        .await
        .unwrap_err();
    assert!(e.is_not_authorized(), "{e}");
}

#[tokio::test]
async fn isolation_audit_reports_routes_out() {
    let (_cam, port) = start(Auth::Wsse, time::Duration::ZERO).await;
    let c = OnvifClient::connect("127.0.0.1", port, creds(PASS))
        .await
        .unwrap();
    let r = audit::audit("gate", &c).await;
    assert_eq!(r.gateways, Check::Ok(vec!["192.168.1.254".to_string()]));
    assert_eq!(r.dns.ok().unwrap().servers, vec!["8.8.8.8"]);
    assert_eq!(r.ntp.ok().unwrap().servers, vec!["time.windows.com"]);
    assert_eq!(r.time_source, Check::Ok(Some("NTP".into())));
    assert_eq!(r.protocols.ok().unwrap().len(), 2);
    assert!(
        matches!(&r.hostname, Check::Error(e) if e.contains("ActionNotSupported")),
        "{:?}",
        r.hostname
    );
    assert!(r.has_route_out());
    let warnings: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.level == Level::Warning)
        .collect();
    assert_eq!(warnings.len(), 3, "{r}");
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["gateways"]["ok"][0], "192.168.1.254");
    let text = r.to_string();
    assert!(
        text.contains("POSSIBLE ROUTE OUT") && text.contains("time.windows.com"),
        "{text}"
    );
}

#[tokio::test]
async fn hostile_replies_are_refused() {
    let (_cam, port) = start(Auth::Wsse, time::Duration::ZERO).await;
    let c = OnvifClient::connect("127.0.0.1", port, creds(PASS))
        .await
        .unwrap();
    let e = c
        .device_call("GetLaughs", "<tds:GetLaughs/>")
        .await
        .unwrap_err();
    assert!(
        matches!(
            e.kind,
            ErrorKind::Xml(cleannvr::onvif::xml::XmlError::Doctype)
        ),
        "{e}"
    );
    assert!(e.to_string().contains("DTD"), "{e}");
    let e = c
        .device_call("GetHuge", "<tds:GetHuge/>")
        .await
        .unwrap_err();
    assert!(
        matches!(
            e.kind,
            ErrorKind::Http(cleannvr::onvif::http::HttpError::TooLarge)
        ),
        "{e}"
    );
    // A camera announcing a 100 MB reply is refused before any of it is read.
    let liar = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let liar_addr = liar.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut s, _) = liar.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n<")
            .await
            .unwrap();
        // Hold the connection open: the client must not wait for the rest.
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    });
    let url = url::Url::parse(&format!("http://{liar_addr}/onvif/device_service")).unwrap();
    let started = std::time::Instant::now();
    let e = OnvifClient::with_device_url(url, None)
        .device_call("GetDeviceInformation", "<tds:GetDeviceInformation/>")
        .await
        .unwrap_err();
    assert!(
        matches!(
            e.kind,
            ErrorKind::Http(cleannvr::onvif::http::HttpError::TooLarge)
        ),
        "{e}"
    );
    // Refused on the header, not after the call's timeout ran out waiting for the
    // rest (not a speed claim: the liar holds the connection 30 s).
    assert!(started.elapsed() < cleannvr::onvif::http::CALL_TIMEOUT);
    // An operation the camera does not know: a clear HTTP status, naming camera and operation.
    let e = c
        .device_call("GetNothing", "<tds:GetNothing/>")
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Status(400));
    assert!(
        e.to_string()
            .contains(&format!("127.0.0.1:{port}: GetNothing")),
        "{e}"
    );
}

#[tokio::test]
async fn isolation_report_through_the_admin_api() {
    use axum::extract::ConnectInfo;
    use cleannvr::web::{self, ClientAddr};
    use tower::ServiceExt;

    let (_cam, port) = start(Auth::Wsse, time::Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntls = false\n[storage]\ndir = \"{}\"\n\
         [[camera]]\nid = \"gate\"\nonvif = {{ host = \"127.0.0.1\", port = {port}, username = \"{USER}\", password = '{PASS}' }}\n",
        dir.path().display()
    );
    let cfg = cleannvr::config::Config::from_toml(&toml, std::path::Path::new("t.toml"), |_| None)
        .unwrap();
    let app = common::app(
        cfg,
        Arc::new(cleannvr::clock::SystemClock),
        Default::default(),
    );
    app.users
        .add(
            "root",
            cleannvr::auth::Role::Admin,
            None,
            "admin pass 12345",
            0,
        )
        .unwrap();
    let router = web::router(app);
    let call = |req: axum::http::Request<Body>| {
        let router = router.clone();
        async move {
            let mut req = req;
            req.extensions_mut()
                .insert(ConnectInfo(ClientAddr("127.0.0.1:5000".parse().unwrap())));
            let resp = router.oneshot(req).await.unwrap();
            let status = resp.status();
            let cookie = resp
                .headers()
                .get("set-cookie")
                .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned());
            let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, cookie, body)
        }
    };
    let (status, cookie, _) = call(
        axum::http::Request::post("/api/login")
            .header("content-type", "application/json")
            .body(Body::from(
                r#"{"username":"root","password":"admin pass 12345"}"#,
            ))
            .unwrap(),
    )
    .await;
    assert!(status.is_success(), "{status}");
    let cookie = cookie.unwrap();
    // The report's isolation section, as JSON, and as the printable page.
    let report = |format: &'static str| {
        let cookie = cookie.clone();
        async move {
            let (status, _, body) = call(
                axum::http::Request::get(format!(
                    "/api/report?from=2025-01-01T00:00:00Z&to=2034-01-01T00:00:00Z{format}"
                ))
                .header("cookie", &cookie)
                .body(Body::empty())
                .unwrap(),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
            String::from_utf8(body.to_vec()).unwrap()
        }
    };
    let before: serde_json::Value = serde_json::from_str(&report("").await).unwrap();
    assert_eq!(
        before["isolation"],
        serde_json::json!([{"camera": "gate", "audited": null, "audited_local": null,
            "by": null, "verdict": null, "result": "never audited", "findings": []}]),
        "an ONVIF camera never audited says so"
    );
    let t0 = wall_ns();
    let (status, _, body) = call(
        axum::http::Request::get("/api/cameras/gate/isolation")
            .header("cookie", &cookie)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["route_out"], true, "{v}");
    assert_eq!(v["report"]["gateways"]["ok"][0], "192.168.1.254");
    let text = v.to_string();
    assert!(
        !text.contains(PASS) && !text.contains("pa\\\"ss"),
        "no credentials in the report"
    );

    // The audit's result is kept with its time, and the Code of Practice report shows it.
    let t1 = wall_ns();
    let after: serde_json::Value = serde_json::from_str(&report("").await).unwrap();
    let row = &after["isolation"][0];
    assert_eq!(
        (&row["camera"], &row["verdict"], &row["by"], &row["result"]),
        (
            &serde_json::json!("gate"),
            &serde_json::json!("route_out"),
            &serde_json::json!("root"),
            &serde_json::json!("possible route out")
        ),
        "{after}"
    );
    let at = cleannvr::clock::parse_rfc3339(row["audited"].as_str().unwrap()).unwrap();
    assert!(
        t0 - 1_000_000 <= at && at <= t1,
        "audited (ms precision) between the request and its answer: {row}"
    );
    let findings = row["findings"].to_string();
    assert!(
        findings.contains("192.168.1.254"),
        "the gateway is named: {findings}"
    );
    assert!(!findings.contains(PASS), "no credentials");
    let page = report("&format=html").await;
    assert!(
        page.contains("<h2>Camera isolation audit</h2>")
            && page.contains("<td class=\"bad\">possible route out</td>")
            && page.contains("192.168.1.254"),
        "{page}"
    );
}
