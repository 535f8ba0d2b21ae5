//! Events service calls (ONVIF ver10 events, WS-BaseNotification): a
//! PullPoint subscription (`CreatePullPointSubscription`, `PullMessages`,
//! `Renew`, `Unsubscribe`) and the parsing of the notifications it returns.
//! The same notifications come in the RTSP metadata track's `tt:MetadataStream`
//! documents; [`parse_notifications`] reads both, so both sources mean the same.
//!
//! Only the camera's own words are read here; deciding what a notification
//! means (motion, tamper, ...) is [`crate::events`]'s job. Notifications are
//! untrusted: the XML parser's limits apply, and a reply is also capped at
//! [`MAX_MESSAGES`] notifications with [`MAX_ITEMS`] items each.

use super::client::{ErrorKind, OnvifClient, OnvifError};
use super::xml::Element;

/// `CreatePullPointSubscription` SOAP action.
pub const ACTION_CREATE: &str =
    "http://www.onvif.org/ver10/events/wsdl/EventPortType/CreatePullPointSubscriptionRequest";
/// `PullMessages` SOAP action.
pub const ACTION_PULL: &str =
    "http://www.onvif.org/ver10/events/wsdl/PullPointSubscription/PullMessagesRequest";
/// `Renew` SOAP action (WS-BaseNotification subscription manager).
pub const ACTION_RENEW: &str =
    "http://docs.oasis-open.org/wsn/bw-2/SubscriptionManager/RenewRequest";
/// `Unsubscribe` SOAP action.
pub const ACTION_UNSUBSCRIBE: &str =
    "http://docs.oasis-open.org/wsn/bw-2/SubscriptionManager/UnsubscribeRequest";

/// Most notifications read from one `PullMessages` reply (we ask for fewer).
pub const MAX_MESSAGES: usize = 1000;
/// Most `SimpleItem`s kept per notification (source and data each).
pub const MAX_ITEMS: usize = 32;
/// Longest topic, item name or value kept, in bytes.
pub const MAX_TEXT: usize = 256;

/// Most reference parameters echoed from one subscription reference.
pub const MAX_REFERENCE_PARAMETERS: usize = 8;
/// Longest reference parameter echoed, as rendered XML.
pub const MAX_REFERENCE_PARAMETER_BYTES: usize = 4096;

/// A PullPoint subscription: where to pull from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The subscription manager's address (`SubscriptionReference/Address`),
    /// with our host for the camera's (as for every service address).
    pub address: url::Url,
    /// The address as the camera wrote it, for WS-Addressing `To`.
    pub reference: String,
    /// `SubscriptionReference/ReferenceParameters`, each rendered as the
    /// SOAP header block every call to the subscription must carry
    /// (WS-Addressing 1.0 §3.3). Cameras that serve all subscriptions at one
    /// address tell them apart this way (Axis and some Hikvision firmware
    /// send a `SubscriptionId`) and fault a call without it.
    pub reference_parameters: Vec<String>,
}

/// What a notification's `Message` says it is doing to the property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropertyOperation {
    /// The current state, sent once when a subscription starts.
    Initialized,
    /// The state changed.
    Changed,
    /// The property is gone (e.g. a rule was removed).
    Deleted,
    /// Not a property event (or the attribute is missing).
    None,
}

/// One `wsnt:NotificationMessage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The topic as sent, e.g. `tns1:RuleEngine/CellMotionDetector/Motion`.
    pub topic: String,
    /// `Message/@UtcTime` by the camera's clock, if it parsed.
    pub utc: Option<time::OffsetDateTime>,
    /// `Message/@PropertyOperation`.
    pub operation: PropertyOperation,
    /// `Source/SimpleItem` name and value pairs (which video source, rule, input).
    pub source: Vec<(String, String)>,
    /// `Data/SimpleItem` name and value pairs (`IsMotion`, `State`...).
    pub data: Vec<(String, String)>,
}

