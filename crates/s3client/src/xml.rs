//! The little XML S3 speaks to us: error bodies (`Error/Code`, `Error/Message`), list pages
//! (`ListBucketResult/IsTruncated`, `Contents/Key`), bulk-delete results
//! (`DeleteResult/Error/{Key,Code,Message}`), and the bulk-delete request body.
//!
//! Responses are parsed with quick-xml into a tiny element tree (names without namespace
//! prefixes, text with entity and character references resolved), then read by path. Bodies
//! are small (a list page of 1000 keys is well under a megabyte), so a tree is simplest.

use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::Event;
use quick_xml::reader::Reader;

/// One element: local name, concatenated text, children.
#[derive(Debug, Default)]
pub(crate) struct Element {
    pub(crate) name: String,
    pub(crate) text: String,
    pub(crate) children: Vec<Element>,
}

impl Element {
    /// First child named `name`.
    pub(crate) fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child named `name`.
    pub(crate) fn children_named<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Text of the first child named `name`.
    pub(crate) fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }
}

fn local_name(qname: &[u8]) -> String {
    let local = match qname.iter().rposition(|&b| b == b':') {
        Some(i) => &qname[i + 1..],
        None => qname,
    };
    String::from_utf8_lossy(local).into_owned()
}

/// Parses a whole document into its root element.
pub(crate) fn parse(body: &[u8]) -> Result<Element, String> {
    let mut reader = Reader::from_reader(body);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut buf = Vec::new();
    let attach = |stack: &mut Vec<Element>, root: &mut Option<Element>, el: Element| match stack
        .last_mut()
    {
        Some(parent) => parent.children.push(el),
        None if root.is_none() => *root = Some(el),
        None => {}
    };
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| format!("bad XML at byte {}: {e}", reader.error_position()))?;
        match event {
            Event::Start(e) => stack.push(Element {
                name: local_name(e.name().as_ref()),
                ..Element::default()
            }),
            Event::Empty(e) => {
                let el = Element {
                    name: local_name(e.name().as_ref()),
                    ..Element::default()
                };
                attach(&mut stack, &mut root, el);
            }
            Event::End(_) => {
                let el = stack.pop().ok_or("unbalanced end tag")?;
                attach(&mut stack, &mut root, el);
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    let s = t.xml_content().map_err(|e| format!("bad text: {e}"))?;
                    top.text.push_str(&s);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    let s = t.decode().map_err(|e| format!("bad CDATA: {e}"))?;
                    top.text.push_str(&s);
                }
            }
            Event::GeneralRef(r) => {
                if let Some(top) = stack.last_mut() {
                    match r.resolve_char_ref() {
                        Ok(Some(c)) => top.text.push(c),
                        Ok(None) => {
                            let name = r.decode().map_err(|e| format!("bad entity: {e}"))?;
                            let value = resolve_predefined_entity(&name)
                                .ok_or_else(|| format!("unknown entity &{name};"))?;
                            top.text.push_str(value);
                        }
                        Err(e) => return Err(format!("bad character reference: {e}")),
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !stack.is_empty() {
        return Err("truncated document".into());
    }
    root.ok_or_else(|| "empty document".into())
}

/// `Code` and `Message` of an S3 error body, if it is one.
pub(crate) fn parse_error(body: &[u8]) -> (Option<String>, Option<String>) {
    match parse(body) {
        Ok(root) if root.name == "Error" => {
            let text = |n: &str| {
                root.child_text(n)
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(crate::error::one_line)
            };
            (text("Code"), text("Message"))
        }
        _ => (None, None),
    }
}

/// A parsed ListObjects (V1) page.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ParsedList {
    pub(crate) keys: Vec<String>,
    pub(crate) is_truncated: bool,
}

/// Parses `ListBucketResult`.
pub(crate) fn parse_list(body: &[u8]) -> Result<ParsedList, String> {
    let root = parse(body)?;
    if root.name != "ListBucketResult" {
        return Err(format!("expected ListBucketResult, got {}", root.name));
    }
    let is_truncated = match root.child_text("IsTruncated").map(str::trim) {
        Some("true") => true,
        Some("false") | None => false,
        Some(other) => return Err(format!("bad IsTruncated value \"{other}\"")),
    };
    let keys = root
        .children_named("Contents")
        .map(|c| {
            c.child_text("Key")
                .map(str::to_owned)
                .ok_or_else(|| "Contents without Key".to_owned())
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ParsedList { keys, is_truncated })
}

/// One `DeleteResult/Error` entry: (key, code, message).
pub(crate) type ParsedDeleteError = (String, String, String);

/// Parses `DeleteResult` into its errors (deleted keys are not reported in quiet mode, and
/// are ignored otherwise).
pub(crate) fn parse_delete_result(body: &[u8]) -> Result<Vec<ParsedDeleteError>, String> {
    let root = parse(body)?;
    if root.name != "DeleteResult" {
        if root.name == "Error" {
            let (code, message) = parse_error(body);
            return Err(format!(
                "error document instead of DeleteResult: {}: {}",
                code.unwrap_or_default(),
                message.unwrap_or_default()
            ));
        }
        return Err(format!("expected DeleteResult, got {}", root.name));
    }
    Ok(root
        .children_named("Error")
        .map(|e| {
            let t = |n: &str| e.child_text(n).unwrap_or("").to_owned();
            (t("Key"), t("Code"), crate::error::one_line(&t("Message")))
        })
        .collect())
}

/// The bulk-delete request body (quiet mode, keys XML-escaped).
pub(crate) fn delete_body(keys: &[String]) -> String {
    let mut out = String::from("<Delete><Quiet>true</Quiet>");
    for k in keys {
        out.push_str("<Object><Key>");
        out.push_str(&escape(k.as_str()));
        out.push_str("</Key></Object>");
    }
    out.push_str("</Delete>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_page_with_escaped_keys() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bucket</Name><Prefix>vol/</Prefix><Marker></Marker><MaxKeys>1000</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <Contents><Key>vol/00000001</Key><ETag>&quot;abc&quot;</ETag><Size>4096</Size></Contents>
  <Contents><Key>vol/a&amp;b&lt;c&gt;&#x41;&#66;</Key><Size>1</Size></Contents>
  <Contents><Key><![CDATA[vol/<raw>]]></Key></Contents>
</ListBucketResult>"#;
        let page = parse_list(body).unwrap();
        assert!(page.is_truncated);
        assert_eq!(page.keys, ["vol/00000001", "vol/a&b<c>AB", "vol/<raw>"]);
    }

    #[test]
    fn list_page_not_truncated_and_empty() {
        let page = parse_list(
            b"<ListBucketResult><IsTruncated>false</IsTruncated><Prefix/></ListBucketResult>",
        )
        .unwrap();
        assert_eq!(
            page,
            ParsedList {
                keys: vec![],
                is_truncated: false
            }
        );
    }

    #[test]
    fn bad_list_pages() {
        assert!(parse_list(b"<Other/>").is_err());
        assert!(parse_list(b"<ListBucketResult><Contents></Contents></ListBucketResult>").is_err());
        assert!(
            parse_list(b"<ListBucketResult><IsTruncated>maybe</IsTruncated></ListBucketResult>")
                .is_err()
        );
        assert!(parse_list(b"<ListBucketResult><Contents><Key>x</Key>").is_err());
        assert!(parse_list(b"").is_err());
        assert!(parse_list(b"not xml at all <").is_err());
        assert!(parse_list(b"<ListBucketResult>&bogus;</ListBucketResult>").is_err());
    }

    #[test]
    fn delete_result_errors() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Deleted><Key>ok</Key></Deleted>
  <Error><Key>a&amp;b</Key><Code>AccessDenied</Code><Message>Access
  Denied</Message></Error>
  <Error><Key>c</Key><Code>InternalError</Code></Error>
</DeleteResult>"#;
        let errs = parse_delete_result(body).unwrap();
        assert_eq!(
            errs,
            vec![
                ("a&b".into(), "AccessDenied".into(), "Access Denied".into()),
                ("c".into(), "InternalError".into(), String::new()),
            ]
        );
        assert!(parse_delete_result(b"<DeleteResult/>").unwrap().is_empty());
        let e = parse_delete_result(b"<Error><Code>SlowDown</Code></Error>").unwrap_err();
        assert!(e.contains("SlowDown"));
    }

    #[test]
    fn error_bodies() {
        let (code, message) = parse_error(
            b"<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code>\
              <Message>The specified bucket\n does not exist</Message>\
              <BucketName>b</BucketName></Error>",
        );
        assert_eq!(code.as_deref(), Some("NoSuchBucket"));
        assert_eq!(
            message.as_deref(),
            Some("The specified bucket does not exist")
        );
        assert_eq!(parse_error(b""), (None, None));
        assert_eq!(parse_error(b"<html>oops</html>"), (None, None));
        assert_eq!(parse_error(b"<Error><Code></Code></Error>"), (None, None));
    }

    #[test]
    fn delete_body_escapes_keys() {
        let body = delete_body(&["a&b".into(), "<c>\"'".into(), "vol/00000001".into()]);
        assert_eq!(
            body,
            "<Delete><Quiet>true</Quiet>\
             <Object><Key>a&amp;b</Key></Object>\
             <Object><Key>&lt;c&gt;&quot;&apos;</Key></Object>\
             <Object><Key>vol/00000001</Key></Object></Delete>"
        );
        // And it parses back.
        let root = parse(body.as_bytes()).unwrap();
        let keys: Vec<_> = root
            .children_named("Object")
            .map(|o| o.child_text("Key").unwrap().to_owned())
            .collect();
        assert_eq!(keys, ["a&b", "<c>\"'", "vol/00000001"]);
    }
}
