//! The message sequence chart of a case: the device on the left, each
//! server whose log the case folder holds on the right (bootstrap server,
//! LwM2M server, a firmware file server when one logged), an arrow per
//! datagram with its method or code, path, content format and block, and a
//! row per DTLS handshake or closed session. The geometry is computed here;
//! the template draws it as inline SVG, so every label goes through the
//! template engine's escaping.
//!
//! A firmware transfer is hundreds of Block1/Block2 exchanges: a run of
//! them is drawn as one labelled arrow each way with the block range and
//! the count, or the chart would be pages long and say less.

use serde::Serialize;

use super::message_log::{Block, Datagram, Direction, Event, ServerLog, TlsOutcome};

/// Shortest run of block exchanges that is drawn collapsed.
const COLLAPSE_AT: usize = 4;
/// Rows drawn at most; the rest is named under the chart (the log has it).
const MAX_ROWS: usize = 400;

const LANE_DEVICE_X: u32 = 90;
const LANE_FIRST_SERVER_X: u32 = 620;
const LANE_GAP: u32 = 230;
const TOP: u32 = 52;
const ROW: u32 = 22;
/// Width of a label character at the chart's 11px monospace font.
const CHAR_WIDTH: u32 = 7;

#[derive(Debug, Clone, Serialize)]
pub struct Chart {
    pub width: u32,
    pub height: u32,
    pub lanes: Vec<Lane>,
    pub rows: Vec<Row>,
    /// Rows left out past [`MAX_ROWS`].
    pub omitted: usize,
    /// Datagrams in the logs, and how many rows show them.
    pub datagrams: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Lane {
    pub x: u32,
    pub name: String,
    /// The addresses seen on this lane (the device's change per session).
    pub peers: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub y: u32,
    /// Seconds since the chart's first event, as the left margin shows it.
    pub at: String,
    /// `arrow`, `note`, `collapsed`; with ` failed` or ` error` when it is one.
    pub class: String,
    pub x1: u32,
    pub x2: u32,
    /// The arrowhead's points at `x2` (`x,y x,y x,y`); empty for a note.
    pub head: String,
    pub label_x: u32,
    pub label: String,
    /// Shown on hover: time, peer, message id, token, size.
    pub detail: String,
}

/// An arrow (or a collapsed run of them) before layout.
#[derive(Debug, Clone, PartialEq)]
struct Item {
    lane: usize,
    time: chrono::DateTime<chrono::Utc>,
    /// `None` for a DTLS note (drawn between the two lanes, no head).
    direction: Option<Direction>,
    label: String,
    detail: String,
    failed: bool,
    collapsed: bool,
}

pub fn build(logs: &[ServerLog]) -> Option<Chart> {
    let mut merged: Vec<(usize, &Event)> = logs
        .iter()
        .enumerate()
        .flat_map(|(i, l)| l.events.iter().map(move |e| (i, e)))
        .collect();
    if merged.is_empty() {
        return None;
    }
    // Stable: same-millisecond lines keep their order within a log.
    merged.sort_by_key(|(_, e)| e.time());
    let t0 = merged[0].1.time();
    let datagrams = merged
        .iter()
        .filter(|(_, e)| matches!(e, Event::Datagram(_)))
        .count();
    let items = collapse(&merged);

    let mut lanes = vec![Lane {
        x: LANE_DEVICE_X,
        name: "device".into(),
        peers: peers(logs.iter().flat_map(|l| &l.events)),
    }];
    for (i, l) in logs.iter().enumerate() {
        lanes.push(Lane {
            x: LANE_FIRST_SERVER_X + LANE_GAP * i as u32,
            name: l.name.clone(),
            peers: String::new(),
        });
    }
    let omitted = items.len().saturating_sub(MAX_ROWS);
    let rows: Vec<Row> = items
        .iter()
        .take(MAX_ROWS)
        .enumerate()
        .map(|(n, item)| layout(n, item, lanes[item.lane + 1].x, t0))
        .collect();
    // Labels start at the device and may run past the last lane.
    let longest = rows
        .iter()
        .map(|r| r.label.chars().count())
        .max()
        .unwrap_or(0) as u32;
    let width = (lanes.last().map(|l| l.x).unwrap_or(LANE_FIRST_SERVER_X) + 120)
        .max(LANE_DEVICE_X + 10 + longest * CHAR_WIDTH);
    let height = TOP + ROW * (rows.len() as u32 + 1);
    Some(Chart {
        width,
        height,
        lanes,
        rows,
        omitted,
        datagrams,
    })
}

/// The device's addresses, in order of first appearance.
fn peers<'a>(events: impl Iterator<Item = &'a Event>) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for e in events {
        let p = match e {
            Event::Datagram(d) => d.peer.as_str(),
            Event::Tls(t) => t.peer.as_str(),
        };
        if !seen.contains(&p) {
            seen.push(p);
        }
    }
    match seen.len() {
        0..=3 => seen.join(", "),
        n => format!("{}, ... ({n} addresses)", seen[..2].join(", ")),
    }
}

