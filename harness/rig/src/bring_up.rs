//! Bringing a modem's LwM2M client up: the dialect's `bring_up` sequence sent
//! in order, and waiting for a dialect event (`lwm2m_registered`) whatever
//! line the vendor prints for it. The runner's own bring-up can call these so
//! that every modem goes through the same code as the replay tests.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::action::UnsupportedAction;
use crate::at::AtResponse;
use crate::error::RigError;
use crate::traits::Modem;

/// Sends each named action of `sequence`, rendered with `vars` (secret
/// variables masked in the transcript), and requires OK from each.
pub fn run(
    modem: &mut dyn Modem,
    sequence: &[String],
    vars: &BTreeMap<String, String>,
) -> Result<Vec<AtResponse>, RigError> {
    let timeout = modem.dialect().command_timeout;
    let port = modem.dialect().name.clone();
    let mut answers = Vec::with_capacity(sequence.len());
    for name in sequence {
        modem.dialect().require(name)?;
        let (line, shown) = modem.dialect().render_shown(name, vars)?;
        let r = modem
            .command_shown(&line, &shown, timeout)?
            .expect_ok(&port)?;
        answers.push(r);
    }
    Ok(answers)
}

/// Waits for the URC that reports `event` in this modem's dialect and
/// returns it. Lines that start like it but do not match (another server's
/// status) are passed over. A dialect without the event gives
/// [`RigError::Unsupported`].
pub fn wait_for_event(
    modem: &mut dyn Modem,
    event: &str,
    timeout: Duration,
) -> Result<String, RigError> {
    let pattern = modem
        .dialect()
        .event(event)
        .ok_or_else(|| UnsupportedAction {
            action: event.into(),
            modem: modem.dialect().name.clone(),
        })?
        .to_owned();
    let prefix = pattern.split('*').next().unwrap_or("").to_owned();
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = modem.wait_for_line(&prefix, left)?;
        if modem.dialect().is_event(event, &line) {
            return Ok(line);
        }
    }
}
