//! A case's message logs (`lwm2m-messages.log`, `bootstrap-messages.log`,
//! any other `*-messages.log` a server wrote), read back into events for the
//! sequence chart and the firmware plot. The page is rebuilt from the files
//! alone (`meterbench report`), so this parses the line format of
//! `server::LogEntry::to_line` and `lwm2m::coap::summarize` rather than
//! asking the server: `TIME in  <- PEER NB SUMMARY | HEX`,
//! `TIME out -> PEER NB SUMMARY [NOT SENT: why] | HEX`, `TIME tls ** PEER TEXT`.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Which way a datagram went, seen from the device, which is what the
/// chart's arrows show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Direction {
    /// The device sent it (the server's `in`).
    FromDevice,
    /// The server sent it (the server's `out`).
    ToDevice,
}

/// A CoAP Block1/Block2 option as the summary writes it (`block2=12+/64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Block {
    pub num: u32,
    pub more: bool,
    pub size: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Datagram {
    #[serde(skip)]
    pub time: DateTime<Utc>,
    pub direction: Direction,
    pub peer: String,
    /// Bytes on the wire.
    pub size: usize,
    /// CON, NON, ACK or RST.
    pub kind: String,
    /// A method (`POST`) or a response code with its name (`2.05 Content`).
    pub code: String,
    pub mid: Option<u16>,
    pub token: Option<String>,
    /// A request's path with its query (`/rd?ep=meter&lt=30`).
    pub path: Option<String>,
    pub cf: Option<u16>,
    pub accept: Option<u16>,
    pub observe: Option<u32>,
    pub block1: Option<Block>,
    pub block2: Option<Block>,
    pub location: Option<String>,
    /// Payload length (`len=`); the payload is the datagram's last bytes.
    pub payload_len: usize,
    /// Set when the server could not send it: it was not on the wire.
    pub not_sent: Option<String>,
    /// Why the summary could not decode it (`undecodable (N bytes): ...`).
    pub undecodable: Option<String>,
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

impl Datagram {
    pub fn is_request(&self) -> bool {
        !self.code.is_empty() && !self.code.as_bytes()[0].is_ascii_digit()
    }

    pub fn payload(&self) -> &[u8] {
        let n = self.payload_len.min(self.bytes.len());
        &self.bytes[self.bytes.len() - n..]
    }
}

/// What a `tls **` line says about the DTLS session with the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TlsOutcome {
    HandshakeCompleted,
    HandshakeFailed,
    SessionClosed,
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TlsNote {
    #[serde(skip)]
    pub time: DateTime<Utc>,
    pub peer: String,
    pub outcome: TlsOutcome,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Boxed: a datagram carries its bytes and decoded fields, a note a line.
    Datagram(Box<Datagram>),
    Tls(TlsNote),
}

impl Event {
    pub fn time(&self) -> DateTime<Utc> {
        match self {
            Event::Datagram(d) => d.time,
            Event::Tls(t) => t.time,
        }
    }
}

/// A line the page could not read, by file, line and column (1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {reason}")]
pub struct LineError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub reason: String,
}

/// Every event of a log, in file order, and the lines that are not events
/// (named, then skipped: one garbled line must not hide the exchange).
pub fn parse(file: &str, text: &str) -> (Vec<Event>, Vec<LineError>) {
    let mut events = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Ok(e) => events.push(e),
            Err((column, reason)) => errors.push(LineError {
                file: file.to_string(),
                line: i + 1,
                column,
                reason,
            }),
        }
    }
    (events, errors)
}