fn layout(n: usize, item: &Item, server_x: u32, t0: chrono::DateTime<chrono::Utc>) -> Row {
    let y = TOP + ROW * (n as u32 + 1);
    let at = format!("{:.3}", (item.time - t0).num_milliseconds() as f64 / 1000.0);
    let mut class = if item.direction.is_none() {
        "note".to_string()
    } else if item.collapsed {
        "collapsed".to_string()
    } else {
        "arrow".to_string()
    };
    if item.failed {
        class.push_str(" failed");
    }
    let (x1, x2) = match item.direction {
        Some(Direction::FromDevice) | None => (LANE_DEVICE_X, server_x),
        Some(Direction::ToDevice) => (server_x, LANE_DEVICE_X),
    };
    let head = match item.direction {
        None => String::new(),
        Some(_) => {
            let back: i64 = if x2 > x1 { -8 } else { 8 };
            let bx = x2 as i64 + back;
            format!("{x2},{y} {bx},{} {bx},{}", y - 4, y + 4)
        }
    };
    Row {
        y,
        at,
        class,
        x1,
        x2,
        head,
        label_x: LANE_DEVICE_X + 10,
        label: item.label.clone(),
        detail: item.detail.clone(),
    }
}

/// The block option a datagram carries that makes it part of a transfer,
/// and which one (1: Block1 upload, 2: Block2 download).
fn block_of(d: &Datagram) -> Option<(u8, Block)> {
    d.block1.map(|b| (1, b)).or(d.block2.map(|b| (2, b)))
}

fn collapse(merged: &[(usize, &Event)]) -> Vec<Item> {
    let mut items = Vec::new();
    let mut i = 0;
    while i < merged.len() {
        let (lane, event) = merged[i];
        if let Event::Datagram(d) = event {
            if let Some((kind, _)) = block_of(d) {
                // The run: consecutive datagrams of this lane with this option.
                let len = merged[i..]
                    .iter()
                    .take_while(|(l, e)| {
                        *l == lane
                            && matches!(e, Event::Datagram(x) if block_of(x).map(|b| b.0) == Some(kind))
                    })
                    .count();
                if len >= COLLAPSE_AT {
                    let run: Vec<&Datagram> = merged[i..i + len]
                        .iter()
                        .filter_map(|(_, e)| match e {
                            Event::Datagram(d) => Some(d.as_ref()),
                            Event::Tls(_) => None,
                        })
                        .collect();
                    items.extend(collapsed(lane, kind, &run));
                    i += len;
                    continue;
                }
            }
        }
        items.push(single(lane, event));
        i += 1;
    }
    items
}