/// Why a `PullMessages` reply or a metadata document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    /// The payload is neither a `PullMessagesResponse` nor a `MetadataStream`.
    #[error("expected PullMessagesResponse or MetadataStream, got <{0}>")]
    WrongReply(String),
    /// More notifications than [`MAX_MESSAGES`].
    #[error("more than {MAX_MESSAGES} notifications in one document")]
    TooMany,
}

impl OnvifClient {
    pub(super) fn events_url(&self, op: &str) -> Result<url::Url, OnvifError> {
        self.services()
            .events
            .clone()
            .ok_or_else(|| self.err(op, ErrorKind::Missing("an events service".into())))
    }

    /// Whether the camera offers an events service.
    pub fn has_events(&self) -> bool {
        self.services().events.is_some()
    }

    /// `CreatePullPointSubscription`, ending after `termination` unless renewed.
    pub async fn create_pull_point(
        &self,
        termination: std::time::Duration,
    ) -> Result<Subscription, OnvifError> {
        const OP: &str = "CreatePullPointSubscription";
        let url = self.events_url(OP)?;
        let body = format!(
            "<tev:CreatePullPointSubscription><tev:InitialTerminationTime>{}</tev:InitialTerminationTime></tev:CreatePullPointSubscription>",
            duration(termination)
        );
        let r = self
            .call_addressed(&url, url.as_str(), &[], ACTION_CREATE, OP, &body)
            .await?;
        let addr = parse_subscription(&r).ok_or_else(|| {
            self.err(
                OP,
                ErrorKind::Missing("SubscriptionReference/Address".into()),
            )
        })?;
        Ok(Subscription {
            reference: addr.to_string(),
            address: self.reachable(addr),
            reference_parameters: parse_reference_parameters(&r),
        })
    }