/// A line's event, or the 1-based column where it stops making sense.
fn parse_line(line: &str) -> Result<Event, (usize, String)> {
    let col = |part: &str| part.as_ptr() as usize - line.as_ptr() as usize + 1;
    let (time_text, rest) = line
        .split_once(' ')
        .ok_or((1, "expected a time and a direction".to_string()))?;
    let time = DateTime::parse_from_rfc3339(time_text)
        .map_err(|e| {
            (
                1,
                format!("expected an RFC 3339 time, found {time_text:?}: {e}"),
            )
        })?
        .with_timezone(&Utc);
    let (direction, rest) = if let Some(r) = rest.strip_prefix("in  <- ") {
        (Some(Direction::FromDevice), r)
    } else if let Some(r) = rest.strip_prefix("out -> ") {
        (Some(Direction::ToDevice), r)
    } else if let Some(r) = rest.strip_prefix("tls ** ") {
        (None, r)
    } else {
        return Err((
            col(rest),
            "expected `in  <-`, `out ->` or `tls **`".to_string(),
        ));
    };
    let (peer, rest) = rest
        .split_once(' ')
        .ok_or((col(rest), "expected the peer's address".to_string()))?;
    let Some(direction) = direction else {
        return Ok(Event::Tls(TlsNote {
            time,
            peer: peer.to_string(),
            outcome: tls_outcome(rest),
            text: rest.to_string(),
        }));
    };
    let (size_text, rest) = rest
        .split_once(' ')
        .ok_or((col(rest), "expected the datagram's size".to_string()))?;
    let size = size_text
        .strip_suffix('B')
        .and_then(|n| n.parse::<usize>().ok())
        .ok_or((
            col(size_text),
            format!("expected a size like 17B, found {size_text:?}"),
        ))?;
    let (summary, hex_text) = rest.rsplit_once(" | ").ok_or((
        col(rest),
        "expected ` | ` and the datagram in hex".to_string(),
    ))?;
    let bytes = hex::decode(hex_text.trim()).map_err(|e| {
        (
            col(hex_text),
            format!("the datagram's hex does not decode: {e}"),
        )
    })?;
    let (summary, not_sent) = match summary.split_once(" [NOT SENT: ") {
        Some((s, why)) => (s, Some(why.trim_end_matches(']').to_string())),
        None => (summary, None),
    };
    let mut d = Datagram {
        time,
        direction,
        peer: peer.to_string(),
        size,
        kind: String::new(),
        code: String::new(),
        mid: None,
        token: None,
        path: None,
        cf: None,
        accept: None,
        observe: None,
        block1: None,
        block2: None,
        location: None,
        payload_len: 0,
        not_sent,
        undecodable: None,
        bytes,
    };
    if summary.starts_with("undecodable") {
        d.undecodable = Some(summary.to_string());
        return Ok(Event::Datagram(Box::new(d)));
    }
    summary_into(summary, &mut d).map_err(|(part, reason)| (col(part), reason))?;
    Ok(Event::Datagram(Box::new(d)))
}

/// Fills `d` from `lwm2m::coap::summarize`'s line; an error names the part.
fn summary_into<'a>(summary: &'a str, d: &mut Datagram) -> Result<(), (&'a str, String)> {
    let mut words = summary.split(' ').peekable();
    let kind = words.next().unwrap_or(summary);
    if !matches!(kind, "CON" | "NON" | "ACK" | "RST") {
        return Err((
            kind,
            format!("expected CON, NON, ACK or RST, found {kind:?}"),
        ));
    }
    d.kind = kind.to_string();
    // The code: a method, or `2.05` and a name of one or more words.
    let mut code = Vec::new();
    while let Some(w) = words.peek() {
        if w.starts_with("mid=") {
            break;
        }
        code.push(words.next().unwrap_or_default());
    }
    d.code = code.join(" ");
    for w in words {
        let bad = |what: &str| (w, format!("expected {what}, found {w:?}"));
        if w.starts_with('/') {
            d.path = Some(w.to_string());
            continue;
        }
        let Some((key, value)) = w.split_once('=') else {
            return Err(bad("key=value"));
        };
        match key {
            "mid" => {
                d.mid = Some(
                    u16::from_str_radix(value.trim_start_matches("0x"), 16)
                        .map_err(|_| bad("mid=0x1234"))?,
                )
            }
            "tok" => d.token = Some(value.to_string()),
            "cf" => d.cf = Some(value.parse().map_err(|_| bad("cf=N"))?),
            "accept" => d.accept = Some(value.parse().map_err(|_| bad("accept=N"))?),
            "obs" => d.observe = Some(value.parse().map_err(|_| bad("obs=N"))?),
            "len" => d.payload_len = value.parse().map_err(|_| bad("len=N"))?,
            "block1" => d.block1 = Some(block(value).ok_or_else(|| bad("block1=N[+]/SIZE"))?),
            "block2" => d.block2 = Some(block(value).ok_or_else(|| bad("block2=N[+]/SIZE"))?),
            "Location-Path" => d.location = Some(value.to_string()),
            // Size1, Size2, Max-Age, ETag...: shown in the message log, not drawn.
            _ => {}
        }
    }
    Ok(())
}