fn single(lane: usize, event: &Event) -> Item {
    match event {
        Event::Tls(t) => {
            let (label, failed) = match t.outcome {
                TlsOutcome::HandshakeCompleted => (
                    format!(
                        "DTLS handshake completed{}",
                        t.text
                            .rsplit_once(", ")
                            .map(|(_, suite)| format!(" ({suite})"))
                            .unwrap_or_default()
                    ),
                    false,
                ),
                TlsOutcome::HandshakeFailed => (
                    format!(
                        "DTLS handshake failed: {}",
                        t.text
                            .split_once("): ")
                            .map(|(_, why)| why)
                            .unwrap_or(&t.text)
                    ),
                    true,
                ),
                TlsOutcome::SessionClosed => (
                    format!(
                        "DTLS session closed: {}",
                        t.text
                            .split_once("closed: ")
                            .map(|(_, why)| why)
                            .unwrap_or(&t.text)
                    ),
                    false,
                ),
                TlsOutcome::Other => (t.text.clone(), false),
            };
            Item {
                lane,
                time: t.time,
                direction: None,
                label,
                detail: format!("{} {}: {}", t.time.format("%H:%M:%S%.3f"), t.peer, t.text),
                failed,
                collapsed: false,
            }
        }
        Event::Datagram(d) => Item {
            lane,
            time: d.time,
            direction: Some(d.direction),
            label: label(d),
            detail: detail(d),
            failed: d.not_sent.is_some() || d.undecodable.is_some() || is_error_code(&d.code),
            collapsed: false,
        },
    }
}

/// `CON GET /5/0/3 obs=0 accept=11542`, `ACK 2.05 Content cf=11542`,
/// `CON PUT /5/0/0 cf=42 block1 #3+ of 1024`.
fn label(d: &Datagram) -> String {
    if let Some(u) = &d.undecodable {
        return u.clone();
    }
    let mut s = format!("{} {}", d.kind, d.code);
    if let Some(p) = &d.path {
        s.push(' ');
        s.push_str(p);
    }
    if let Some(l) = &d.location {
        s.push_str(&format!(" Location {l}"));
    }
    if let Some(o) = d.observe {
        s.push_str(&format!(" obs={o}"));
    }
    if let Some(cf) = d.cf {
        s.push_str(&format!(" cf={cf}"));
    }
    if let Some(a) = d.accept {
        s.push_str(&format!(" accept={a}"));
    }
    for (name, b) in [("block1", d.block1), ("block2", d.block2)] {
        if let Some(b) = b {
            s.push_str(&format!(
                " {name} #{}{} of {}",
                b.num,
                if b.more { "+" } else { "" },
                b.size
            ));
        }
    }
    if let Some(why) = &d.not_sent {
        s.push_str(&format!(" — NOT SENT: {why}"));
    }
    s
}

fn detail(d: &Datagram) -> String {
    let mut s = format!("{} {} {}B", d.time.format("%H:%M:%S%.3f"), d.peer, d.size);
    if let Some(m) = d.mid {
        s.push_str(&format!(" mid=0x{m:04x}"));
    }
    if let Some(t) = &d.token {
        s.push_str(&format!(" tok={t}"));
    }
    if d.payload_len > 0 {
        s.push_str(&format!(" payload {} bytes", d.payload_len));
    }
    s
}

fn is_error_code(code: &str) -> bool {
    code.starts_with('4') || code.starts_with('5')
}

