//! The `DeleteResult` parser (s3client's `xml::parse_delete_result`) on arbitrary bodies.
//!
//! Properties: never panics; every error's key and code consist of characters of the input's
//! text (directly or through a reference); messages are one line; there are no more errors
//! than `Error` occurrences in the input; and a document written back from the parsed errors
//! parses to the same errors (messages shorter than the 300-character cut).
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use s3backer_s3client::fuzzing::parse_delete_result;

use common::{assert_from_input, one_line, xml_alphabet, xml_escape};

fuzz_target!(|data: &[u8]| {
    let Ok(errors) = parse_delete_result(data) else {
        return;
    };
    let alphabet = xml_alphabet(data);
    for (key, code, message) in &errors {
        assert_from_input("key", key, &alphabet);
        assert_from_input("code", code, &alphabet);
        assert!(one_line(message), "message is not one line: {message:?}");
    }
    let error_tags = data.windows(5).filter(|w| w == b"Error").count();
    assert!(
        errors.len() <= error_tags,
        "{} errors from {error_tags} Error tags",
        errors.len()
    );

    let mut doc = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
    );
    for (key, code, message) in &errors {
        doc.push_str(&format!(
            "<Error><Key>{}</Key><Code>{}</Code><Message>{}</Message></Error>",
            xml_escape(key),
            xml_escape(code),
            xml_escape(message)
        ));
    }
    doc.push_str("</DeleteResult>");
    let again = parse_delete_result(doc.as_bytes()).expect("the errors written back parse");
    assert_eq!(again.len(), errors.len(), "{doc:?}");
    for ((k1, c1, m1), (k2, c2, m2)) in errors.iter().zip(&again) {
        assert_eq!((k1, c1), (k2, c2), "written back: {doc:?}");
        // Messages are flattened and cut at 300 characters with "..." appended (a message
        // that close to the limit may be cut again); control characters at either end become
        // spaces, which the second pass trims.
        if m1.chars().count() < 290 {
            assert_eq!(m1.trim(), m2.trim(), "message written back: {doc:?}");
        }
    }
});
