//! `power_cut`: cut power at an exact protocol moment (a resource value, a
//! serial line, a datagram, a fraction of an image delivered, a seeded
//! random moment), keep it off, and restore it *without* bring-up: the
//! device must recover from what it kept in non-volatile storage, as it
//! would in the field.

use std::fmt::{self, Write as _};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde::Deserialize;
use thiserror::Error;

use crate::case::fields::{CasePath, Span};
use crate::case::model::ScalarValue;
use crate::case::Need;
use crate::events::PowerCutRecord;
use crate::session::Session;
use crate::steps::error::{bench, serial_wait_error, timed_out, StepError};
use crate::steps::exchange::read_value;
use crate::steps::kinds::power::{restore, switch_off};
use crate::steps::value::matches;
use crate::steps::{instances, wait, CaseContext, Restart, Step, StepFuture, Turn, Wait};

/// How long power stays off when the case does not say.
const DEFAULT_RESTORE_AFTER: Duration = Duration::from_secs(1);

/// The step as written: exactly one trigger.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct PowerCutSpec {
    /// Cut when this resource reads `equals` (polled every 100 ms).
    path: Option<CasePath>,
    equals: Option<ScalarValue>,
    /// Cut when a line starting with this text appears on the serial port.
    line: Option<String>,
    /// Cut when a datagram whose decoded summary contains this text reaches
    /// the server (e.g. `POST /rd/` for a registration Update).
    message: Option<String>,
    /// Cut once this fraction (0..1) of the image the case is delivering has
    /// reached the device.
    delivered: Option<f64>,
    /// Cut at a random moment in `[from, to]` after the step starts; the seed
    /// is printed and stored in events.jsonl so `--seed` replays the same cut.
    random_within: Option<[Span; 2]>,
    /// Cut this long after the step starts.
    after: Option<Span>,
    /// How long power stays off (default 1s).
    restore_after: Option<Span>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "PowerCutSpec")]
pub struct PowerCut {
    #[schemars(skip)] // parsed from its `try_from` type
    pub trigger: CutTrigger,
    pub restore_after: Duration,
}

/// What makes a `power_cut` step cut.
#[derive(Debug, Clone)]
pub enum CutTrigger {
    Value { path: CasePath, equals: ScalarValue },
    SerialLine(String),
    Message(String),
    Random { from: Duration, to: Duration },
    After(Duration),
    Delivered(f64),
}

/// A `power_cut` payload that does not say one moment to cut at.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PowerCutError {
    #[error("power_cut: `path` and `equals` go together")]
    PathWithoutEquals,
    #[error("power_cut: random_within's end comes before its start")]
    RandomWindowReversed,
    #[error("power_cut: delivered {0} is a fraction from 0 to 1")]
    DeliveredNotAFraction(f64),
    #[error("power_cut: say when: path+equals, line, message, delivered, random_within or after")]
    NoTrigger,
    #[error("power_cut: give one trigger only")]
    ManyTriggers,
}

impl TryFrom<PowerCutSpec> for PowerCut {
    type Error = PowerCutError;
    fn try_from(cut: PowerCutSpec) -> Result<Self, PowerCutError> {
        let mut triggers = Vec::new();
        match (cut.path, cut.equals) {
            (Some(path), Some(equals)) => triggers.push(CutTrigger::Value { path, equals }),
            (None, None) => {}
            _ => return Err(PowerCutError::PathWithoutEquals),
        }
        triggers.extend(cut.line.map(CutTrigger::SerialLine));
        triggers.extend(cut.message.map(CutTrigger::Message));
        if let Some([from, to]) = cut.random_within {
            if to.0 < from.0 {
                return Err(PowerCutError::RandomWindowReversed);
            }
            triggers.push(CutTrigger::Random {
                from: from.0,
                to: to.0,
            });
        }
        triggers.extend(cut.after.map(|d| CutTrigger::After(d.0)));
        if let Some(x) = cut.delivered {
            if !(0.0..=1.0).contains(&x) {
                return Err(PowerCutError::DeliveredNotAFraction(x));
            }
            triggers.push(CutTrigger::Delivered(x));
        }
        let restore_after = cut.restore_after.map_or(DEFAULT_RESTORE_AFTER, |d| d.0);
        match triggers.len() {
            1 => Ok(PowerCut {
                trigger: triggers.remove(0),
                restore_after,
            }),
            0 => Err(PowerCutError::NoTrigger),
            _ => Err(PowerCutError::ManyTriggers),
        }
    }
}

