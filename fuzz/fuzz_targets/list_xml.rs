//! The `ListBucketResult` parser (s3client's `xml::parse_list`) on arbitrary bodies.
//!
//! Properties: never panics; every parsed key consists of characters of the input's text
//! (directly or through an entity or character reference); there are no more keys than `Key`
//! occurrences in the input; and a document written back from the parsed page (keys escaped)
//! parses to the same page.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use s3backer_s3client::fuzzing::parse_list;

use common::{assert_from_input, xml_alphabet, xml_escape};

fuzz_target!(|data: &[u8]| {
    let Ok((keys, truncated)) = parse_list(data) else {
        return;
    };
    let alphabet = xml_alphabet(data);
    for k in &keys {
        assert_from_input("key", k, &alphabet);
    }
    let key_tags = data.windows(3).filter(|w| w == b"Key").count();
    assert!(
        keys.len() <= key_tags,
        "{} keys from {key_tags} Key tags",
        keys.len()
    );

    let mut doc = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
    );
    doc.push_str(&format!("<IsTruncated>{truncated}</IsTruncated>"));
    for k in &keys {
        doc.push_str(&format!(
            "<Contents><Key>{}</Key></Contents>",
            xml_escape(k)
        ));
    }
    doc.push_str("</ListBucketResult>");
    let again = parse_list(doc.as_bytes());
    assert_eq!(
        again,
        Ok((keys, truncated)),
        "the page written back parses differently: {doc:?}"
    );
});
