//! `expect: {old_credential: refused}`: after a `credentials` step replaced
//! the server PSK, a DTLS handshake with the old one must fail — a key that
//! was rotated out must not linger.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Deserialize;

use crate::session::Session;
use crate::steps::error::{bench, device, StepError};
use crate::steps::CaseContext;

/// How long the probe handshake may take.
const PROBE_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OldCredentialRefused {
    Refused,
}

impl OldCredentialRefused {
    pub fn describe(&self) -> String {
        "expect the replaced credential refused".into()
    }

    pub async fn run(&self, ctx: &mut CaseContext, rig: &Session) -> Result<(), StepError> {
        let old = ctx.replaced_server_psk.clone().ok_or_else(|| {
            bench("no credential was replaced earlier in this case (credentials: rotate)")
        })?;
        let addr = rig.server.local_addr();
        let probe = tokio::task::spawn_blocking(move || {
            crate::steps::kinds::credentials::probe(addr, old, PROBE_LIMIT)
        })
        .await
        .map_err(bench)?
        .map_err(bench)?;
        match probe {
            crate::steps::kinds::credentials::Probe::Refused(why) => {
                let _ = writeln!(ctx.log, "  -> the replaced credential is refused: {why}");
                Ok(())
            }
            crate::steps::kinds::credentials::Probe::Accepted => Err(device(
                "the replaced server credential to be refused",
                "the server still accepts it",
            )),
        }
    }
}
