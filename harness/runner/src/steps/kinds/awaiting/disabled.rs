//! Awaiting the end of a Disable (LwM2M 1.1 Core Appendix E.2, object 1
//! resources 4 and 5): after Disable the device de-registers and stays away
//! for Disable Timeout seconds, then "MUST perform registration process to
//! the Server". Both halves are checked: no Register before the timeout has
//! passed (less a margin), and a Register after it.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::case::model::ScalarValue;
use crate::session::Session;
use crate::steps::error::{bench, device, server_error, StepError};
use crate::steps::kinds::saved;
use crate::steps::CaseContext;

/// What a device's clock and the network may take off the quiet period
/// when a case names no `margin`: timers of whole seconds fire up to a
/// second early, and the De-register may reach the server later than the
/// Register that follows it (a retransmission, a slow bearer).
pub const DEFAULT_MARGIN: Duration = Duration::from_secs(2);

/// The Disable Timeout the case gives, a number of seconds or a saved
/// value (`{saved:NAME}`, read from the device).
pub fn away_for(
    away: &ScalarValue,
    saved_values: &std::collections::HashMap<String, String>,
) -> Result<Duration, StepError> {
    match saved::expand(away, saved_values)? {
        ScalarValue::Integer(s) if s >= 0 => Ok(Duration::from_secs(s.unsigned_abs())),
        other => Err(bench(format!(
            "await registers_after {away}: {other} is not a whole number of seconds"
        ))),
    }
}

/// Waits `away - margin` for no Register (counted from this step's start,
/// which follows the De-register the previous step awaited), then for a
/// Register until `within` has passed since the start.
pub async fn registers_after(
    ctx: &mut CaseContext,
    rig: &mut Session,
    away: Duration,
    margin: Duration,
    within: Duration,
) -> Result<(), StepError> {
    let ep = rig.endpoint.clone();
    let start = Instant::now();
    let quiet = away.saturating_sub(margin);
    match rig.server.await_registered(&ep, ctx.cursor, quiet).await {
        Ok((seq, reg)) => {
            ctx.registered(seq);
            return Err(device(
                format!(
                    "{ep} to stay de-registered for its Disable Timeout of {}s (less a margin of {margin:?})",
                    away.as_secs()
                ),
                format!(
                    "it registered again at {} after {:?}",
                    reg.location,
                    start.elapsed()
                ),
            ));
        }
        Err(server::ServerError::Timeout { .. }) => {}
        Err(e) => return Err(server_error(format!("{ep} to stay de-registered"), e)),
    }
    let _ = writeln!(ctx.log, "  -> no Register for {quiet:?}");
    let rest = within.saturating_sub(start.elapsed());
    let (seq, reg) = rig
        .server
        .await_registered(&ep, ctx.cursor, rest)
        .await
        .map_err(|e| {
            server_error(
                format!(
                    "{ep} to register again once its Disable Timeout of {}s had passed, within {within:?}",
                    away.as_secs()
                ),
                e,
            )
        })?;
    ctx.registered(seq);
    let _ = writeln!(
        ctx.log,
        "  -> registered again at {} after {:?}",
        reg.location,
        start.elapsed()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn disable_timeout_comes_from_a_number_or_a_saved_value() {
        let mut saved = HashMap::new();
        saved.insert("disable_timeout".to_string(), "5".to_string());
        assert_eq!(
            away_for(&ScalarValue::Integer(7), &saved).unwrap(),
            Duration::from_secs(7)
        );
        assert_eq!(
            away_for(&ScalarValue::Text("{saved:disable_timeout}".into()), &saved).unwrap(),
            Duration::from_secs(5)
        );
        assert!(away_for(&ScalarValue::Integer(-1), &saved).is_err());
        assert!(away_for(&ScalarValue::Text("soon".into()), &saved).is_err());
        assert!(away_for(&ScalarValue::Text("{saved:other}".into()), &saved).is_err());
    }
}