impl fmt::Display for CutTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CutTrigger::Value { path, equals } => write!(f, "when {path} = {equals}"),
            CutTrigger::SerialLine(l) => write!(f, "when the serial line {l:?} appears"),
            CutTrigger::Message(m) => write!(f, "when a datagram {m:?} reaches the server"),
            CutTrigger::Random { from, to } => write!(f, "at a random moment in {from:?}..{to:?}"),
            CutTrigger::After(d) => write!(f, "after {d:?}"),
            CutTrigger::Delivered(x) => {
                write!(f, "when {:.0}% of the image has been delivered", x * 100.0)
            }
        }
    }
}

impl Step for PowerCut {
    fn describe(&self) -> String {
        format!(
            "power cut {}, restored after {:?}",
            self.trigger, self.restore_after
        )
    }

    fn needs(&self) -> Vec<Need> {
        match self.trigger {
            CutTrigger::SerialLine(_) => vec![Need::Power, Need::Modem],
            _ => vec![Need::Power],
        }
    }

    /// A datagram comes on the device's own schedule: the registration's
    /// lifetime; a fraction of an image, the rig's download wait.
    fn default_wait(&self, rig: &Session, _: &CaseContext) -> Option<Wait> {
        match self.trigger {
            CutTrigger::Message(_) => wait::lifetime_left(rig),
            CutTrigger::Delivered(_) => wait::download(rig),
            _ => None,
        }
    }

    fn run<'a>(
        &'a self,
        turn: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            let started = Instant::now();
            let seed = self.await_trigger(turn, ctx, rig).await?;
            ctx.device_restarting(rig, Restart::Reboot);
            switch_off(rig)?;
            let at = started.elapsed();
            let _ = writeln!(ctx.log, "  power cut at {:.3}s", at.as_secs_f64());
            tokio::time::sleep(self.restore_after).await;
            let restored = restore(rig, &mut ctx.log);
            let cut = PowerCutRecord {
                line: turn.line,
                round: ctx.round,
                at_ms: at.as_millis() as u64,
                trigger: self.trigger.to_string(),
                seed,
                run_seed: rig.seed,
                outcome: match &restored {
                    Ok(()) => "restored".into(),
                    Err(e) => e.to_string(),
                },
                recovery: None,
            };
            ctx.power_cuts.record(cut, &ctx.events);
            restored
        })
    }
}

impl PowerCut {
    /// Returns at the moment to cut, with the cut's seed when it was drawn.
    async fn await_trigger(
        &self,
        turn: Turn,
        ctx: &mut CaseContext,
        rig: &mut Session,
    ) -> Result<Option<u64>, StepError> {
        let within = turn.within;
        let end = Instant::now() + within;
        match &self.trigger {
            CutTrigger::After(d) => {
                tokio::time::sleep(*d).await;
            }
            CutTrigger::Delivered(fraction) => delivered(*fraction, end, within, ctx, rig).await?,
            CutTrigger::Random { from, to } => {
                let (at, seed) = random_moment(*from, *to, turn.line, ctx, rig);
                tokio::time::sleep(at).await;
                return Ok(Some(seed));
            }
            CutTrigger::Value { path, equals } => {
                let path = instances::resolve(rig, *path)?;
                value_reached(path, equals, end, within, rig).await?
            }
            CutTrigger::SerialLine(prefix) => serial_line(prefix, within, rig)?,
            CutTrigger::Message(text) => datagram(text, end, within, ctx, rig).await?,
        }
        Ok(None)
    }
}