    /// `PullMessages`: waits up to `timeout` on the camera for notifications.
    pub async fn pull_messages(
        &self,
        sub: &Subscription,
        timeout: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<Notification>, OnvifError> {
        const OP: &str = "PullMessages";
        let body = format!(
            "<tev:PullMessages><tev:Timeout>{}</tev:Timeout><tev:MessageLimit>{}</tev:MessageLimit></tev:PullMessages>",
            duration(timeout),
            limit.min(MAX_MESSAGES as u32)
        );
        let r = self
            .call_addressed(
                &sub.address,
                &sub.reference,
                &sub.reference_parameters,
                ACTION_PULL,
                OP,
                &body,
            )
            .await?;
        parse_notifications(&r).map_err(|e| self.err(OP, ErrorKind::NotSoap(e.to_string())))
    }

    /// `Renew`: the subscription now ends `termination` from the camera's now.
    pub async fn renew(
        &self,
        sub: &Subscription,
        termination: std::time::Duration,
    ) -> Result<(), OnvifError> {
        let body = format!(
            "<wsnt:Renew><wsnt:TerminationTime>{}</wsnt:TerminationTime></wsnt:Renew>",
            duration(termination)
        );
        self.call_addressed(
            &sub.address,
            &sub.reference,
            &sub.reference_parameters,
            ACTION_RENEW,
            "Renew",
            &body,
        )
        .await
        .map(drop)
    }

    /// `Unsubscribe`, so the camera frees the subscription at once (cameras
    /// allow only a few).
    pub async fn unsubscribe(&self, sub: &Subscription) -> Result<(), OnvifError> {
        self.call_addressed(
            &sub.address,
            &sub.reference,
            &sub.reference_parameters,
            ACTION_UNSUBSCRIBE,
            "Unsubscribe",
            "<wsnt:Unsubscribe/>",
        )
        .await
        .map(drop)
    }
}

/// An `xs:duration` of whole seconds (at least one).
fn duration(d: std::time::Duration) -> String {
    format!("PT{}S", d.as_secs().max(1))
}

/// Reads `CreatePullPointSubscriptionResponse`: the subscription address.
pub fn parse_subscription(r: &Element) -> Option<url::Url> {
    let addr = r.text_at(&["SubscriptionReference", "Address"])?;
    url::Url::parse(addr.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
}

/// Reads `SubscriptionReference/ReferenceParameters`: each child element,
/// rendered with its namespace and marked `wsa:IsReferenceParameter` as
/// WS-Addressing asks. At most [`MAX_REFERENCE_PARAMETERS`], each at most
/// [`MAX_REFERENCE_PARAMETER_BYTES`]; larger ones are dropped (the camera
/// will then refuse our calls, which says more than a giant header).
pub fn parse_reference_parameters(r: &Element) -> Vec<String> {
    let Some(params) = r.path(&["SubscriptionReference", "ReferenceParameters"]) else {
        return Vec::new();
    };
    params
        .children
        .iter()
        .take(MAX_REFERENCE_PARAMETERS)
        .filter_map(|p| {
            let mut p = p.clone();
            p.attrs.retain(|(k, _)| k != "IsReferenceParameter");
            let xml = p.to_xml();
            // `<n0:Name ...` or `<Name ...`: the marker goes after the tag name.
            let at = xml.find([' ', '>'])?;
            let xml = format!(
                "{} wsa:IsReferenceParameter=\"true\"{}",
                &xml[..at],
                &xml[at..]
            );
            (xml.len() <= MAX_REFERENCE_PARAMETER_BYTES).then_some(xml)
        })
        .collect()
}

/// The one reader of camera notifications: a `PullMessagesResponse` (the
/// PullPoint subscription) or a `tt:MetadataStream` document (the RTSP
/// metadata track, whose `tt:Event` elements carry the same
/// `wsnt:NotificationMessage`s; its video analytics and PTZ parts are not
/// events and are skipped). Notifications without a topic are skipped
/// (nothing could say what they are); long texts are cut at [`MAX_TEXT`].
/// The document itself went through [`crate::onvif::xml::parse`], whose
/// limits (no DTD, size, depth) hold for both sources.
pub fn parse_notifications(r: &Element) -> Result<Vec<Notification>, NotificationError> {
    let msgs: Vec<&Element> = match r.name.as_str() {
        "PullMessagesResponse" => r.children_named("NotificationMessage").collect(),
        "MetadataStream" => r
            .children_named("Event")
            .flat_map(|e| e.children_named("NotificationMessage"))
            .collect(),
        _ => return Err(NotificationError::WrongReply(cut(&r.name))),
    };
    if msgs.len() > MAX_MESSAGES {
        return Err(NotificationError::TooMany);
    }
    Ok(msgs.into_iter().filter_map(parse_notification).collect())
}

fn parse_notification(n: &Element) -> Option<Notification> {
    let topic = n.text_at(&["Topic"])?;
    // `wsnt:Message` wraps the ONVIF `tt:Message`.
    match n.child("Message").and_then(|m| m.child("Message")) {
        Some(msg) => parse_message(topic, msg),
        None => parse_message_opt(topic, None),
    }
}

/// One ONVIF `tt:Message` on `topic` (from a notification, or from
/// `GetCurrentMessage`, which returns the message without its topic).
/// `None` when the topic is empty.
pub fn parse_message(topic: &str, msg: &Element) -> Option<Notification> {
    parse_message_opt(topic, Some(msg))
}

fn parse_message_opt(topic: &str, msg: Option<&Element>) -> Option<Notification> {
    let topic = Some(topic.trim()).filter(|t| !t.is_empty())?;
    let items = |part: &str| -> Vec<(String, String)> {
        msg.and_then(|m| m.child(part))
            .map(|p| {
                p.children_named("SimpleItem")
                    .filter_map(|i| {
                        Some((cut(i.attr("Name")?), cut(i.attr("Value").unwrap_or(""))))
                    })
                    .take(MAX_ITEMS)
                    .collect()
            })
            .unwrap_or_default()
    };
    let utc = msg.and_then(|m| m.attr("UtcTime")).and_then(|t| {
        time::OffsetDateTime::parse(t.trim(), &time::format_description::well_known::Rfc3339).ok()
    });
    let operation = match msg.and_then(|m| m.attr("PropertyOperation")) {
        Some("Initialized") => PropertyOperation::Initialized,
        Some("Changed") => PropertyOperation::Changed,
        Some("Deleted") => PropertyOperation::Deleted,
        _ => PropertyOperation::None,
    };
    Some(Notification {
        topic: cut(topic),
        utc,
        operation,
        source: items("Source"),
        data: items("Data"),
    })
}

/// At most [`MAX_TEXT`] bytes of `s`, cut at a character boundary.
fn cut(s: &str) -> String {
    let mut end = s.len().min(MAX_TEXT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onvif::soap;

    fn reply(body: &str) -> Element {
        soap::parse_reply(soap::envelope(None, body).as_bytes()).unwrap()
    }

    #[test]
    fn subscription_address() {
        let r = reply(
            "<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference><wsa:Address> http://10.0.0.9/onvif/Events/PullSubManager_1 </wsa:Address></tev:SubscriptionReference><wsnt:CurrentTime>2024-01-01T00:00:00Z</wsnt:CurrentTime></tev:CreatePullPointSubscriptionResponse>",
        );
        assert_eq!(
            parse_subscription(&r).unwrap().as_str(),
            "http://10.0.0.9/onvif/Events/PullSubManager_1"
        );
        let r = reply("<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference><wsa:Address>file:///etc/passwd</wsa:Address></tev:SubscriptionReference></tev:CreatePullPointSubscriptionResponse>");
        assert_eq!(parse_subscription(&r), None);
        assert!(parse_reference_parameters(&r).is_empty());
    }

    #[test]
    fn reference_parameters_become_header_blocks() {
        // As Axis firmware sends it: one address, the subscription named in a parameter.
        let r = reply(
            r#"<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference><wsa:Address>http://10.0.0.9/onvif/services</wsa:Address><wsa:ReferenceParameters><dom0:SubscriptionId xmlns:dom0="http://www.axis.com/2009/event">3</dom0:SubscriptionId><x:Big xmlns:x="urn:x">PAYLOAD</x:Big></wsa:ReferenceParameters></tev:SubscriptionReference></tev:CreatePullPointSubscriptionResponse>"#
                .replace("PAYLOAD", &"a".repeat(MAX_REFERENCE_PARAMETER_BYTES))
                .as_str(),
        );
        let p = parse_reference_parameters(&r);
        assert_eq!(
            p,
            [
                r#"<n0:SubscriptionId wsa:IsReferenceParameter="true" xmlns:n0="http://www.axis.com/2009/event">3</n0:SubscriptionId>"#
            ],
            "the oversized one is dropped"
        );
        // It is a valid header block inside our envelope.
        let env = soap::envelope(Some(&p[0]), "<wsnt:Unsubscribe/>");
        let doc = crate::onvif::xml::parse(env.as_bytes()).unwrap();
        let id = doc.find("SubscriptionId").unwrap();
        assert_eq!(
            (id.ns.as_str(), id.text.as_str()),
            ("http://www.axis.com/2009/event", "3")
        );
        assert_eq!(id.attr("IsReferenceParameter"), Some("true"));
    }

    #[test]
    fn notifications_with_source_and_data() {
        // As a Hikvision camera sends it (namespace prefixes vary by vendor).
        let r = reply(
            r#"<tev:PullMessagesResponse><tev:CurrentTime>2024-05-01T10:00:01Z</tev:CurrentTime><tev:TerminationTime>2024-05-01T10:01:01Z</tev:TerminationTime>
<wsnt:NotificationMessage><wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">tns1:RuleEngine/CellMotionDetector/Motion</wsnt:Topic>
<wsnt:Message><tt:Message UtcTime="2024-05-01T10:00:00Z" PropertyOperation="Changed"><tt:Source><tt:SimpleItem Name="VideoSourceConfigurationToken" Value="VideoSourceToken"/><tt:SimpleItem Name="Rule" Value="MyMotionDetectorRule"/></tt:Source><tt:Data><tt:SimpleItem Name="IsMotion" Value="true"/></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage>
<wsnt:NotificationMessage><wsnt:Topic/></wsnt:NotificationMessage>
<wsnt:NotificationMessage><wsnt:Topic>tns1:Device/Trigger/DigitalInput</wsnt:Topic><wsnt:Message><tt:Message UtcTime="garbage"><tt:Data><tt:SimpleItem Value="x"/></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage>
</tev:PullMessagesResponse>"#,
        );
        let n = parse_notifications(&r).unwrap();
        assert_eq!(n.len(), 2, "the message without a topic is skipped");
        assert_eq!(n[0].topic, "tns1:RuleEngine/CellMotionDetector/Motion");
        assert_eq!(n[0].operation, PropertyOperation::Changed);
        assert_eq!(
            n[0].utc,
            Some(time::macros::datetime!(2024-05-01 10:00:00 UTC))
        );
        assert_eq!(n[0].source.len(), 2);
        assert_eq!(n[0].data, vec![("IsMotion".into(), "true".into())]);
        assert_eq!(n[1].utc, None);
        assert_eq!(n[1].operation, PropertyOperation::None);
        assert!(n[1].data.is_empty(), "an item without a name is dropped");
    }

    #[test]
    fn metadata_stream_documents_carry_the_same_notifications() {
        use crate::onvif::xml;
        // As an Axis camera sends it on its metadata track (captured; see
        // tests/peers/gst_rtsp_server.py), with a Dahua analytics frame beside.
        let doc = br#"<?xml version="1.0" encoding="UTF-8"?><tt:MetadataStream xmlns:tt="http://www.onvif.org/ver10/schema"><tt:VideoAnalytics><tt:Frame UtcTime="2024-05-01T10:00:00Z"><tt:Object ObjectId="0"/></tt:Frame></tt:VideoAnalytics><tt:Event><wsnt:NotificationMessage xmlns:tns1="http://www.onvif.org/ver10/topics" xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" xmlns:wsa5="http://www.w3.org/2005/08/addressing"><wsnt:Topic Dialect="http://docs.oasis-open.org/wsn/t-1/TopicExpression/Simple">tns1:VideoSource/tns1:MotionAlarm</wsnt:Topic><wsnt:ProducerReference><wsa5:Address>uri://ce70a274-592e-11df-a812-00408cac51a7/ProducerReference</wsa5:Address></wsnt:ProducerReference><wsnt:Message><tt:Message UtcTime="2014-09-10T22:30:19Z" PropertyOperation="Changed"><tt:Source><tt:SimpleItem Name="Source" Value="VideoSource_1"/></tt:Source><tt:Data><tt:SimpleItem Name="State" Value="true"/></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage></tt:Event></tt:MetadataStream>"#;
        let n = parse_notifications(&xml::parse(doc).unwrap()).unwrap();
        assert_eq!(n.len(), 1, "{n:?}");
        assert_eq!(n[0].topic, "tns1:VideoSource/tns1:MotionAlarm");
        assert_eq!(n[0].operation, PropertyOperation::Changed);
        assert_eq!(
            n[0].utc,
            Some(time::macros::datetime!(2014-09-10 22:30:19 UTC))
        );
        assert_eq!(n[0].source, vec![("Source".into(), "VideoSource_1".into())]);
        assert_eq!(n[0].data, vec![("State".into(), "true".into())]);
        // Analytics only: no events. Several events in one document: all.
        let frame = br#"<tt:MetadataStream xmlns:tt="http://www.onvif.org/ver10/schema"><tt:VideoAnalytics><tt:Frame UtcTime="2024-05-01T10:00:00Z"/></tt:VideoAnalytics></tt:MetadataStream>"#;
        assert!(parse_notifications(&xml::parse(frame).unwrap())
            .unwrap()
            .is_empty());
        let one = "<wsnt:NotificationMessage><wsnt:Topic>a</wsnt:Topic></wsnt:NotificationMessage>";
        let many = format!(
            "<tt:MetadataStream><tt:Event>{one}{one}</tt:Event><tt:Event>{one}</tt:Event></tt:MetadataStream>"
        );
        assert_eq!(
            parse_notifications(&xml::parse(many.as_bytes()).unwrap())
                .unwrap()
                .len(),
            3
        );
        let flood = format!(
            "<tt:MetadataStream>{}</tt:MetadataStream>",
            format!("<tt:Event>{one}</tt:Event>").repeat(MAX_MESSAGES + 1)
        );
        assert_eq!(
            parse_notifications(&xml::parse(flood.as_bytes()).unwrap()),
            Err(NotificationError::TooMany)
        );
    }

    #[test]
    fn wrong_replies_and_floods_are_errors() {
        let r = reply("<tev:GetEventPropertiesResponse/>");
        assert!(matches!(
            parse_notifications(&r),
            Err(NotificationError::WrongReply(_))
        ));
        let one = "<wsnt:NotificationMessage><wsnt:Topic>t</wsnt:Topic></wsnt:NotificationMessage>";
        let r = reply(&format!(
            "<tev:PullMessagesResponse>{}</tev:PullMessagesResponse>",
            one.repeat(MAX_MESSAGES + 1)
        ));
        assert_eq!(parse_notifications(&r), Err(NotificationError::TooMany));
        let long = "é".repeat(MAX_TEXT);
        let r = reply(&format!(
            "<tev:PullMessagesResponse><wsnt:NotificationMessage><wsnt:Topic>{long}</wsnt:Topic></wsnt:NotificationMessage></tev:PullMessagesResponse>"
        ));
        let n = parse_notifications(&r).unwrap();
        assert!(n[0].topic.len() <= MAX_TEXT && n[0].topic.chars().all(|c| c == 'é'));
    }

    #[test]
    fn hostile_replies_are_clear_errors() {
        use crate::onvif::xml::XmlError;
        let laughs = br#"<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><Envelope><Body><PullMessagesResponse><NotificationMessage><Topic>&b;</Topic></NotificationMessage></PullMessagesResponse></Body></Envelope>"#;
        assert_eq!(
            soap::parse_reply(laughs),
            Err(soap::ReplyError::Xml(XmlError::Doctype))
        );
        let undeclared = br#"<Envelope><Body><PullMessagesResponse><NotificationMessage><Topic>&xxe;</Topic></NotificationMessage></PullMessagesResponse></Body></Envelope>"#;
        assert_eq!(
            soap::parse_reply(undeclared),
            Err(soap::ReplyError::Xml(XmlError::UnknownEntity("xxe".into())))
        );
        let deep = format!(
            "<Envelope><Body><PullMessagesResponse>{}{}</PullMessagesResponse></Body></Envelope>",
            "<NotificationMessage>".repeat(100),
            "</NotificationMessage>".repeat(100)
        );
        assert_eq!(
            soap::parse_reply(deep.as_bytes()),
            Err(soap::ReplyError::Xml(XmlError::TooDeep))
        );
        // Wrong namespaces still parse by local name; a wrong element is refused.
        let r = soap::parse_reply(br#"<x:Envelope xmlns:x="urn:nope"><x:Body><x:PullMessagesResponse><y:NotificationMessage xmlns:y="urn:other"><y:Topic>a/b</y:Topic></y:NotificationMessage></x:PullMessagesResponse></x:Body></x:Envelope>"#).unwrap();
        assert_eq!(parse_notifications(&r).unwrap()[0].topic, "a/b");
    }
}
