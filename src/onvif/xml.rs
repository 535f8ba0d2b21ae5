//! A small XML tree built from camera replies, safe against hostile input.
//!
//! Cameras (and anything answering on UDP 3702) are untrusted peers, so the
//! parser refuses what XML lets an attacker use for resource exhaustion: any
//! DOCTYPE (and so every DTD and custom entity, including "billion laughs"),
//! bodies over [`MAX_DOCUMENT_BYTES`], nesting over [`MAX_DEPTH`] and more than
//! [`MAX_ELEMENTS`] elements. Only the five predefined entities and character
//! references are decoded; nothing is ever fetched or expanded.
//!
//! Elements are matched by local name only: firmware binds the ONVIF schemas to
//! every prefix imaginable and sometimes to the wrong namespace version, and a
//! reader that insists on exact namespaces rejects working cameras.

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

/// Largest document we parse. GetProfiles from an 8-channel encoder is tens of
/// kilobytes; a megabyte leaves room for verbose firmware and bounds memory.
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// Deepest element nesting accepted. Real ONVIF replies are about 10 deep.
pub const MAX_DEPTH: usize = 64;

/// Most elements accepted in one document; bounds the tree's size even when
/// the bytes are within [`MAX_DOCUMENT_BYTES`] (e.g. a megabyte of `<a/>`).
pub const MAX_ELEMENTS: usize = 50_000;

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// Over [`MAX_DOCUMENT_BYTES`].
    #[error("document of {0} bytes exceeds the {MAX_DOCUMENT_BYTES}-byte limit")]
    TooLarge(usize),
    /// A `<!DOCTYPE ...>`: refused outright, because DTDs are how entity
    /// expansion and external fetches get in.
    #[error("document type declarations (DTDs) are refused")]
    Doctype,
    /// Over [`MAX_DEPTH`].
    #[error("elements nested deeper than {MAX_DEPTH}")]
    TooDeep,
    /// Over [`MAX_ELEMENTS`].
    #[error("more than {MAX_ELEMENTS} elements")]
    TooManyElements,
    /// `&name;` for anything but the five predefined entities.
    #[error("undefined entity &{0};")]
    UnknownEntity(String),
    /// Not UTF-8 (SOAP 1.2 and WS-Discovery are UTF-8 in practice).
    #[error("document is not UTF-8")]
    NotUtf8,
    /// Syntax error, unclosed element, text outside the root, and so on.
    #[error("malformed XML: {0}")]
    Malformed(String),
    /// No root element at all.
    #[error("empty document")]
    Empty,
}

/// One element: local name, attributes (local names, `xmlns` dropped),
/// children and the concatenated text directly inside it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    /// Local name, prefix removed (`tt:Uri` → `Uri`).
    pub name: String,
    /// Namespace URI of the element, empty when it has none (or its prefix
    /// is undeclared). Matching ignores it; [`Element::to_xml`] needs it.
    pub ns: String,
    /// Attributes by local name, in document order.
    pub attrs: Vec<(String, String)>,
    /// Child elements in document order.
    pub children: Vec<Element>,
    /// Text and CDATA directly inside this element, entities decoded.
    pub text: String,
}

impl Element {
    /// First child with this local name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// All children with this local name.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Follows a path of child local names.
    pub fn path(&self, names: &[&str]) -> Option<&Element> {
        names.iter().try_fold(self, |e, n| e.child(n))
    }

    /// Trimmed text at a path of child local names, if present and non-empty.
    pub fn text_at(&self, names: &[&str]) -> Option<&str> {
        self.path(names)
            .map(|e| e.text.trim())
            .filter(|t| !t.is_empty())
    }

    /// First element with this local name in a depth-first walk (self included).
    ///
    /// Used where firmware nests the same data at different depths (Media1
    /// vs Media2 profiles, `ProbeMatches/ProbeMatch` vs a bare `ProbeMatch`).
    /// Iterative, so a deep tree cannot overflow the stack.
    pub fn find(&self, name: &str) -> Option<&Element> {
        let mut stack = vec![self];
        while let Some(e) = stack.pop() {
            if e.name == name {
                return Some(e);
            }
            stack.extend(e.children.iter().rev());
        }
        None
    }

