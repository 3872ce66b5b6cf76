//! `queue`: the device as a queue-mode client (LwM2M 1.1 Core §6.5), seen
//! from the embedded server, which holds requests while it believes the
//! device asleep (lwm2m `server/queue.rs`).
//!
//! - `queue: { awake: 2s }` tells the server how long the device stays
//!   reachable after each message (its own awake time, e.g. the T3324 the
//!   case just gave its modem), and requires that the device registered in
//!   queue mode (`Q`, or `b=UQ` in 1.0): a device that did not is *skipped*
//!   with the reason — queue mode is optional in the TS.
//! - `queue: asleep` waits (`within`) until the server believes the device
//!   asleep, and records how long it was awake as the JUnit property
//!   `queue.awake_time` (seconds).
//! - `queue: delivered` checks the last request the server held while the
//!   device slept: it was sent only after the device talked again (its
//!   registration Update), and nothing at all went to the device between
//!   `queue: asleep` and the device's next message (the message log).
//! - `queue: { wakes_within: 10s }` waits for the device's next wake and
//!   checks it came within that span of its last message before sleeping
//!   (the periodic TAU, T3412, it was given) with a registration Update;
//!   the time asleep is the property `queue.sleep_time`.

use std::fmt::Write as _;
use std::time::Duration;

use lwm2m::server::{QueueEvent, ServerEvent};
use serde::Deserialize;
use server::{Direction, EventSeq};

use crate::case::fields::Span;
use crate::session::Session;
use crate::steps::error::{bench, device, timed_out, StepError};
use crate::steps::{CaseContext, Step, StepFuture, Turn};

/// Where `queue: asleep` left the message log, for `queue: delivered`.
const ASLEEP_LOG_MARK: &str = "queue.asleep_log";
/// The event `queue: asleep` saw, for `queue: wakes_within`.
const ASLEEP_EVENT_MARK: &str = "queue.asleep_event";

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Queue {
    /// The device's awake time after each message: the server's belief.
    Awake(Span),
    /// Wait until the server believes the device asleep.
    Asleep,
    /// The held request went out only after the device woke.
    Delivered,
    /// The device wakes and updates within this span of its last message.
    WakesWithin(Span),
}

/// The server's Asleep event for `endpoint`, if `e` is one.
fn asleep_of<'e>(e: &'e ServerEvent, endpoint: &str) -> Option<&'e QueueEvent> {
    match e {
        ServerEvent::Queue(q @ QueueEvent::Asleep { endpoint: ep, .. }) if ep == endpoint => {
            Some(q)
        }
        _ => None,
    }
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// A JUnit property, numbered when the case records it more than once.
fn property(ctx: &mut CaseContext, name: &str, value: String) {
    let taken = ctx
        .properties
        .iter()
        .filter(|(n, _)| n.starts_with(name))
        .count();
    let name = match taken {
        0 => name.to_owned(),
        n => format!("{name}.{}", n + 1),
    };
    ctx.properties.push((name, value));
}

impl Step for Queue {
    fn describe(&self) -> String {
        match self {
            Queue::Awake(s) => format!("queue mode, awake {:?} after each message", s.0),
            Queue::Asleep => "queue mode: the device falls asleep".into(),
            Queue::Delivered => "queue mode: the held request went out after the wake".into(),
            Queue::WakesWithin(s) => format!("queue mode: the device wakes within {:?}", s.0),
        }
    }

    fn run<'a>(
        &'a self,
        turn: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            let ep = rig.endpoint.clone();
            match self {
                Queue::Awake(span) => {
                    rig.server.set_queue_awake_window(span.0).map_err(bench)?;
                    let reg = rig
                        .server
                        .registration(&ep)
                        .ok_or_else(|| device(format!("{ep} registered"), "no registration"))?;
                    if !reg.queue_mode {
                        return Err(StepError::Skip(format!(
                            "{ep} registered without queue mode (LwM2M {}, binding {}, no Q): queue mode is optional (Core §6.5)",
                            reg.lwm2m_version, reg.binding
                        )));
                    }
                    let _ = writeln!(ctx.log, "  -> queue mode, awake window {:?}", span.0);
                    Ok(())
                }
                Queue::Asleep => {
                    let (seq, event) = rig
                        .server
                        .await_event(ctx.cursor, turn.within, |e| asleep_of(e, &ep).is_some())
                        .await
                        .map_err(|e| timed_out(format!("{ep} to fall asleep"), e.to_string()))?;
                    let Some(QueueEvent::Asleep { awake, .. }) = asleep_of(&event, &ep) else {
                        return Err(bench("awaited event is not an Asleep"));
                    };
                    ctx.cursor = seq;
                    // The wire from here on is the device's sleep.
                    let mark = rig.server.log_len();
                    ctx.saved.insert(ASLEEP_LOG_MARK.into(), mark.to_string());
                    ctx.saved
                        .insert(ASLEEP_EVENT_MARK.into(), seq.0.to_string());
                    property(ctx, "queue.awake_time", secs(*awake));
                    let _ = writeln!(ctx.log, "  -> asleep after {} awake", secs(*awake));
                    Ok(())
                }
                Queue::Delivered => delivered(ctx, rig, &ep),
                Queue::WakesWithin(bound) => wakes_within(turn, ctx, rig, &ep, bound.0).await,
            }
        })
    }
}