/// A run of block exchanges as one arrow per direction: the requests with
/// their block range, the responses with their codes and counts.
fn collapsed(lane: usize, kind: u8, run: &[&Datagram]) -> Vec<Item> {
    let option = if kind == 1 { "block1" } else { "block2" };
    let mut out = Vec::new();
    // The direction that opened the run is drawn first (a push's requests
    // go to the device, a pull's come from it).
    let opener = run.first().map_or(Direction::FromDevice, |d| d.direction);
    let other = match opener {
        Direction::FromDevice => Direction::ToDevice,
        Direction::ToDevice => Direction::FromDevice,
    };
    for direction in [opener, other] {
        let these: Vec<&&Datagram> = run.iter().filter(|d| d.direction == direction).collect();
        let Some(first) = these.first() else {
            continue;
        };
        let blocks: Vec<Block> = these
            .iter()
            .filter_map(|d| block_of(d).map(|b| b.1))
            .collect();
        let lo = blocks.iter().map(|b| b.num).min().unwrap_or(0);
        let hi = blocks.iter().map(|b| b.num).max().unwrap_or(0);
        let mut seen = std::collections::BTreeSet::new();
        let repeats = blocks.iter().filter(|b| !seen.insert(b.num)).count();
        let sizes: std::collections::BTreeSet<u32> = blocks.iter().map(|b| b.size).collect();
        // Codes with their counts, in order of first appearance.
        let mut codes: Vec<(String, usize)> = Vec::new();
        for d in &these {
            let c = format!("{} {}", d.kind, d.code);
            match codes.iter_mut().find(|(k, _)| *k == c) {
                Some((_, n)) => *n += 1,
                None => codes.push((c, 1)),
            }
        }
        let codes = codes
            .iter()
            .map(|(c, n)| format!("{c} ×{n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut label = codes;
        if let Some(p) = &first.path {
            label.push_str(&format!(" {p}"));
        }
        if let Some(cf) = first.cf {
            label.push_str(&format!(" cf={cf}"));
        }
        label.push_str(&format!(
            " {option} #{lo}–#{hi} of {}",
            sizes
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join("/")
        ));
        if repeats > 0 {
            label.push_str(&format!(", {repeats} repeated"));
        }
        let last = these.last().unwrap_or(first);
        out.push(Item {
            lane,
            time: first.time,
            direction: Some(direction),
            label: format!("{} messages: {label}", these.len()),
            detail: format!(
                "{} to {} {}: {} datagrams, {} bytes",
                first.time.format("%H:%M:%S%.3f"),
                last.time.format("%H:%M:%S%.3f"),
                first.peer,
                these.len(),
                these.iter().map(|d| d.size).sum::<usize>()
            ),
            failed: these
                .iter()
                .any(|d| d.not_sent.is_some() || is_error_code(&d.code)),
            collapsed: true,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(name: &str, text: &str) -> ServerLog {
        ServerLog::parsed(name, text)
    }

    /// A Block1 push of `n` blocks of 1024 as the server logs it.
    fn push(n: u32) -> String {
        let mut s = String::new();
        for b in 0..n {
            let more = if b + 1 < n { "+" } else { "" };
            let code = if b + 1 < n {
                "2.31 Continue"
            } else {
                "2.04 Changed"
            };
            s += &format!("2026-12-07T07:32:07.{:03}Z out -> 127.0.0.1:37226 1044B CON PUT mid=0x{:04x} tok=1b286268 /5/0/0 cf=42 block1={b}{more}/1024 len=1024 | 00\n", b * 2, 0x900 + b);
            s += &format!("2026-12-07T07:32:07.{:03}Z in  <- 127.0.0.1:37226 11B ACK {code} mid=0x{:04x} tok=1b286268 block1={b}{more}/1024 | 00\n", b * 2 + 1, 0x900 + b);
        }
        s
    }

    const REGISTER: &str = "2026-12-07T07:32:04.815Z tls ** 127.0.0.1:60145 DTLS handshake with 127.0.0.1:60145 completed: PSK identity \"virtual-meter-1\", TLS_PSK_WITH_AES_128_CCM_8
2026-12-07T07:32:04.815Z in  <- 127.0.0.1:60145 18B CON POST mid=0x52b4 tok=7c8ce376 /rd?ep=virtual-meter-1&lt=30 cf=40 len=2 | 00
2026-12-07T07:32:04.815Z out -> 127.0.0.1:60145 16B ACK 2.01 Created mid=0x52b4 tok=7c8ce376 Location-Path=/rd/1d91 | 00
";

    #[test]
    fn each_datagram_is_an_arrow_between_the_device_and_its_server() {
        let chart = build(&[log("LwM2M server", REGISTER)]).unwrap();
        assert_eq!(chart.lanes.len(), 2);
        assert_eq!(chart.lanes[0].peers, "127.0.0.1:60145");
        let labels: Vec<(&str, &str)> = chart
            .rows
            .iter()
            .map(|r| (r.class.as_str(), r.label.as_str()))
            .collect();
        assert_eq!(
            labels,
            vec![
                (
                    "note",
                    "DTLS handshake completed (TLS_PSK_WITH_AES_128_CCM_8)"
                ),
                ("arrow", "CON POST /rd?ep=virtual-meter-1&lt=30 cf=40"),
                ("arrow", "ACK 2.01 Created Location /rd/1d91"),
            ]
        );
        // The request goes right to the server, the answer left to the device.
        assert!(chart.rows[1].x1 < chart.rows[1].x2);
        assert!(chart.rows[2].x1 > chart.rows[2].x2);
        assert_eq!(chart.rows[1].head, "620,96 612,92 612,100");
        assert_eq!(chart.datagrams, 2);
    }

    #[test]
    fn a_long_block_transfer_is_one_arrow_each_way_with_its_count() {
        let chart = build(&[log("LwM2M server", &push(64))]).unwrap();
        assert_eq!(chart.rows.len(), 2, "{:#?}", chart.rows);
        assert_eq!(
            chart.rows[0].label,
            "64 messages: CON PUT ×64 /5/0/0 cf=42 block1 #0–#63 of 1024"
        );
        assert_eq!(
            chart.rows[1].label,
            "64 messages: ACK 2.31 Continue ×63, ACK 2.04 Changed ×1 block1 #0–#63 of 1024"
        );
        assert_eq!(chart.rows[0].class, "collapsed");
        assert_eq!(chart.datagrams, 128);
    }

    #[test]
    fn a_short_block_exchange_and_a_repeat_are_drawn_as_they_are() {
        let chart = build(&[log("LwM2M server", &push(1))]).unwrap();
        assert_eq!(chart.rows.len(), 2);
        assert_eq!(
            chart.rows[0].label,
            "CON PUT /5/0/0 cf=42 block1 #0 of 1024"
        );
        // A block asked twice is counted as repeated in the collapsed arrow.
        let mut text = push(5);
        text += &push(5).lines().nth(4).map(|l| format!("{l}\n")).unwrap();
        let chart = build(&[log("LwM2M server", &text)]).unwrap();
        assert!(
            chart.rows[0]
                .label
                .ends_with("block1 #0–#4 of 1024, 1 repeated"),
            "{}",
            chart.rows[0].label
        );
    }

    #[test]
    fn a_failed_handshake_and_an_error_code_are_marked_failed() {
        let text = "2026-12-07T07:31:35.224Z tls ** 127.0.0.1:40010 DTLS handshake with 127.0.0.1:40010 failed (PSK identity \"m\"): peer's Finished failed to authenticate: the PSKs differ (wrong key)
2026-12-07T07:31:37.428Z in  <- 127.0.0.1:52618 8B ACK 4.01 Unauthorized mid=0x090f tok=8a400d4c | 00
";
        let chart = build(&[log("LwM2M server", text)]).unwrap();
        assert_eq!(chart.rows[0].class, "note failed");
        assert_eq!(
            chart.rows[0].label,
            "DTLS handshake failed: peer's Finished failed to authenticate: the PSKs differ (wrong key)"
        );
        assert_eq!(chart.rows[1].class, "arrow failed");
        assert_eq!(chart.rows[1].at, "2.204");
    }

    #[test]
    fn servers_get_lanes_and_their_events_interleave_by_time() {
        let bs = "2026-12-07T07:31:34.705Z in  <- 127.0.0.1:57969 51B CON POST mid=0x7094 tok=a9162a39 /bs?ep=m | 00\n";
        let chart = build(&[log("bootstrap server", bs), log("LwM2M server", REGISTER)]).unwrap();
        let lanes: Vec<&str> = chart.lanes.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(lanes, vec!["device", "bootstrap server", "LwM2M server"]);
        assert_eq!(chart.rows[0].label, "CON POST /bs?ep=m");
        assert_eq!(chart.rows[0].x2, chart.lanes[1].x);
        assert_eq!(chart.rows[2].x2, chart.lanes[2].x);
        assert!(build(&[log("LwM2M server", "")]).is_none());
    }
}
