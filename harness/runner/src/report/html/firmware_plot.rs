//! For a firmware case, one inline SVG on one time axis: the bytes of the
//! image delivered against time (from the block-wise exchanges in the
//! message logs: Block1 pushes to /5/x/0, Block2 answers of a file server
//! that logged), retransmissions marked, and the object 5 State and Update
//! Result the device reported (its notifications and read answers on the
//! wire, decoded here), so a stall, a retry and a state change line up.
//!
//! What the run did not record is said on the page instead of drawn: a
//! file server that kept no message log leaves only its transfer's figures.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use lwm2m::firmware::{FirmwareState, UpdateResult};
use lwm2m::{ContentFormat, Path, Registry, Value};
use serde::Serialize;

use super::message_log::{Datagram, Direction, Event, ServerLog};

const WIDTH: f64 = 900.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 880.0;
const TOP: f64 = 20.0;
const PLOT_BOTTOM: f64 = 220.0;
const BAND: f64 = 22.0;
const BAND_GAP: f64 = 6.0;

#[derive(Debug, Clone, Serialize)]
pub struct FirmwarePlot {
    pub width: u32,
    pub height: u32,
    pub left: u32,
    pub right: u32,
    pub top: u32,
    pub bottom: u32,
    /// One polyline per transfer (`x,y x,y ...`).
    pub lines: Vec<String>,
    pub retransmissions: Vec<Mark>,
    pub x_ticks: Vec<Tick>,
    pub y_ticks: Vec<Tick>,
    pub bands: Vec<Band>,
    /// The transfers' own figures (`transfer:` lines of the step log).
    pub transfers: Vec<String>,
    /// What the run did not record, in words.
    pub missing: Vec<String>,
    /// Points drawn, retransmissions, transitions: what a reader counts.
    pub deliveries: usize,
    pub transitions: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Mark {
    pub x: u32,
    pub y: u32,
    pub title: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tick {
    pub pos: u32,
    pub label: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Band {
    pub name: &'static str,
    pub y: u32,
    pub height: u32,
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Segment {
    pub x: u32,
    pub width: u32,
    pub label: String,
    /// `state-1`, `result-5`: the colour of the value.
    pub class: String,
    pub title: String,
}

/// One block delivered (its end offset), or asked again.
#[derive(Debug, Clone, PartialEq)]
struct Delivery {
    time: DateTime<Utc>,
    /// Bytes of the image up to the end of this block.
    offset: u64,
    retransmission: bool,
    /// First block of a new transfer: the line starts again.
    restart: bool,
}

/// An object 5 value the device reported, as it changed.
#[derive(Debug, Clone, PartialEq)]
struct Reported {
    time: DateTime<Utc>,
    /// 3 (State) or 5 (Update Result).
    resource: u16,
    value: i64,
}

/// The plot of a case, or none when the case moved no firmware and read no
/// object 5 State.
pub fn build(logs: &[ServerLog], step_log: &str) -> Option<FirmwarePlot> {
    let transfers: Vec<String> = step_log
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("transfer: "))
        .map(str::to_string)
        .collect();
    let deliveries = deliveries(logs);
    let reported = reported(logs);
    if deliveries.is_empty() && reported.is_empty() && transfers.is_empty() {
        return None;
    }
    let mut missing = Vec::new();
    if deliveries.is_empty() {
        missing.push(if transfers.is_empty() {
            "No image bytes were delivered block-wise in the message logs.".to_string()
        } else {
            "Bytes delivered per block are not recorded for this transfer: the file server's datagrams are not in the case's message logs. Its figures are below.".to_string()
        });
    }
    if reported.is_empty() {
        missing.push(
            "The device's object 5 State and Update Result do not appear in the message logs."
                .to_string(),
        );
    }
    let times: Vec<DateTime<Utc>> = deliveries
        .iter()
        .map(|d| d.time)
        .chain(reported.iter().map(|r| r.time))
        .collect();
    let t0 = times.iter().min().copied();
    let t1 = times.iter().max().copied();
    let span = match (t0, t1) {
        (Some(a), Some(b)) => ((b - a).num_milliseconds() as f64 / 1000.0).max(0.001),
        _ => 1.0,
    };
    let secs = |t: DateTime<Utc>| t0.map_or(0.0, |a| (t - a).num_milliseconds() as f64 / 1000.0);
    let x = |s: f64| LEFT + (RIGHT - LEFT) * s / span;
    let max_bytes = deliveries
        .iter()
        .map(|d| d.offset)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let y = |b: u64| PLOT_BOTTOM - (PLOT_BOTTOM - TOP) * b as f64 / max_bytes;

    let mut lines: Vec<String> = Vec::new();
    let mut retransmissions = Vec::new();
    for d in &deliveries {
        let point = format!("{:.1},{:.1}", x(secs(d.time)), y(d.offset));
        if d.retransmission {
            retransmissions.push(Mark {
                x: x(secs(d.time)) as u32,
                y: y(d.offset) as u32,
                title: format!(
                    "retransmission at {:.3} s, {} bytes delivered",
                    secs(d.time),
                    d.offset
                ),
            });
        }
        match lines.last_mut() {
            Some(l) if !d.restart => {
                l.push(' ');
                l.push_str(&point);
            }
            _ => lines.push(point),
        }
    }

    let mut bands = Vec::new();
    let mut band_y = PLOT_BOTTOM + 30.0;
    for (resource, name) in [(3u16, "State"), (5u16, "Update Result")] {
        let values: Vec<&Reported> = reported.iter().filter(|r| r.resource == resource).collect();
        let segments = values
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let start = x(secs(r.time));
                let end = values.get(i + 1).map_or(RIGHT, |n| x(secs(n.time)));
                let value = value_name(resource, r.value);
                let width = (end - start).max(1.0);
                // A segment too narrow for its name keeps it in its tooltip.
                let label = if width >= value.len() as f64 * 6.0 {
                    value.clone()
                } else {
                    String::new()
                };
                Segment {
                    x: start as u32,
                    width: width as u32,
                    class: format!(
                        "{}-{}",
                        if resource == 3 { "state" } else { "result" },
                        r.value.clamp(0, 12)
                    ),
                    title: format!("{name} {value} from {:.3} s", secs(r.time)),
                    label,
                }
            })
            .collect();
        bands.push(Band {
            name,
            y: band_y as u32,
            height: BAND as u32,
            segments,
        });
        band_y += BAND + BAND_GAP;
    }

    Some(FirmwarePlot {
        width: WIDTH as u32,
        height: (band_y + 24.0) as u32,
        left: LEFT as u32,
        right: RIGHT as u32,
        top: TOP as u32,
        bottom: PLOT_BOTTOM as u32,
        x_ticks: ticks(span)
            .into_iter()
            .map(|s| Tick {
                pos: x(s) as u32,
                label: format!("{s} s"),
            })
            .collect(),
        y_ticks: if deliveries.is_empty() {
            Vec::new()
        } else {
            byte_ticks(max_bytes)
                .into_iter()
                .map(|b| Tick {
                    pos: y(b as u64) as u32,
                    label: bytes_label(b),
                })
                .collect()
        },
        deliveries: deliveries.len(),
        transitions: reported.len(),
        lines,
        retransmissions,
        bands,
        transfers,
        missing,
    })
}

/// The blocks of the firmware image as they went: Block1 requests to
/// /5/x/0 on any lane (push), Block2 answers on a lane that is not the
/// LwM2M or bootstrap server (a file server's pull). A block asked or sent
/// again is a retransmission (RFC 7252 §4.2 by message id, or a new
/// request for a block already served).
fn deliveries(logs: &[ServerLog]) -> Vec<Delivery> {
    let mut out = Vec::new();
    for log in logs {
        let file_server = log.name != "LwM2M server" && log.name != "bootstrap server";
        // Per peer: blocks seen in the current transfer.
        let mut seen: HashMap<&str, BTreeSet<u32>> = HashMap::new();
        for e in &log.events {
            let Event::Datagram(d) = e else { continue };
            let (block, sender_is_server) = match (d.block1, d.block2) {
                (Some(b), _) if d.is_request() && is_firmware_package(d) => (b, true),
                (_, Some(b)) if file_server && d.is_request() => (b, false),
                (_, Some(b)) if file_server && d.direction == Direction::ToDevice => {
                    out.push(Delivery {
                        time: d.time,
                        offset: u64::from(b.num) * u64::from(b.size) + d.payload_len as u64,
                        retransmission: false,
                        restart: false,
                    });
                    continue;
                }
                _ => continue,
            };
            let blocks = seen.entry(d.peer.as_str()).or_default();
            let restart =
                block.num == 0 && !blocks.is_empty() && blocks.contains(&0) && blocks.len() > 1;
            if restart || blocks.is_empty() {
                blocks.clear();
            }
            let retransmission = !blocks.insert(block.num);
            if sender_is_server {
                // A push: the request carries the block.
                out.push(Delivery {
                    time: d.time,
                    offset: u64::from(block.num) * u64::from(block.size) + d.payload_len as u64,
                    retransmission,
                    restart: restart || block.num == 0 && !retransmission,
                });
            } else if retransmission {
                out.push(Delivery {
                    time: d.time,
                    offset: u64::from(block.num) * u64::from(block.size),
                    retransmission,
                    restart: false,
                });
            } else if block.num == 0 || restart {
                // A pull starts: its line starts at the first answer.
                out.push(Delivery {
                    time: d.time,
                    offset: 0,
                    retransmission: false,
                    restart: true,
                });
            }
        }
    }
    out.sort_by_key(|d| d.time);
    out
}

fn is_firmware_package(d: &Datagram) -> bool {
    let Some(path) = &d.path else { return false };
    let ids: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    ids.len() == 3 && ids[0] == "5" && ids[2] == "0"
}

/// Object 5 State (3) and Update Result (5) as the device reported them in
/// answers and notifications to the server's reads and observations, kept
/// when they change.
fn reported(logs: &[ServerLog]) -> Vec<Reported> {
    let mut registry: Option<Registry> = None;
    let mut out: Vec<Reported> = Vec::new();
    for log in logs.iter().filter(|l| l.name == "LwM2M server") {
        // token -> the path the server read or observed
        let mut asked: HashMap<&str, Path> = HashMap::new();
        for e in &log.events {
            let Event::Datagram(d) = e else { continue };
            let Some(token) = d.token.as_deref() else {
                continue;
            };
            if d.direction == Direction::ToDevice && d.code == "GET" {
                if let Some(p) = d
                    .path
                    .as_deref()
                    .and_then(|p| p.split('?').next())
                    .and_then(|p| p.parse::<Path>().ok())
                    .filter(|p| p.object_id() == Some(5))
                {
                    asked.insert(token, p);
                }
                continue;
            }
            if d.direction != Direction::FromDevice || !d.code.starts_with("2.05") {
                continue;
            }
            let Some(base) = asked.get(token) else {
                continue;
            };
            let format = match d.cf {
                Some(cf) => match ContentFormat::from_code(cf) {
                    Some(f) => f,
                    None => continue,
                },
                None => ContentFormat::Text,
            };
            let registry = registry.get_or_insert_with(Registry::core);
            let Ok(records) = lwm2m::format::decode(format, base, d.payload(), registry) else {
                continue;
            };
            for r in records {
                let resource = match r.path.resource_id() {
                    Some(id @ (3 | 5)) if r.path.depth() == 3 => id,
                    _ => continue,
                };
                let value = match r.value {
                    Value::Integer(v) => v,
                    Value::Unsigned(v) => v as i64,
                    _ => continue,
                };
                let last = out.iter().rev().find(|o| o.resource == resource);
                if last.map(|l| l.value) != Some(value) {
                    out.push(Reported {
                        time: d.time,
                        resource,
                        value,
                    });
                }
            }
        }
    }
    out
}

fn value_name(resource: u16, value: i64) -> String {
    let named = if resource == 3 {
        FirmwareState::from_code(value).map(|s| s.to_string()).ok()
    } else {
        UpdateResult::from_code(value).map(|s| s.to_string()).ok()
    };
    named.unwrap_or_else(|| format!("unknown({value})"))
}

/// Up to about six round tick values from 0 to `max`.
fn ticks(max: f64) -> Vec<f64> {
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(magnitude * 10.0);
    let mut out = Vec::new();
    let mut v = 0.0;
    while v <= max * 1.0001 && out.len() < 12 {
        // Round away float noise (0.30000000000000004).
        out.push((v * 1000.0f64).round() / 1000.0);
        v += step;
    }
    out
}

/// Ticks at a power-of-two step, so an image's size lands on KiB marks.
fn byte_ticks(max: f64) -> Vec<f64> {
    let mut step = 1.0;
    while step < max / 5.0 {
        step *= 2.0;
    }
    (0..)
        .map(|i| i as f64 * step)
        .take_while(|v| *v <= max)
        .take(12)
        .collect()
}

fn bytes_label(b: f64) -> String {
    if b >= 1024.0 && (b / 1024.0).fract() == 0.0 {
        format!("{} KiB", b / 1024.0)
    } else {
        format!("{b} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(name: &str, text: &str) -> ServerLog {
        ServerLog::parsed(name, text)
    }

    // The State observation of fw-pull-coap-64 (real run): GET /5/0/3 obs=0,
    // then TLV notifications 0 -> 1 -> 2 (`c103 01` is resource 3 = 1).
    const STATES: &str = "2026-12-07T07:32:03.097Z out -> 127.0.0.1:40960 18B CON GET mid=0x09c7 tok=4e9ad52f /5/0/3 obs=0 accept=11542 | 440109c74e9ad52f60513501300133622d16
2026-12-07T07:32:03.097Z in  <- 127.0.0.1:40960 17B ACK 2.05 Content mid=0x09c7 tok=4e9ad52f obs=4 cf=11542 len=3 | 644509c74e9ad52f6104622d16ffc10300
2026-12-07T07:32:03.097Z out -> 127.0.0.1:40960 18B CON GET mid=0x09c8 tok=6fea9ad0 /5/0/5 obs=0 accept=11542 | 440109c86fea9ad060513501300135622d16
2026-12-07T07:32:03.100Z in  <- 127.0.0.1:40960 17B ACK 2.05 Content mid=0x09c8 tok=6fea9ad0 obs=5 cf=11542 len=3 | 644509c86fea9ad06105622d16ffc10501
2026-12-07T07:32:03.126Z in  <- 127.0.0.1:40960 17B NON 2.05 Content mid=0x4f4c tok=6fea9ad0 obs=7 cf=11542 len=3 | 54454f4c6fea9ad06107622d16ffc10500
2026-12-07T07:32:03.126Z in  <- 127.0.0.1:40960 17B NON 2.05 Content mid=0x4f4e tok=4e9ad52f obs=9 cf=11542 len=3 | 54454f4e4e9ad52f6109622d16ffc10301
2026-12-07T07:32:03.127Z in  <- 127.0.0.1:40960 15B ACK 2.05 Content mid=0x09ca tok=a3cf84d5 cf=11542 len=3 | 644509caa3cf84d5c22d16ffc10301
2026-12-07T07:32:03.817Z in  <- 127.0.0.1:40960 17B NON 2.05 Content mid=0x4f50 tok=4e9ad52f obs=11 cf=11542 len=3 | 54454f504e9ad52f610b622d16ffc10302
";

    #[test]
    fn state_and_update_result_come_from_the_devices_answers_on_the_wire() {
        let r = reported(&[log("LwM2M server", STATES)]);
        let seen: Vec<(u16, i64, String)> = r
            .iter()
            .map(|r| (r.resource, r.value, r.time.format("%S%.3f").to_string()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (3, 0, "03.097".to_string()),
                (5, 1, "03.100".to_string()),
                (5, 0, "03.126".to_string()),
                (3, 1, "03.126".to_string()),
                (3, 2, "03.817".to_string()),
            ]
        );
        // An answer to a token never asked (tok=a3cf84d5 above) is not guessed at.
        let plot = build(&[log("LwM2M server", STATES)], "").unwrap();
        let states: Vec<&str> = plot.bands[0]
            .segments
            .iter()
            .map(|s| s.title.as_str())
            .collect();
        assert_eq!(
            states,
            vec![
                "State Idle(0) from 0.000 s",
                "State Downloading(1) from 0.029 s",
                "State Downloaded(2) from 0.720 s"
            ]
        );
        // Idle lasted 29 ms of 720: too narrow for its name, which stays in the title.
        assert_eq!(plot.bands[0].segments[0].label, "");
        assert_eq!(plot.bands[0].segments[1].label, "Downloading(1)");
        assert_eq!(plot.bands[1].segments[1].label, "Initial(0)");
        assert_eq!(plot.bands[0].segments[2].class, "state-2");
        // No bytes in the logs: said, not drawn.
        assert!(plot.lines.is_empty());
        assert!(
            plot.missing[0].starts_with("No image bytes"),
            "{:?}",
            plot.missing
        );
    }

    /// A Block1 push of `n` blocks of 1024 (the last one 512 bytes), with
    /// block 2 sent twice under the same message id (its ACK was lost).
    fn push(n: u32) -> String {
        let mut s = String::new();
        for b in 0..n {
            let more = if b + 1 < n { "+" } else { "" };
            let len = if b + 1 < n { 1024 } else { 512 };
            let line = format!("2026-12-07T07:32:07.{:03}Z out -> 127.0.0.1:37226 1044B CON PUT mid=0x{:04x} tok=1b286268 /5/0/0 cf=42 block1={b}{more}/1024 len={len} | 00\n", b * 10, 0x900 + b);
            s += &line;
            if b == 2 {
                s += &line.replace(
                    &format!("07.{:03}Z", b * 10),
                    &format!("07.{:03}Z", b * 10 + 5),
                );
            }
        }
        s
    }

    #[test]
    fn a_push_plots_bytes_against_time_and_marks_the_retransmission() {
        let plot = build(&[log("LwM2M server", &push(4))], "").unwrap();
        assert_eq!(plot.deliveries, 5);
        assert_eq!(plot.lines.len(), 1);
        // 0..30 ms over 80..880 px; 0..3584 bytes over 220..20 px.
        assert_eq!(
            plot.lines[0],
            "80.0,162.9 346.7,105.7 613.3,48.6 746.7,48.6 880.0,20.0"
        );
        assert_eq!(plot.retransmissions.len(), 1);
        assert_eq!(plot.retransmissions[0].x, 746);
        assert_eq!(
            plot.retransmissions[0].title,
            "retransmission at 0.025 s, 3072 bytes delivered"
        );
        let y: Vec<&str> = plot.y_ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(y, vec!["0 B", "1 KiB", "2 KiB", "3 KiB"]);
        assert!(
            plot.missing.iter().any(|m| m.contains("State")),
            "{:?}",
            plot.missing
        );
    }

    #[test]
    fn a_pull_whose_file_server_kept_no_log_says_so_and_shows_its_figures() {
        let steps = "[  1.719s] passed\n  transfer: firmware pull-coap meter-2.0.bin to 127.0.0.1:40885 65536/65536 bytes, 1024 blocks of 64, 0 retransmissions, 0.7 s, 93.1 KiB/s, complete\n";
        let plot = build(&[log("LwM2M server", STATES)], steps).unwrap();
        assert_eq!(plot.transfers.len(), 1);
        assert!(plot.transfers[0].starts_with("firmware pull-coap meter-2.0.bin"));
        assert!(plot.missing[0].starts_with("Bytes delivered per block are not recorded"));
        assert!(build(&[log("LwM2M server", "")], "[  0.1s] passed\n").is_none());
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(1.0), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(ticks(35.3), vec![0.0, 10.0, 20.0, 30.0]);
        assert_eq!(
            byte_ticks(65536.0),
            vec![0.0, 16384.0, 32768.0, 49152.0, 65536.0]
        );
        assert_eq!(bytes_label(49152.0), "48 KiB");
        assert_eq!(bytes_label(100.0), "100 B");
    }
}
