//! PTZ service calls (ONVIF ver20 PTZ): continuous move, stop, status,
//! presets and home. The only ONVIF calls that change what a camera does,
//! made only on an operator's explicit command (`crate::ptz` decides when).
//!
//! Velocities and positions use the generic spaces (-1..1, zoom 0..1), which
//! every PTZ camera must support, so no space URIs are sent.

use serde::Serialize;

use super::client::{ErrorKind, OnvifClient, OnvifError, NS_PTZ};
use super::xml::{escape, Element};

/// Where the camera is pointing, in the generic position space.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PtzStatus {
    /// Pan, -1..1.
    pub pan: Option<f64>,
    /// Tilt, -1..1.
    pub tilt: Option<f64>,
    /// Zoom, 0..1.
    pub zoom: Option<f64>,
    /// Whether pan/tilt or zoom reports `MOVING`.
    pub moving: bool,
}

/// A stored camera position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Preset {
    /// The camera's token for it.
    pub token: String,
    /// Its name, as the camera reports it.
    pub name: String,
}

/// A velocity or position component as ONVIF writes it: finite, clamped.
fn num(v: f64, lo: f64) -> String {
    let v = if v.is_finite() { v.clamp(lo, 1.0) } else { 0.0 };
    format!("{v:.3}")
}

impl OnvifClient {
    fn ptz_url(&self, op: &str) -> Result<url::Url, OnvifError> {
        self.services()
            .ptz
            .clone()
            .ok_or_else(|| self.err(op, ErrorKind::Missing("a PTZ service".into())))
    }

    async fn ptz_call(&self, op: &str, body: &str) -> Result<Element, OnvifError> {
        let url = self.ptz_url(op)?;
        self.call(&url, NS_PTZ, op, body).await
    }

    /// Whether the camera offers a PTZ service at all.
    pub fn has_ptz(&self) -> bool {
        self.services().ptz.is_some()
    }

    /// `ContinuousMove` at these velocities (pan and tilt -1..1, zoom -1..1).
    /// `timeout_ms` asks the camera to stop by itself; not every camera
    /// honours it, so `crate::ptz` also sends `Stop`.
    pub async fn ptz_continuous_move(
        &self,
        profile: &str,
        pan: f64,
        tilt: f64,
        zoom: f64,
        timeout_ms: u64,
    ) -> Result<(), OnvifError> {
        let body = format!(
            "<tptz:ContinuousMove><tptz:ProfileToken>{}</tptz:ProfileToken><tptz:Velocity><tt:PanTilt x=\"{}\" y=\"{}\"/><tt:Zoom x=\"{}\"/></tptz:Velocity><tptz:Timeout>PT{}.{:03}S</tptz:Timeout></tptz:ContinuousMove>",
            escape(profile),
            num(pan, -1.0),
            num(tilt, -1.0),
            num(zoom, -1.0),
            timeout_ms / 1000,
            timeout_ms % 1000
        );
        self.ptz_call("ContinuousMove", &body).await.map(drop)
    }

    /// `Stop` of pan, tilt and zoom.
    pub async fn ptz_stop(&self, profile: &str) -> Result<(), OnvifError> {
        let body = format!(
            "<tptz:Stop><tptz:ProfileToken>{}</tptz:ProfileToken><tptz:PanTilt>true</tptz:PanTilt><tptz:Zoom>true</tptz:Zoom></tptz:Stop>",
            escape(profile)
        );
        self.ptz_call("Stop", &body).await.map(drop)
    }

    /// `GetStatus`.
    pub async fn ptz_status(&self, profile: &str) -> Result<PtzStatus, OnvifError> {
        let body = format!(
            "<tptz:GetStatus><tptz:ProfileToken>{}</tptz:ProfileToken></tptz:GetStatus>",
            escape(profile)
        );
        let r = self.ptz_call("GetStatus", &body).await?;
        Ok(parse_status(&r))
    }

    /// `GetPresets`.
    pub async fn ptz_presets(&self, profile: &str) -> Result<Vec<Preset>, OnvifError> {
        let body = format!(
            "<tptz:GetPresets><tptz:ProfileToken>{}</tptz:ProfileToken></tptz:GetPresets>",
            escape(profile)
        );
        let r = self.ptz_call("GetPresets", &body).await?;
        Ok(parse_presets(&r))
    }

    /// `GotoPreset`.
    pub async fn ptz_goto_preset(&self, profile: &str, preset: &str) -> Result<(), OnvifError> {
        let body = format!(
            "<tptz:GotoPreset><tptz:ProfileToken>{}</tptz:ProfileToken><tptz:PresetToken>{}</tptz:PresetToken></tptz:GotoPreset>",
            escape(profile),
            escape(preset)
        );
        self.ptz_call("GotoPreset", &body).await.map(drop)
    }