fn block(value: &str) -> Option<Block> {
    let (num, size) = value.split_once('/')?;
    let (num, more) = match num.strip_suffix('+') {
        Some(n) => (n, true),
        None => (num, false),
    };
    Some(Block {
        num: num.parse().ok()?,
        more,
        size: size.parse().ok()?,
    })
}

/// The server's transport writes `DTLS handshake with P completed: ...`,
/// `DTLS handshake with P failed (...): why`, `DTLS session with P (...) closed: why`.
fn tls_outcome(text: &str) -> TlsOutcome {
    let head = text.split(": ").next().unwrap_or(text);
    if text.starts_with("DTLS handshake") && head.ends_with("completed") {
        TlsOutcome::HandshakeCompleted
    } else if text.starts_with("DTLS handshake") && head.contains(" failed") {
        TlsOutcome::HandshakeFailed
    } else if text.starts_with("DTLS session") && head.contains(" closed") {
        TlsOutcome::SessionClosed
    } else {
        TlsOutcome::Other
    }
}

/// One server's log: what a lane of the sequence chart draws.
pub struct ServerLog {
    /// `LwM2M server`, `bootstrap server`...
    pub name: String,
    pub events: Vec<Event>,
}

impl ServerLog {
    /// A lane from a log the test writes out, which must parse cleanly.
    #[cfg(test)]
    pub fn parsed(name: &str, text: &str) -> ServerLog {
        let (events, errors) = parse(name, text);
        assert!(errors.is_empty(), "{errors:?}");
        ServerLog {
            name: name.into(),
            events,
        }
    }
}

