//! A scripted HTTP/1.1 server on 127.0.0.1 for end-to-end tests: each request gets the next
//! canned response (or the default), and every request is recorded.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A response to send.
#[derive(Clone, Debug)]
pub(crate) struct Canned {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// Wait this long before answering.
    pub(crate) delay: Duration,
}

impl Canned {
    pub(crate) fn new(status: u16) -> Canned {
        Canned {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    pub(crate) fn body(mut self, body: impl Into<Vec<u8>>) -> Canned {
        self.body = body.into();
        self
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Canned {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub(crate) fn delay(mut self, d: Duration) -> Canned {
        self.delay = d;
        self
    }

    /// An S3 XML error document.
    pub(crate) fn error(status: u16, code: &str, message: &str) -> Canned {
        Canned::new(status)
            .header("content-type", "application/xml")
            .body(format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
                 <Message>{message}</Message><RequestId>1</RequestId></Error>"
            ))
    }
}

/// A request as received.
#[derive(Clone, Debug)]
pub(crate) struct Recorded {
    pub(crate) method: String,
    /// Request target (path and query, as sent).
    pub(crate) target: String,
    /// Headers with lower-cased names, in order.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Recorded {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

struct State {
    script: VecDeque<Canned>,
    default: Canned,
    requests: Vec<Recorded>,
}

pub(crate) struct FakeServer {
    port: u16,
    state: Arc<Mutex<State>>,
}

impl FakeServer {
    /// Starts a server answering with `script`, then with 500 forever.
    pub(crate) fn start(script: Vec<Canned>) -> FakeServer {
        FakeServer::start_with_default(script, Canned::error(500, "InternalError", "script ended"))
    }

    pub(crate) fn start_with_default(script: Vec<Canned>, default: Canned) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            script: script.into(),
            default,
            requests: Vec::new(),
        }));
        let st = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let st = st.clone();
                std::thread::spawn(move || serve(stream, &st));
            }
        });
        FakeServer { port, state }
    }

    pub(crate) fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Recorded> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        let (n, v) = h.split_once(':')?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Recorded {
        method,
        target,
        headers,
        body,
    })
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    // One request per connection: every response says `connection: close`.
    if let Some(req) = read_request(&mut reader) {
        let head = req.method == "HEAD";
        let canned = {
            let mut st = state.lock().unwrap();
            st.requests.push(req);
            let default = st.default.clone();
            st.script.pop_front().unwrap_or(default)
        };
        std::thread::sleep(canned.delay);
        let reason = http::StatusCode::from_u16(canned.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Whatever");
        let mut out = format!("HTTP/1.1 {} {reason}\r\n", canned.status);
        for (n, v) in &canned.headers {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        let no_body = canned.status == 204 || canned.status == 304;
        if !no_body && !canned.headers.iter().any(|(n, _)| n == "content-length") {
            out.push_str(&format!("content-length: {}\r\n", canned.body.len()));
        }
        out.push_str("connection: close\r\n\r\n");
        let mut bytes = out.into_bytes();
        if !head && !no_body {
            bytes.extend_from_slice(&canned.body);
        }
        if writer.write_all(&bytes).is_ok() {
            let _ = writer.flush();
        }
    }
}
