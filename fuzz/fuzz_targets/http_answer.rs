//! The HTTP/1.1 client's reader of an answer (s3client's `http1.rs`) on arbitrary bytes from
//! the server.
//!
//! The first two bytes choose the request (GET, HEAD, PUT, DELETE), the size of the caller's
//! block buffer (none, or 7 × the byte) and the success-body limit; the rest is the answer.
//! Properties: never panics; the status is a valid one (100–599); a kept body never exceeds
//! its limit; a body read into the caller's
//! buffer comes with a 2xx status and is exactly the last bytes of the input read (the body
//! follows its head); nothing past the input is claimed as read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use s3backer_s3client::fuzzing::read_answer;

const ERROR_LIMIT: usize = 100;

fuzz_target!(|data: &[u8]| {
    let [choice, size, answer @ ..] = data else {
        return;
    };
    let method = ["GET", "HEAD", "PUT", "DELETE"][usize::from(choice & 3)];
    let body_limit = if choice & 4 != 0 {
        0
    } else {
        64 + 3 * usize::from(*size)
    };
    let mut buf = vec![0xA5u8; 7 * usize::from(*size)];
    let dest = (*size != 0).then_some(&mut buf[..]);
    let Ok(a) = read_answer(answer, method, dest, body_limit, ERROR_LIMIT) else {
        return;
    };
    assert!((100..=599).contains(&a.status), "status {}", a.status);
    assert!(
        a.consumed <= answer.len(),
        "{} of {} bytes read",
        a.consumed,
        answer.len()
    );
    if a.in_dest {
        assert!(
            (200..300).contains(&a.status),
            "status {} into the buffer",
            a.status
        );
        assert!(a.body.is_empty());
        assert!(*size != 0 && method != "HEAD");
        assert_eq!(&answer[a.consumed - buf.len()..a.consumed], &buf[..]);
    } else if !(200..300).contains(&a.status) {
        assert!(
            a.body.len() <= ERROR_LIMIT,
            "error body of {}",
            a.body.len()
        );
    } else if body_limit != 0 {
        assert!(
            a.body.len() <= body_limit,
            "body of {} over {body_limit}",
            a.body.len()
        );
    }
    if method == "HEAD" {
        assert!(a.body.is_empty(), "a HEAD answer with a body");
    }
});