/// Until `fraction` of the image the case delivers last has reached the device.
async fn delivered(
    fraction: f64,
    end: Instant,
    within: Duration,
    ctx: &mut CaseContext,
    rig: &Session,
) -> Result<(), StepError> {
    let image = ctx.firmware_images.last().cloned().ok_or_else(|| {
        bench("power_cut delivered: no firmware step delivered an image in this case")
    })?;
    loop {
        let done = rig
            .firmware
            .as_ref()
            .and_then(|f| f.progress(&image))
            .map(|p| p.fraction())
            .unwrap_or(0.0);
        if done >= fraction {
            let _ = writeln!(ctx.log, "  {:.1}% of {image} delivered", done * 100.0);
            return Ok(());
        }
        if Instant::now() >= end {
            return Err(timed_out(
                format!(
                    "{:.0}% of {image} delivered (the moment to cut power) within {within:?}",
                    fraction * 100.0
                ),
                format!("{:.1}%", done * 100.0),
            ));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The moment in `[from, to]` this cut's seed draws, and the seed; both
/// go to the step log and events.jsonl (`power-cuts.csv`) so that `--seed`
/// replays the cut.
fn random_moment(
    from: Duration,
    to: Duration,
    line: u32,
    ctx: &mut CaseContext,
    rig: &Session,
) -> (Duration, u64) {
    let seed = cut_seed(rig.seed, ctx.round, &ctx.case_id, line);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let at = from + (to - from).mul_f64(rng.gen::<f64>());
    let _ = writeln!(
        ctx.log,
        "  cut planned at {:.3}s (cut seed {seed}, run seed {})",
        at.as_secs_f64(),
        rig.seed
    );
    (at, seed)
}

/// Until `path` reads `equals` (polled every 100 ms).
async fn value_reached(
    path: lwm2m::Path,
    equals: &ScalarValue,
    end: Instant,
    within: Duration,
    rig: &Session,
) -> Result<(), StepError> {
    loop {
        let remaining = end.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(timed_out(
                format!("{path} to reach {equals} (the moment to cut power) within {within:?}"),
                "it did not",
            ));
        }
        if let Ok(v) = read_value(rig, path, remaining.min(Duration::from_secs(5))).await {
            if matches(&v, equals) {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Until a line starting with `prefix` appears on the serial port.
fn serial_line(prefix: &str, within: Duration, rig: &mut Session) -> Result<(), StepError> {
    let rig_name = rig.rig.name.clone();
    let modem = rig
        .modem
        .as_mut()
        .ok_or_else(|| StepError::Skip(format!("rig {rig_name} has no modem")))?;
    crate::blocking::off_runtime(|| modem.wait_for_line(prefix, within)).map_err(|e| {
        serial_wait_error(
            format!("the serial line {prefix:?} (the moment to cut power) within {within:?}"),
            e,
        )
    })?;
    Ok(())
}

/// Until a datagram matching `text` passes, either way, on the LwM2M server
/// or the bootstrap server (a cut in the middle of a bootstrap), counted from
/// where the previous step began: the step before may have provoked it.
async fn datagram(
    text: &str,
    end: Instant,
    within: Duration,
    ctx: &mut CaseContext,
    rig: &Session,
) -> Result<(), StepError> {
    let (mut index, mut bs_index) = (ctx.previous_step.log, ctx.previous_step.bootstrap_log);
    loop {
        let mut entries = rig.server.log_since(index);
        if let Some(last) = entries.last() {
            index = last.index + 1;
        }
        if let Some(bs) = &rig.bootstrap {
            let more = bs.log_since(bs_index);
            if let Some(last) = more.last() {
                bs_index = last.index + 1;
            }
            entries.extend(more);
        }
        if let Some(entry) = entries
            .iter()
            .find(|e| e.direction != server::Direction::Note && summary_matches(&e.summary, text))
        {
            let _ = writeln!(ctx.log, "  saw {}", entry.summary);
            return Ok(());
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
fn cut_seed(run_seed: u64, round: u32, case_id: &str, line: u32) -> u64 {
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
    case_id.hash(&mut h);
    line.hash(&mut h);
    round.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_pattern_matches_by_word_prefixes() {
        assert!(summary_matches("CON POST mid=0x1 /rd/5 lt=30", "POST /rd/"));
        assert!(!summary_matches("CON POST mid=0x1 /rd?ep=x", "POST /rd/"));
        assert!(!summary_matches("ACK 2.04 Changed", "POST"));
    }

    #[test]
    fn each_cut_has_its_own_seed_that_the_run_seed_replays() {
        let a = cut_seed(7, 0, "pwr-random", 12);
        assert_eq!(a, cut_seed(7, 0, "pwr-random", 12));
        assert_ne!(a, cut_seed(8, 0, "pwr-random", 12));
        assert_ne!(a, cut_seed(7, 1, "pwr-random", 12));
        assert_ne!(a, cut_seed(7, 0, "pwr-random", 13));
        assert_ne!(a, cut_seed(7, 0, "other", 12));
    }
}
