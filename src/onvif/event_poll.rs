//! Reading a camera's event states without a subscription, for cameras
//! that refuse PullPoint: `GetEventProperties` names the topics the camera
//! can raise and which of them are properties (states such as "motion on");
//! WS-BaseNotification's `GetCurrentMessage` (bound in ONVIF's
//! `NotificationProducerBinding`) returns the last message on one topic.
//! Asking each property topic in turn is a poll that needs no connection
//! from the camera to us.
//!
//! Only the camera's words are read here; [`crate::events::poll`] decides
//! when to ask and what a change means.

use super::client::{ErrorKind, OnvifClient, OnvifError};
use super::events::{parse_message, Notification};
use super::xml::{escape, Element};

/// `GetEventProperties` SOAP action.
pub const ACTION_GET_EVENT_PROPERTIES: &str =
    "http://www.onvif.org/ver10/events/wsdl/EventPortType/GetEventPropertiesRequest";
/// `GetCurrentMessage` SOAP action (WS-BaseNotification notification producer).
pub const ACTION_GET_CURRENT_MESSAGE: &str =
    "http://docs.oasis-open.org/wsn/bw-2/NotificationProducer/GetCurrentMessageRequest";
/// The topic expression dialect we write (mandatory for ONVIF devices).
pub const DIALECT_CONCRETE: &str = "http://docs.oasis-open.org/wsn/t-1/TopicExpression/Concrete";
/// The ONVIF topic namespace, written with its usual prefix `tns1`.
pub const NS_TOPICS: &str = "http://www.onvif.org/ver10/topics";

/// Most property topics polled per camera: each costs a request per poll.
pub const MAX_POLLED_TOPICS: usize = 16;
/// Deepest topic path read from a topic set.
const MAX_TOPIC_DEPTH: usize = 8;

/// A concrete topic the camera advertises as a property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyTopic {
    /// The topic as we write it, e.g. `tns1:VideoSource/MotionAlarm`;
    /// vendor segments get prefixes `ns1`, `ns2`... declared in `namespaces`.
    pub expression: String,
    /// Prefix and namespace URI for every prefix in `expression`.
    pub namespaces: Vec<(String, String)>,
}

impl OnvifClient {
    /// `GetEventProperties`: the camera's property topics (at most
    /// [`MAX_POLLED_TOPICS`], those we can name a kind for first).
    pub async fn property_topics(&self) -> Result<Vec<PropertyTopic>, OnvifError> {
        const OP: &str = "GetEventProperties";
        let url = self.events_url(OP)?;
        let r = self
            .call_addressed(
                &url,
                url.as_str(),
                &[],
                ACTION_GET_EVENT_PROPERTIES,
                OP,
                "<tev:GetEventProperties/>",
            )
            .await?;
        let set = r
            .child("TopicSet")
            .ok_or_else(|| self.err(OP, ErrorKind::Missing("TopicSet".into())))?;
        Ok(property_topics(set))
    }