    /// Every element with this local name, depth first, not descending into matches.
    pub fn find_all(&self, name: &str) -> Vec<&Element> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(e) = stack.pop() {
            if e.name == name {
                out.push(e);
            } else {
                stack.extend(e.children.iter().rev());
            }
        }
        out
    }

    /// Attribute value by local name.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The element written back as XML, each element with its namespace
    /// declared on it, to echo a camera's own element (WS-Addressing
    /// reference parameters). What the tree drops stays dropped: attribute
    /// namespaces, comments, and the order of text among children (text
    /// comes first).
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        self.write_xml(&mut out, 0);
        out
    }

    fn write_xml(&self, out: &mut String, depth: usize) {
        use quick_xml::escape::escape;
        let tag = if self.ns.is_empty() {
            self.name.clone()
        } else {
            format!("n{depth}:{}", self.name)
        };
        out.push('<');
        out.push_str(&tag);
        if !self.ns.is_empty() {
            out.push_str(&format!(" xmlns:n{depth}=\"{}\"", escape(&self.ns)));
        }
        for (k, v) in &self.attrs {
            out.push_str(&format!(" {k}=\"{}\"", escape(v)));
        }
        out.push('>');
        out.push_str(&escape(&self.text));
        for c in &self.children {
            c.write_xml(out, depth + 1);
        }
        out.push_str(&format!("</{tag}>"));
    }
}

/// Parses a whole document into its root element, enforcing every limit above.
pub fn parse(input: &[u8]) -> Result<Element, XmlError> {
    if input.len() > MAX_DOCUMENT_BYTES {
        return Err(XmlError::TooLarge(input.len()));
    }
    let text = std::str::from_utf8(input).map_err(|_| XmlError::NotUtf8)?;
    // A BOM is legal before the declaration; quick-xml would treat it as text.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = NsReader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut elements = 0usize;
    let malformed =
        |e: &dyn std::fmt::Display, pos: u64| XmlError::Malformed(format!("{e} at byte {pos}"));
    loop {
        let pos = reader.buffer_position();
        let ev = reader.read_event().map_err(|e| malformed(&e, pos))?;
        match ev {
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Start(ref s) | Event::Empty(ref s) => {
                if root.is_some() {
                    return Err(XmlError::Malformed("second root element".into()));
                }
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return Err(XmlError::TooManyElements);
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                let ns = match reader.resolve_element(s.name()).0 {
                    ResolveResult::Bound(n) => String::from_utf8_lossy(n.as_ref()).into_owned(),
                    ResolveResult::Unbound | ResolveResult::Unknown(_) => String::new(),
                };
                let mut el = Element {
                    name: String::from_utf8_lossy(s.local_name().as_ref()).into_owned(),
                    ns,
                    ..Default::default()
                };
                for a in s.attributes() {
                    let a = a.map_err(|e| malformed(&e, pos))?;
                    let key = a.key;
                    if key.as_ref() == b"xmlns"
                        || key.prefix().is_some_and(|p| p.as_ref() == b"xmlns")
                    {
                        continue;
                    }
                    let value = a.unescape_value().map_err(|e| match e {
                        quick_xml::Error::Escape(
                            quick_xml::escape::EscapeError::UnrecognizedEntity(_, name),
                        ) => XmlError::UnknownEntity(name),
                        e => malformed(&e, pos),
                    })?;
                    el.attrs.push((
                        String::from_utf8_lossy(key.local_name().as_ref()).into_owned(),
                        value.into_owned(),
                    ));
                }
                if matches!(ev, Event::Empty(_)) {
                    close(el, &mut stack, &mut root);
                } else {
                    stack.push(el);
                }
            }
            Event::End(_) => {
                // quick-xml has already checked the end name matches.
                let el = stack
                    .pop()
                    .ok_or_else(|| XmlError::Malformed("unexpected end tag".into()))?;
                close(el, &mut stack, &mut root);
            }
            Event::Text(t) => {
                let s = t.decode().map_err(|e| malformed(&e, pos))?;
                match stack.last_mut() {
                    Some(el) => el.text.push_str(&s),
                    None if s.trim().is_empty() => {}
                    None => {
                        return Err(XmlError::Malformed("text outside the root element".into()))
                    }
                }
            }
            Event::CData(c) => {
                let s = c.decode().map_err(|e| malformed(&e, pos))?;
                match stack.last_mut() {
                    Some(el) => el.text.push_str(&s),
                    None => {
                        return Err(XmlError::Malformed("CDATA outside the root element".into()))
                    }
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|e| malformed(&e, pos))? {
                    Some(c) => c,
                    None => {
                        let name = r.decode().map_err(|e| malformed(&e, pos))?;
                        match &*name {
                            "lt" => '<',
                            "gt" => '>',
                            "amp" => '&',
                            "apos" => '\'',
                            "quot" => '"',
                            // Never look anything up: this is where billion laughs would start.
                            other => return Err(XmlError::UnknownEntity(other.to_owned())),
                        }
                    }
                };
                match stack.last_mut() {
                    Some(el) => el.text.push(resolved),
                    None => {
                        return Err(XmlError::Malformed(
                            "reference outside the root element".into(),
                        ))
                    }
                }
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Malformed(format!(
            "document ends inside <{}>",
            stack.last().map(|e| e.name.as_str()).unwrap_or("")
        )));
    }
    root.ok_or(XmlError::Empty)
}

fn close(el: Element, stack: &mut [Element], root: &mut Option<Element>) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None => *root = Some(el),
    }
}