    /// `SetPreset`: stores the current position under `name`; returns the
    /// camera's token for it.
    pub async fn ptz_set_preset(&self, profile: &str, name: &str) -> Result<String, OnvifError> {
        let body = format!(
            "<tptz:SetPreset><tptz:ProfileToken>{}</tptz:ProfileToken><tptz:PresetName>{}</tptz:PresetName></tptz:SetPreset>",
            escape(profile),
            escape(name)
        );
        let r = self.ptz_call("SetPreset", &body).await?;
        r.text_at(&["PresetToken"])
            .map(str::to_owned)
            .ok_or_else(|| self.err("SetPreset", ErrorKind::Missing("PresetToken".into())))
    }

    /// `GotoHomePosition`.
    pub async fn ptz_goto_home(&self, profile: &str) -> Result<(), OnvifError> {
        let body = format!(
            "<tptz:GotoHomePosition><tptz:ProfileToken>{}</tptz:ProfileToken></tptz:GotoHomePosition>",
            escape(profile)
        );
        self.ptz_call("GotoHomePosition", &body).await.map(drop)
    }
}

/// Reads `GetStatusResponse`. Missing or non-numeric fields are `None`.
pub fn parse_status(r: &Element) -> PtzStatus {
    let status = r.find("PTZStatus");
    let pos = status.and_then(|s| s.child("Position"));
    let coord = |el: &str, attr: &str| {
        pos.and_then(|p| p.child(el))
            .and_then(|e| e.attr(attr))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite())
    };
    let moving = status.and_then(|s| s.child("MoveStatus")).is_some_and(|m| {
        m.children
            .iter()
            .any(|c| c.text.trim().eq_ignore_ascii_case("MOVING"))
    });
    PtzStatus {
        pan: coord("PanTilt", "x"),
        tilt: coord("PanTilt", "y"),
        zoom: coord("Zoom", "x"),
        moving,
    }
}

/// Reads `GetPresetsResponse`; presets without a token are skipped, and at
/// most 1,000 are kept (a camera's reply is untrusted).
pub fn parse_presets(r: &Element) -> Vec<Preset> {
    r.find_all("Preset")
        .into_iter()
        .filter_map(|p| {
            let token = p.attr("token")?.trim();
            (!token.is_empty()).then(|| Preset {
                token: token.to_owned(),
                name: p.text_at(&["Name"]).unwrap_or(token).to_owned(),
            })
        })
        .take(1000)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onvif::soap;

    fn reply(body: &str) -> Element {
        soap::parse_reply(soap::envelope(None, body).as_bytes()).unwrap()
    }

    #[test]
    fn status_position_and_motion() {
        let r = reply(
            r#"<tptz:GetStatusResponse><tptz:PTZStatus><tt:Position><tt:PanTilt x="0.25" y="-0.5"/><tt:Zoom x="0.1"/></tt:Position><tt:MoveStatus><tt:PanTilt>IDLE</tt:PanTilt><tt:Zoom>MOVING</tt:Zoom></tt:MoveStatus></tptz:PTZStatus></tptz:GetStatusResponse>"#,
        );
        let s = parse_status(&r);
        assert_eq!(
            s,
            PtzStatus {
                pan: Some(0.25),
                tilt: Some(-0.5),
                zoom: Some(0.1),
                moving: true
            }
        );
        let r = reply(
            r#"<tptz:GetStatusResponse><tptz:PTZStatus><tt:Position><tt:PanTilt x="NaN" y="x"/></tt:Position></tptz:PTZStatus></tptz:GetStatusResponse>"#,
        );
        assert_eq!(parse_status(&r), PtzStatus::default());
    }

    #[test]
    fn presets_need_a_token() {
        let r = reply(
            r#"<tptz:GetPresetsResponse><tptz:Preset token="1"><tt:Name>Gate</tt:Name></tptz:Preset><tptz:Preset token=" "><tt:Name>x</tt:Name></tptz:Preset><tptz:Preset token="2"/></tptz:GetPresetsResponse>"#,
        );
        assert_eq!(
            parse_presets(&r),
            vec![
                Preset {
                    token: "1".into(),
                    name: "Gate".into()
                },
                Preset {
                    token: "2".into(),
                    name: "2".into()
                }
            ]
        );
    }

    #[test]
    fn numbers_are_clamped_and_finite() {
        assert_eq!(num(2.0, -1.0), "1.000");
        assert_eq!(num(-3.0, -1.0), "-1.000");
        assert_eq!(num(f64::NAN, -1.0), "0.000");
        assert_eq!(num(0.5, -1.0), "0.500");
    }
}