/// The servers' logs in a case folder, each named for the lane it gets:
/// the bootstrap server first, the LwM2M server, then any other server's
/// `NAME-messages.log` (a firmware file server's), by name. Lines that do
/// not parse are returned as problems, by file:line:col relative to `run_dir`.
pub fn read_case_logs(
    run_dir: &std::path::Path,
    dir: &std::path::Path,
) -> (Vec<ServerLog>, Vec<String>) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.ends_with("-messages.log"))
                .collect()
        })
        .unwrap_or_default();
    let rank = |n: &str| match n {
        "bootstrap-messages.log" => 0,
        "lwm2m-messages.log" => 1,
        _ => 2,
    };
    names.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
    let mut logs = Vec::new();
    let mut problems = Vec::new();
    for name in names {
        let path = dir.join(&name);
        let shown = path
            .strip_prefix(run_dir)
            .unwrap_or(&path)
            .display()
            .to_string();
        let text = match std::fs::read(&path) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => {
                problems.push(format!("{shown}: {e}"));
                continue;
            }
        };
        let (events, errors) = parse(&shown, &text);
        problems.extend(errors.iter().map(|e| e.to_string()));
        let lane = match name.as_str() {
            "bootstrap-messages.log" => "bootstrap server".to_string(),
            "lwm2m-messages.log" => "LwM2M server".to_string(),
            other => format!("{} server", other.trim_end_matches("-messages.log")),
        };
        logs.push(ServerLog { name: lane, events });
    }
    (logs, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines of a real run (reports/20261207-073134-22012, virtual rig).
    const REGISTER: &str = "2026-12-07T07:31:34.708Z in  <- 127.0.0.1:57969 186B CON POST mid=0x7095 tok=50f7b50e /rd?ep=virtual-meter-20261207-073134-22012&lt=30&lwm2m=1.1&b=U cf=40 len=112 | 4402709550f7b50eb2726411283d1965703d7669727475616c2d6d657465722d32303236313230372d3037333133342d3232303132056c743d3330096c776d326d3d312e3103623d55ff3c2f313e3b7665723d312e312c3c2f312f303e2c3c2f333e3b7665723d312e312c3c2f332f303e2c3c2f343e3b7665723d312e322c3c2f342f303e2c3c2f353e3b7665723d312e312c3c2f352f303e2c3c2f392f303e2c3c2f31392f303e2c3c2f3530312f303e2c3c2f3530342f303e";
    const CREATED: &str = "2026-12-07T07:31:34.709Z out -> 127.0.0.1:57969 16B ACK 2.01 Created mid=0x7095 tok=50f7b50e Location-Path=/rd/2eb7 | 6441709550f7b50e8272640432656237";
    const BLOCK1: &str = "2026-12-07T07:32:07.268Z out -> 127.0.0.1:37226 1049B CON PUT mid=0x09f0 tok=172f621f /5/0/0 cf=42 block1=0+/1024 Size1=65536 len=1024 | 440309f0172f621fb13501300130112ad1020ed314010000ff";
    const CONTINUE: &str = "2026-12-07T07:32:07.271Z in  <- 127.0.0.1:37226 11B ACK 2.31 Continue mid=0x09f0 tok=172f621f block1=0+/1024 | 645f09f0172f621fd10e0e";
    const NOTIFY: &str = "2026-12-07T07:32:03.126Z in  <- 127.0.0.1:40960 17B NON 2.05 Content mid=0x4f4d tok=4f3c3082 obs=8 cf=11542 len=3 | 54454f4d4f3c30826108622d16ffc10301";
    const RST: &str =
        "2026-12-07T07:32:17.293Z out -> 127.0.0.1:46264 4B RST 0.00 Empty mid=0xf136 | 7000f136";
    const UNAUTHORIZED: &str = "2026-12-07T07:31:37.428Z in  <- 127.0.0.1:52618 78B ACK 4.01 Unauthorized mid=0x090f tok=8a400d4c len=69 | 6481090f8a400d4cff000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";
    const HANDSHAKE: &str = "2026-12-07T07:31:34.705Z tls ** 127.0.0.1:57969 DTLS handshake with 127.0.0.1:57969 completed: PSK identity \"virtual-meter-20261207-073134-22012-bs\", TLS_PSK_WITH_AES_128_CCM_8";
    const WRONG_KEY: &str = "2026-12-07T07:31:35.224Z tls ** 127.0.0.1:40010 DTLS handshake with 127.0.0.1:40010 failed (PSK identity \"virtual-meter-20261207-073134-22012\"): peer's Finished failed to authenticate: the PSKs differ (wrong key)";
    const CLOSED: &str = "2026-12-07T07:31:34.768Z tls ** 127.0.0.1:57969 DTLS session with 127.0.0.1:57969 (PSK identity \"virtual-meter-20261207-073134-22012\") closed: peer sent close_notify";

    fn datagram(line: &str) -> Datagram {
        match parse_line(line) {
            Ok(Event::Datagram(d)) => *d,
            other => panic!("a datagram: {other:?}"),
        }
    }

    #[test]
    fn a_register_request_gives_its_path_format_and_payload() {
        let d = datagram(REGISTER);
        assert_eq!(d.time.to_rfc3339(), "2026-12-07T07:31:34.708+00:00");
        assert_eq!(d.direction, Direction::FromDevice);
        assert_eq!(d.peer, "127.0.0.1:57969");
        assert_eq!(d.size, 186);
        assert_eq!(d.bytes.len(), 186);
        assert_eq!((d.kind.as_str(), d.code.as_str()), ("CON", "POST"));
        assert!(d.is_request());
        assert_eq!(d.mid, Some(0x7095));
        assert_eq!(d.token.as_deref(), Some("50f7b50e"));
        assert_eq!(
            d.path.as_deref(),
            Some("/rd?ep=virtual-meter-20261207-073134-22012&lt=30&lwm2m=1.1&b=U")
        );
        assert_eq!(d.cf, Some(40));
        assert_eq!(d.payload_len, 112);
        assert!(d.payload().starts_with(b"</1>;ver=1.1,</1/0>"));
        assert!(d.payload().ends_with(b"</504/0>"));
    }

    #[test]
    fn a_response_keeps_its_code_name_and_location() {
        let d = datagram(CREATED);
        assert_eq!(d.direction, Direction::ToDevice);
        assert_eq!((d.kind.as_str(), d.code.as_str()), ("ACK", "2.01 Created"));
        assert!(!d.is_request());
        assert_eq!(d.location.as_deref(), Some("/rd/2eb7"));
        assert_eq!(d.path, None);
        let d = datagram(UNAUTHORIZED);
        assert_eq!(d.code, "4.01 Unauthorized");
        assert_eq!(d.payload_len, 69);
        let d = datagram(RST);
        assert_eq!((d.kind.as_str(), d.code.as_str()), ("RST", "0.00 Empty"));
        assert_eq!((d.mid, d.token.as_deref()), (Some(0xf136), None));
    }

    #[test]
    fn block_options_give_number_more_flag_and_size() {
        let d = datagram(BLOCK1);
        assert_eq!(
            d.block1,
            Some(Block {
                num: 0,
                more: true,
                size: 1024
            })
        );
        assert_eq!(d.cf, Some(42));
        assert_eq!(d.path.as_deref(), Some("/5/0/0"));
        let d = datagram(CONTINUE);
        assert_eq!(d.code, "2.31 Continue");
        assert_eq!(d.block1.map(|b| (b.num, b.more)), Some((0, true)));
        assert_eq!(
            block("1023/64"),
            Some(Block {
                num: 1023,
                more: false,
                size: 64
            })
        );
    }

    #[test]
    fn a_notification_carries_its_observe_number_and_tlv_payload() {
        let d = datagram(NOTIFY);
        assert_eq!(d.kind, "NON");
        assert_eq!(d.observe, Some(8));
        assert_eq!(d.cf, Some(11542));
        assert_eq!(d.payload(), &[0xc1, 0x03, 0x01]);
    }

    #[test]
    fn dtls_lines_say_completed_failed_or_closed() {
        let note = |line| match parse_line(line) {
            Ok(Event::Tls(t)) => t,
            other => panic!("a tls note: {other:?}"),
        };
        let t = note(HANDSHAKE);
        assert_eq!(t.outcome, TlsOutcome::HandshakeCompleted);
        assert_eq!(t.peer, "127.0.0.1:57969");
        assert!(t.text.ends_with("TLS_PSK_WITH_AES_128_CCM_8"), "{}", t.text);
        let t = note(WRONG_KEY);
        assert_eq!(t.outcome, TlsOutcome::HandshakeFailed);
        assert!(t.text.ends_with("the PSKs differ (wrong key)"));
        assert_eq!(note(CLOSED).outcome, TlsOutcome::SessionClosed);
    }

    #[test]
    fn a_datagram_that_was_not_sent_says_why() {
        let line = "2026-12-07T07:31:34.709Z out -> 127.0.0.1:57969 8B ACK 2.04 Changed mid=0x7094 tok=a9162a39 [NOT SENT: no DTLS session with the peer] | 64447094a9162a39";
        let d = datagram(line);
        assert_eq!(d.code, "2.04 Changed");
        assert_eq!(d.not_sent.as_deref(), Some("no DTLS session with the peer"));
    }

    #[test]
    fn a_garbled_line_is_named_by_file_line_and_column_and_the_rest_kept() {
        let text = format!("{CREATED}\n2026-12-07T07:31:34.709Z out -> 127.0.0.1:1 16B ACK 2.01 Created mid=0xZZ | 00\nnot a line\n{HANDSHAKE}\n");
        let (events, errors) = parse("v/reg/lwm2m-messages.log", &text);
        assert_eq!(events.len(), 2);
        assert_eq!(
            errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            vec![
                "v/reg/lwm2m-messages.log:2:66: expected mid=0x1234, found \"mid=0xZZ\"".to_string(),
                "v/reg/lwm2m-messages.log:3:1: expected an RFC 3339 time, found \"not\": premature end of input".to_string(),
            ]
        );
    }
}
