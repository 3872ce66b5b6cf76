//! Power steps: switching, brown-outs, and cuts at an exact protocol moment
//! (a resource value, a serial line, a datagram, a fraction of an image
//! delivered, a seeded random moment), restored without re-configuring the
//! device so it must recover from what it kept.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::case::step::CutTrigger;
use crate::case::{Action, Case, Step};
use crate::session::Session;
use crate::steps::engine::{bench, read_value, serial_wait_error, timed_out, StepError};
use crate::steps::value::matches;

pub(super) async fn power(
    session: &mut Session,
    action: crate::case::model::PowerAction,
    log: &mut String,
) -> Result<(), StepError> {
    use crate::case::model::PowerAction;
    require_power(session)?;
    session.cursor = session.server.current_seq();
    session.require_new_registration = true;
    match action {
        PowerAction::Off => switch_off(session)?,
        PowerAction::On => {}
        PowerAction::Cycle => {
            switch_off(session)?;
            // Long enough for a real board's supply rails to fall.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        PowerAction::Brownout => {
            switch_off(session)?;
            tokio::time::sleep(crate::case::step::BROWNOUT).await;
            return restore(session, log);
        }
    }
    if matches!(action, PowerAction::On | PowerAction::Cycle) {
        session.set_power(true).map_err(StepError::Bench)?;
        tokio::task::block_in_place(|| session.bring_up()).map_err(StepError::Bench)?;
        let _ = writeln!(log, "  -> device on, pointed at {}", session.server_uri());
    }
    Ok(())
}

fn require_power(session: &Session) -> Result<(), StepError> {
    if session.power.is_none() {
        return Err(StepError::Skip(format!(
            "rig {} has no power control",
            session.rig.name
        )));
    }
    Ok(())
}

fn switch_off(session: &mut Session) -> Result<(), StepError> {
    session.set_power(false).map_err(StepError::Bench)?;
    if let Some(m) = session.modem.as_mut() {
        m.close();
    }
    Ok(())
}

/// Power back on after a cut: the modem port is reopened (the device boots)
/// but nothing is configured, so the device must recover on its own.
fn restore(session: &mut Session, log: &mut String) -> Result<(), StepError> {
    session.set_power(true).map_err(StepError::Bench)?;
    if let Some(m) = session.modem.as_mut() {
        tokio::task::block_in_place(|| m.open()).map_err(bench)?;
    }
    let _ = writeln!(log, "  -> power restored; the device is on its own");
    Ok(())
}

/// Waits for the trigger, cuts power, keeps it off for `restore_after`, restores it.
pub(super) async fn power_cut(
    session: &mut Session,
    case: &Case,
    step: &Step,
    within: Duration,
    log: &mut String,
    properties: &mut Vec<(String, String)>,
) -> Result<(), StepError> {
    let Action::PowerCut {
        trigger,
        restore_after,
    } = &step.action
    else {
        return Err(bench("power_cut called for another step"));
    };
    let restore_after = *restore_after;
    require_power(session)?;
    let started = Instant::now();
    let end = started + within;
    match trigger {
        CutTrigger::After(d) => tokio::time::sleep(*d).await,
        CutTrigger::Delivered(fraction) => {
            let image = session.firmware_images.last().cloned().ok_or_else(|| {
                bench("power_cut delivered: no firmware step delivered an image in this case")
            })?;
            loop {
                let done = session
                    .firmware
                    .as_ref()
                    .and_then(|f| f.progress(&image))
                    .map(|p| p.fraction())
                    .unwrap_or(0.0);
                if done >= *fraction {
                    let _ = writeln!(log, "  {:.1}% of {image} delivered", done * 100.0);
                    break;
                }
                if Instant::now() >= end {
                    return Err(timed_out(
                        format!("{:.0}% of {image} delivered (the moment to cut power) within {within:?}", fraction * 100.0),
                        format!("{:.1}%", done * 100.0),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        CutTrigger::Random { from, to } => {
            let seed = cut_seed(session.seed, session.round, case, step);
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let at = *from + (*to - *from).mul_f64(rng.gen::<f64>());
            let _ = writeln!(
                log,
                "  cut planned at {:.3}s (cut seed {seed}, run seed {})",
                at.as_secs_f64(),
                session.seed
            );
            let name = match session.round {
                0 => format!("cut_line_{}", step.line),
                r => format!("cut_line_{}_round_{r}", step.line),
            };
            properties.push((format!("{name}_seed"), seed.to_string()));
            properties.push((format!("{name}_at_ms"), at.as_millis().to_string()));
            tokio::time::sleep(at).await;
        }
        CutTrigger::Value { path, equals } => loop {
            let remaining = end.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(timed_out(
                    format!("{path} to reach {equals} (the moment to cut power) within {within:?}"),
                    "it did not",
                ));
            }
            if let Ok(v) = read_value(session, *path, remaining.min(Duration::from_secs(5))).await {
                if matches(&v, equals) {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        },
        CutTrigger::SerialLine(prefix) => {
            let rig = session.rig.name.clone();
            let modem = session
                .modem
                .as_mut()
                .ok_or_else(|| StepError::Skip(format!("rig {rig} has no modem")))?;
            tokio::task::block_in_place(|| modem.wait_for_line(prefix, within)).map_err(|e| {
                serial_wait_error(
                    format!(
                        "the serial line {prefix:?} (the moment to cut power) within {within:?}"
                    ),
                    e,
                )
            })?;
        }
        CutTrigger::Message(text) => {
            // Datagrams either way, on the LwM2M server and on the bootstrap
            // server (a cut in the middle of a bootstrap).
            let (mut index, mut bs_index) = session.previous_step_logs;
            'wait: loop {
                let mut entries = session.server.log_since(index);
                if let Some(last) = entries.last() {
                    index = last.index + 1;
                }
                if let Some(bs) = &session.bootstrap {
                    let more = bs.log_since(bs_index);
                    if let Some(last) = more.last() {
                        bs_index = last.index + 1;
                    }
                    entries.extend(more);
                }
                if let Some(entry) = entries.iter().find(|e| {
                    e.direction != server::Direction::Note && summary_matches(&e.summary, text)
                }) {
                    let _ = writeln!(log, "  saw {}", entry.summary);
                    break 'wait;
                }
                if Instant::now() >= end {
                    return Err(timed_out(
                        format!("a datagram {text:?} (the moment to cut power) within {within:?}"),
                        "none arrived",
                    ));
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }
    session.cursor = session.server.current_seq();
    session.require_new_registration = true;
    switch_off(session)?;
    let _ = writeln!(
        log,
        "  power cut at {:.3}s",
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(restore_after).await;
    restore(session, log)
}

/// `POST /rd/` matches a summary holding the method POST and a path
/// starting with /rd/; a single word matches any word that starts with it.
fn summary_matches(summary: &str, pattern: &str) -> bool {
    let words: Vec<&str> = summary.split_whitespace().collect();
    pattern
        .split_whitespace()
        .all(|p| words.iter().any(|w| w.starts_with(p)))
}

/// One seed per cut, derived from the run's seed and where the step is, so
/// that `--seed` replays every cut of a run exactly.
fn cut_seed(run_seed: u64, session_round: u32, case: &Case, step: &Step) -> u64 {
    use std::hash::{Hash, Hasher};
    // FNV-1a: stable across Rust versions, unlike DefaultHasher.
    struct Fnv(u64);
    impl Hasher for Fnv {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
            }
        }
    }
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    run_seed.hash(&mut h);
    case.id.hash(&mut h);
    step.line.hash(&mut h);
    session_round.hash(&mut h);
    h.finish()
}