/// The held request and the wire while the device slept.
fn delivered(ctx: &mut CaseContext, rig: &Session, ep: &str) -> Result<(), StepError> {
    let Some(mark) = ctx.saved.get(ASLEEP_LOG_MARK).and_then(|m| m.parse().ok()) else {
        return Err(bench(
            "`queue: delivered` needs a `queue: asleep` before it",
        ));
    };
    let from = ctx
        .saved
        .get(ASLEEP_EVENT_MARK)
        .and_then(|m| m.parse().ok())
        .map_or(EventSeq::START, EventSeq);
    let events = rig.server.events_since(from);
    let held = events.iter().rev().find_map(|(_, e)| match e {
        ServerEvent::Queue(QueueEvent::Held {
            id, endpoint, path, ..
        }) if endpoint == ep => Some((*id, *path)),
        _ => None,
    });
    let Some((id, path)) = held else {
        return Err(device(
            format!("a request to {ep} held while it slept"),
            "none held: the server believed it awake",
        ));
    };
    let mut woke = false;
    let mut sent_at_wake = false;
    for (_, e) in &events {
        match e {
            ServerEvent::Updated(r) | ServerEvent::Registered(r) if r.endpoint == ep => woke = true,
            ServerEvent::Queue(QueueEvent::Delivered {
                id: d, held_for, ..
            }) if *d == id => {
                sent_at_wake = woke;
                let _ = writeln!(
                    ctx.log,
                    "  -> request #{} for {path} held {}",
                    id.0,
                    secs(*held_for)
                );
                property(ctx, "queue.held_time", secs(*held_for));
                break;
            }
            _ => {}
        }
    }
    if !sent_at_wake {
        return Err(device(
            format!("the request for {path} held for {ep} sent after its registration Update"),
            "it was not sent after an Update (see the server events)",
        ));
    }
    // The wire: from the sleep to the device's next message, nothing to it.
    let peer = rig.server.registration(ep).map(|r| r.peer);
    let log = rig.server.log_since(mark);
    let wake = log.iter().position(|l| l.direction == Direction::In);
    let asleep_part = &log[..wake.unwrap_or(log.len())];
    if let Some(out) = asleep_part
        .iter()
        .find(|l| l.direction == Direction::Out && (Some(l.peer) == peer || peer.is_none()))
    {
        return Err(device(
            format!("nothing sent to {ep} while the server believed it asleep"),
            format!("log #{} out: {}", out.index, out.summary),
        ));
    }
    Ok(())
}

/// The next wake: within `bound` of the last exchange before the sleep
/// (T3412 runs from the UE's return to idle, TS 24.301 §5.3.5, so from
/// the last datagram either way, which the message log times), with an Update.
async fn wakes_within(
    turn: Turn,
    ctx: &mut CaseContext,
    rig: &Session,
    ep: &str,
    bound: Duration,
) -> Result<(), StepError> {
    let (Some(prev_seq), Some(mark)) = (
        ctx.saved
            .get(ASLEEP_EVENT_MARK)
            .and_then(|m| m.parse::<u64>().ok()),
        ctx.saved
            .get(ASLEEP_LOG_MARK)
            .and_then(|m| m.parse::<usize>().ok()),
    ) else {
        return Err(bench(
            "`queue: wakes_within` needs a `queue: asleep` before it",
        ));
    };
    let (seq, event) = rig
        .server
        .await_event(EventSeq(prev_seq), turn.within, |e| {
            asleep_of(e, ep).is_some()
        })
        .await
        .map_err(|e| {
            timed_out(
                format!("{ep} to wake, update and sleep again"),
                e.to_string(),
            )
        })?;
    let Some(QueueEvent::Asleep { awake, .. }) = asleep_of(&event, ep) else {
        return Err(bench("awaited event is not an Asleep"));
    };
    let updated = rig
        .server
        .events_since(EventSeq(prev_seq))
        .into_iter()
        .take_while(|(s, _)| *s < seq)
        .any(|(_, e)| matches!(e, ServerEvent::Updated(r) if r.endpoint == ep));
    // The last exchange before the sleep, and the first message after it.
    let log = rig.server.log_since(mark.saturating_sub(LOOK_BACK));
    let datagram = |d: Direction| d == Direction::In || d == Direction::Out;
    let wake = log
        .iter()
        .find(|l| l.index >= mark && l.direction == Direction::In)
        .ok_or_else(|| bench("the wake is not in the message log"))?;
    let last = log
        .iter()
        .rev()
        .find(|l| l.index < mark && datagram(l.direction))
        .ok_or_else(|| bench("the exchange before the sleep is no longer in the message log"))?;
    let slept = (wake.time - last.time).to_std().unwrap_or_default();
    ctx.cursor = seq;
    ctx.saved
        .insert(ASLEEP_EVENT_MARK.into(), seq.0.to_string());
    ctx.saved
        .insert(ASLEEP_LOG_MARK.into(), rig.server.log_len().to_string());
    property(ctx, "queue.sleep_time", secs(slept));
    property(ctx, "queue.awake_time", secs(*awake));
    let _ = writeln!(
        ctx.log,
        "  -> woke {} after the last exchange (log #{} to #{}), then awake {}",
        secs(slept),
        last.index,
        wake.index,
        secs(*awake)
    );
    if !updated {
        return Err(device(
            format!("{ep} to wake with a registration Update"),
            "it woke without one",
        ));
    }
    if slept > bound {
        return Err(device(
            format!("{ep} to wake within {} of its last exchange", secs(bound)),
            format!(
                "it slept {} (log #{} to #{})",
                secs(slept),
                last.index,
                wake.index
            ),
        ));
    }
    Ok(())
}

/// How far before the sleep the message log is searched for the last exchange.
const LOOK_BACK: usize = 64;