/// Escapes text for element content and attribute values we send.
pub fn escape(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_kept_and_written_back() {
        let doc = br#"<a:Root xmlns:a="urn:a" xmlns="urn:default"><Id x="1&amp;2">7&lt;8</Id><b:Ref xmlns:b="urn:b"><Plain xmlns="">t</Plain></b:Ref><c:Unknown/></a:Root>"#;
        let r = parse(doc).unwrap();
        assert_eq!(r.ns, "urn:a");
        assert_eq!(r.children[0].ns, "urn:default");
        assert_eq!(r.children[1].ns, "urn:b");
        assert_eq!(r.children[1].children[0].ns, "");
        assert_eq!(
            r.children[2].ns, "",
            "an undeclared prefix has no namespace"
        );
        let id = r.children[0].to_xml();
        assert_eq!(
            id,
            r#"<n0:Id xmlns:n0="urn:default" x="1&amp;2">7&lt;8</n0:Id>"#
        );
        let back = parse(r.children[1].to_xml().as_bytes()).unwrap();
        assert_eq!(back, r.children[1]);
    }

    #[test]
    fn parses_namespaced_tree_by_local_name() {
        let doc = br#"<?xml version="1.0" encoding="UTF-8"?>
            <s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:tt="x">
              <s:Body><tt:Uri a:b="1&amp;2">rtsp://h/x?a=1&amp;b=&#50;</tt:Uri><![CDATA[<raw>]]></s:Body>
            </s:Envelope>"#;
        let root = parse(doc).unwrap();
        assert_eq!(root.name, "Envelope");
        assert!(root.attrs.is_empty(), "xmlns attributes are dropped");
        let uri = root.path(&["Body", "Uri"]).unwrap();
        assert_eq!(uri.text, "rtsp://h/x?a=1&b=2");
        assert_eq!(uri.attr("b"), Some("1&2"));
        assert_eq!(root.child("Body").unwrap().text.trim(), "<raw>");
        assert_eq!(root.find("Uri").unwrap().name, "Uri");
    }

    #[test]
    fn billion_laughs_is_refused_without_expanding() {
        let doc = br#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol9 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<lolz>&lol9;</lolz>"#;
        assert_eq!(parse(doc), Err(XmlError::Doctype));
    }

    #[test]
    fn external_dtd_is_refused() {
        let doc =
            br#"<?xml version="1.0"?><!DOCTYPE foo SYSTEM "http://evil.example/x.dtd"><foo/>"#;
        assert_eq!(parse(doc), Err(XmlError::Doctype));
        let xxe = br#"<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><foo>&xxe;</foo>"#;
        assert_eq!(parse(xxe), Err(XmlError::Doctype));
    }

    #[test]
    fn undeclared_entity_is_an_error_not_a_lookup() {
        assert_eq!(
            parse(b"<a>&lol9;</a>"),
            Err(XmlError::UnknownEntity("lol9".into()))
        );
        assert_eq!(
            parse(b"<a x=\"&lol;\"/>"),
            Err(XmlError::UnknownEntity("lol".into()))
        );
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let n = 100_000;
        let mut doc = "<a>".repeat(n);
        doc.push_str(&"</a>".repeat(n));
        assert_eq!(parse(doc.as_bytes()), Err(XmlError::TooDeep));
        // Exactly at the limit still parses.
        let mut ok = "<a>".repeat(MAX_DEPTH);
        ok.push_str(&"</a>".repeat(MAX_DEPTH));
        assert!(parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn huge_and_wide_documents_are_bounded() {
        let big = vec![b' '; MAX_DOCUMENT_BYTES + 1];
        assert_eq!(parse(&big), Err(XmlError::TooLarge(MAX_DOCUMENT_BYTES + 1)));
        let mut wide = String::from("<a>");
        wide.push_str(&"<b/>".repeat(MAX_ELEMENTS + 1));
        wide.push_str("</a>");
        assert_eq!(parse(wide.as_bytes()), Err(XmlError::TooManyElements));
    }

    #[test]
    fn malformed_documents_are_errors() {
        for doc in [
            &b""[..],
            b"   ",
            b"<a>",
            b"<a></b>",
            b"<a/><b/>",
            b"text<a/>",
            b"<a><b></a>",
            b"\xff\xfe<a/>",
            b"<a>&#0;</a>",
            b"<a b='1' b='2'/>",
        ] {
            assert!(
                parse(doc).is_err(),
                "{:?} should fail",
                String::from_utf8_lossy(doc)
            );
        }
    }
}
