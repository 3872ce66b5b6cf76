//! `repeat: {times, steps}`: the nested steps, `times` times over (a soak);
//! each round's random cuts get their own seed, and a failure names the
//! inner step's own line and round.

use std::fmt::Write as _;

use serde::Deserialize;
use thiserror::Error;

use crate::case::model::ScalarValue;
use crate::case::{CaseStep, Need, Vars};
use crate::session::Session;
use crate::steps::engine::run_step;
use crate::steps::{CaseContext, RepeatPosition, Step, StepError, StepFuture, Turn};

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Repeat {
    /// A number, or `${NAME:-20}`: the variable NAME (from `--var` or the
    /// environment), 20 when it is not set. Read by [`Repeat::bind`].
    times: ScalarValue,
    pub steps: Vec<CaseStep>,
    /// The number of rounds, once the case's variables are bound.
    #[serde(skip)]
    count: u32,
}

impl Repeat {
    /// Reads `times` with the run's variables; a case that cannot be run
    /// that many times is refused when it loads.
    pub fn bind(&mut self, vars: &Vars) -> Result<(), RepeatError> {
        self.count = repeat_times(&self.times, vars)?;
        if self.steps.is_empty() {
            return Err(RepeatError::NoSteps);
        }
        Ok(())
    }

    pub fn times(&self) -> u32 {
        self.count
    }
}

impl Step for Repeat {
    fn describe(&self) -> String {
        format!("repeat {} times ({} steps)", self.times(), self.steps.len())
    }

    fn needs(&self) -> Vec<Need> {
        self.steps
            .iter()
            .flat_map(|s| s.kind.step().needs())
            .collect()
    }

    fn firmware_roles(&self) -> Vec<String> {
        self.steps
            .iter()
            .flat_map(|s| s.kind.step().firmware_roles())
            .collect()
    }

    fn run<'a>(
        &'a self,
        turn: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            let times = self.times();
            for round in 1..=times {
                ctx.round = round;
                let _ = writeln!(ctx.log, "  round {round}/{times}");
                for inner in &self.steps {
                    let _ = writeln!(ctx.log, "  line {:>3}: {}", inner.line, inner.describe());
                    ctx.repeat_position = Some(RepeatPosition {
                        line: inner.line,
                        step: inner.describe(),
                        round,
                        times,
                    });
                    let result = run_step(inner, turn.remaining, ctx, rig).await;
                    ctx.repeat_position = None;
                    if let Err(error) = result {
                        ctx.round = 0;
                        // The failure is the inner step's, at its own line.
                        return Err(StepError::InRepeat {
                            line: inner.line,
                            step: inner.describe(),
                            round,
                            times,
                            error: Box::new(error),
                        });
                    }
                }
            }
            ctx.round = 0;
            Ok(())
        })
    }
}

/// Why a `repeat` cannot run: reported at the step's line when the case loads.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum RepeatError {
    #[error("repeat needs at least one step")]
    NoSteps,
    #[error("repeat: variable {0} is not set (use --var {0}=N)")]
    UnsetVariable(String),
    #[error("repeat: times must be a number or ${{NAME:-default}}, found {0}")]
    NotANumberOrVariable(ScalarValue),
    #[error("repeat: times must be a number from 1 to 10000, found {0:?}")]
    OutOfRange(String),
}

/// `20`, `"${SOAK_CUTS:-20}"` or `"${SOAK_CUTS}"`.
fn repeat_times(v: &ScalarValue, vars: &Vars) -> Result<u32, RepeatError> {
    let text = match v {
        ScalarValue::Integer(n) => n.to_string(),
        ScalarValue::Text(t) => match t.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
            Some(inner) => {
                let (name, default) = match inner.split_once(":-") {
                    Some((n, d)) => (n, Some(d)),
                    None => (inner, None),
                };
                vars.get(name)
                    .cloned()
                    .or_else(|| std::env::var(name).ok())
                    .or(default.map(str::to_string))
                    .ok_or_else(|| RepeatError::UnsetVariable(name.to_owned()))?
            }
            None => t.clone(),
        },
        other => return Err(RepeatError::NotANumberOrVariable(other.clone())),
    };
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or(RepeatError::OutOfRange(text))
}