    /// `GetCurrentMessage` on one topic: its last message, or `None` when
    /// the camera has had none yet (`NoCurrentMessageOnTopicFault`).
    pub async fn current_message(
        &self,
        topic: &PropertyTopic,
    ) -> Result<Option<Notification>, OnvifError> {
        const OP: &str = "GetCurrentMessage";
        let url = self.events_url(OP)?;
        let xmlns: String = topic
            .namespaces
            .iter()
            .map(|(p, ns)| format!(" xmlns:{p}=\"{}\"", escape(ns)))
            .collect();
        let body = format!(
            "<wsnt:GetCurrentMessage><wsnt:Topic Dialect=\"{DIALECT_CONCRETE}\"{xmlns}>{}</wsnt:Topic></wsnt:GetCurrentMessage>",
            escape(&topic.expression)
        );
        match self
            .call_addressed(
                &url,
                url.as_str(),
                &[],
                ACTION_GET_CURRENT_MESSAGE,
                OP,
                &body,
            )
            .await
        {
            Ok(r) => Ok(parse_current_message(&r, &topic.expression)),
            Err(e) if no_current_message(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Whether the camera said the topic has had no message yet.
fn no_current_message(e: &OnvifError) -> bool {
    match &e.kind {
        ErrorKind::Fault(f) => {
            f.subcodes
                .iter()
                .chain(std::iter::once(&f.code))
                .any(|c| c.contains("NoCurrentMessageOnTopic"))
                || f.reason.contains("NoCurrentMessageOnTopic")
        }
        _ => false,
    }
}

/// The property topics of a `wstop:TopicSet`: every path down to an
/// element marked `wstop:topic="true"` whose `MessageDescription` says
/// `IsProperty="true"`. Those we can name a kind for (motion, tamper...)
/// come first, then the rest, up to [`MAX_POLLED_TOPICS`].
pub fn property_topics(set: &Element) -> Vec<PropertyTopic> {
    let mut found = Vec::new();
    // (element, path of (namespace, local name) down to it)
    let mut stack: Vec<(&Element, Vec<(&str, &str)>)> =
        set.children.iter().rev().map(|c| (c, Vec::new())).collect();
    while let Some((e, mut path)) = stack.pop() {
        if e.name == "MessageDescription" || path.len() >= MAX_TOPIC_DEPTH {
            continue;
        }
        path.push((e.ns.as_str(), e.name.as_str()));
        let is_property = e
            .child("MessageDescription")
            .and_then(|d| d.attr("IsProperty"))
            .is_some_and(|v| v.trim() == "true" || v.trim() == "1");
        if e.attr("topic").is_some_and(|v| v.trim() == "true") && is_property {
            found.push(topic_of(&path));
        }
        for c in e.children.iter().rev() {
            stack.push((c, path.clone()));
        }
    }
    let known = |t: &PropertyTopic| {
        crate::events::classify(&t.expression, &[]).0 != crate::store::events::Kind::Other
    };
    let (mut first, rest): (Vec<_>, Vec<_>) = found.into_iter().partition(known);
    first.extend(rest);
    first.truncate(MAX_POLLED_TOPICS);
    first
}

fn topic_of(path: &[(&str, &str)]) -> PropertyTopic {
    let mut namespaces: Vec<(String, String)> = Vec::new();
    let mut segments = Vec::new();
    for (ns, name) in path {
        if ns.is_empty() {
            segments.push((*name).to_owned());
            continue;
        }
        let prefix = match namespaces.iter().find(|(_, u)| u == ns) {
            Some((p, _)) => p.clone(),
            None => {
                let vendor = namespaces.iter().filter(|(p, _)| p != "tns1").count();
                let p = if *ns == NS_TOPICS {
                    "tns1".to_owned()
                } else {
                    format!("ns{}", vendor + 1)
                };
                namespaces.push((p.clone(), (*ns).to_owned()));
                p
            }
        };
        segments.push(format!("{prefix}:{name}"));
    }
    PropertyTopic {
        expression: segments.join("/"),
        namespaces,
    }
}

/// Reads a `GetCurrentMessageResponse`: the `tt:Message` it holds (bare,
/// as the schema's `any` allows, or wrapped in a `NotificationMessage` as
/// some firmware sends it), as a notification on `topic`.
pub fn parse_current_message(r: &Element, topic: &str) -> Option<Notification> {
    if r.name != "GetCurrentMessageResponse" {
        return None;
    }
    let msg = r.find("Message").map(|m| m.child("Message").unwrap_or(m))?;
    parse_message(topic, msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onvif::events::PropertyOperation;
    use crate::onvif::soap;

    fn reply(body: &str) -> Element {
        soap::parse_reply(soap::envelope(None, body).as_bytes()).unwrap()
    }

    #[test]
    fn property_topics_from_a_topic_set() {
        // As a Hikvision camera answers, with an Axis-style vendor topic added.
        let r = reply(
            r#"<tev:GetEventPropertiesResponse><tev:TopicNamespaceLocation>http://www.onvif.org/onvif/ver10/topics/topicns.xml</tev:TopicNamespaceLocation><wsnt:FixedTopicSet>true</wsnt:FixedTopicSet>
<wstop:TopicSet xmlns:wstop="http://docs.oasis-open.org/wsn/t-1" xmlns:tns1="http://www.onvif.org/ver10/topics" xmlns:tnsaxis="http://www.axis.com/2009/event/topics">
<tns1:Monitoring><ProcessorUsage wstop:topic="true"><tt:MessageDescription IsProperty="true"><tt:Data><tt:SimpleItemDescription Name="Value" Type="xs:float"/></tt:Data></tt:MessageDescription></ProcessorUsage></tns1:Monitoring>
<tns1:RuleEngine><CellMotionDetector><Motion wstop:topic="true"><tt:MessageDescription IsProperty="true"><tt:Data><tt:SimpleItemDescription Name="IsMotion" Type="xs:boolean"/></tt:Data></tt:MessageDescription></Motion></CellMotionDetector>
<LineDetector><Crossed wstop:topic="true"><tt:MessageDescription><tt:Data><tt:SimpleItemDescription Name="ObjectId" Type="xs:integer"/></tt:Data></tt:MessageDescription></Crossed></LineDetector>
<tnsaxis:VMD3><vmd3_video_1 wstop:topic="true"><tt:MessageDescription IsProperty="true"/></vmd3_video_1></tnsaxis:VMD3></tns1:RuleEngine>
</wstop:TopicSet></tev:GetEventPropertiesResponse>"#,
        );
        let topics = property_topics(r.child("TopicSet").unwrap());
        let names: Vec<_> = topics.iter().map(|t| t.expression.as_str()).collect();
        // The line crossing is an instant, not a property; known kinds first.
        assert_eq!(
            names,
            [
                "tns1:RuleEngine/CellMotionDetector/Motion",
                "tns1:RuleEngine/ns1:VMD3/vmd3_video_1",
                "tns1:Monitoring/ProcessorUsage",
            ]
        );
        assert_eq!(
            topics[1].namespaces,
            [
                ("tns1".to_owned(), NS_TOPICS.to_owned()),
                (
                    "ns1".to_owned(),
                    "http://www.axis.com/2009/event/topics".to_owned()
                )
            ]
        );
    }

    #[test]
    fn current_message_bare_or_wrapped() {
        let bare = reply(
            r#"<wsnt:GetCurrentMessageResponse><tt:Message UtcTime="2024-05-01T10:00:00Z" PropertyOperation="Changed"><tt:Source><tt:SimpleItem Name="Source" Value="VideoSource_1"/></tt:Source><tt:Data><tt:SimpleItem Name="State" Value="true"/></tt:Data></tt:Message></wsnt:GetCurrentMessageResponse>"#,
        );
        let n = parse_current_message(&bare, "tns1:VideoSource/MotionAlarm").unwrap();
        assert_eq!(n.topic, "tns1:VideoSource/MotionAlarm");
        assert_eq!(n.operation, PropertyOperation::Changed);
        assert_eq!(n.data, [("State".to_owned(), "true".to_owned())]);
        let wrapped = reply(
            r#"<wsnt:GetCurrentMessageResponse><wsnt:NotificationMessage><wsnt:Message><tt:Message UtcTime="2024-05-01T10:00:00Z"><tt:Data><tt:SimpleItem Name="IsMotion" Value="false"/></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage></wsnt:GetCurrentMessageResponse>"#,
        );
        let n =
            parse_current_message(&wrapped, "tns1:RuleEngine/CellMotionDetector/Motion").unwrap();
        assert_eq!(n.data, [("IsMotion".to_owned(), "false".to_owned())]);
        assert_eq!(
            parse_current_message(&reply("<wsnt:GetCurrentMessageResponse/>"), "x"),
            None
        );
    }
}
