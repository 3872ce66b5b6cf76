//! `credentials: rotate | break-server`: changes which server credential the
//! device is expected to use, as a re-bootstrap or a key compromise would,
//! and the probe that checks a replaced key stays refused.

use std::fmt::Write as _;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use dtls::{ClientConfig, ClientState, DtlsClient, OpensslClient, Psk};
use lwm2m::bootstrap::BootstrapScript;
use serde::Deserialize;

use crate::case::Need;
use crate::session::Session;
use crate::steps::error::{bench, StepError};
use crate::steps::{CaseContext, Step, StepFuture, Turn};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Credentials {
    /// A new server PSK that the next bootstrap provisions; the old one is revoked.
    Rotate,
    /// The server stops accepting the device's server PSK, as after a key
    /// compromise; the next bootstrap provisions the new one, so a device
    /// that falls back to its bootstrap server recovers.
    BreakServer,
}

impl Step for Credentials {
    fn describe(&self) -> String {
        match self {
            Credentials::Rotate => "rotate the server credential".into(),
            Credentials::BreakServer => "server stops accepting the device's key".into(),
        }
    }

    fn needs(&self) -> Vec<Need> {
        vec![Need::Credentials]
    }

    fn run<'a>(
        &'a self,
        _: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            // Making or installing a credential failed: the harness's fault.
            self.change(ctx, rig)
                .await
                .map_err(|e| bench(format!("credentials: {e}")))
        })
    }
}

impl Credentials {
    async fn change(&self, ctx: &mut CaseContext, rig: &mut Session) -> Result<(), StepError> {
        let ep = rig.endpoint.clone();
        let creds = rig.credentials.as_mut().ok_or_else(|| {
            StepError::Skip("this rig uses no credentials (device.security: psk)".into())
        })?;
        let old = creds.rotate_server().map_err(bench)?;
        rig.server.set_psk(&ep, creds.server.clone());
        match self {
            Credentials::Rotate => {
                let _ = writeln!(
                    ctx.log,
                    "  server credential {} replaced: key {} -> {} (the next bootstrap provisions it)",
                    creds.server.identity,
                    old.key.fingerprint(),
                    creds.server.key.fingerprint()
                );
            }
            Credentials::BreakServer => {
                let _ = writeln!(
                    ctx.log,
                    "  server no longer accepts key {} of {}",
                    old.key.fingerprint(),
                    old.identity
                );
            }
        }
        ctx.replaced_server_psk = Some(old);
        if rig.bootstrap.is_some() {
            let script = BootstrapScript::standard(&rig.server_account());
            rig.set_bootstrap_script(script).await.map_err(bench)?;
        }
        Ok(())
    }
}

/// Outcome of a handshake attempt with a given credential.
pub enum Probe {
    Accepted,
    Refused(String),
}

/// Why a probe could not be made at all (not: why it was refused).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot set up a probe socket: {0}")]
    Socket(#[from] std::io::Error),
    #[error("cannot start a DTLS client: {0}")]
    Dtls(#[from] dtls::Error),
}

/// Tries a DTLS handshake with `psk` against the server, on loopback or the
/// bench network, bounded by `limit`.
pub fn probe(server: std::net::SocketAddr, psk: Psk, limit: Duration) -> Result<Probe, ProbeError> {
    let bind = if server.is_ipv6() {
        "[::1]:0"
    } else {
        "127.0.0.1:0"
    };
    let socket = UdpSocket::bind(bind)?;
    socket.set_read_timeout(Some(Duration::from_millis(50)))?;
    let start = Instant::now();
    let mut client = OpensslClient::connect(ClientConfig::new(psk), server, start)?;
    let mut buf = vec![0u8; 2048];
    while start.elapsed() < limit {
        let now = Instant::now();
        while let Some(t) = client.poll_transmit() {
            let _ = socket.send_to(&t.payload, t.destination);
        }
        match client.state() {
            ClientState::Connected(_) => {
                client.close(now);
                while let Some(t) = client.poll_transmit() {
                    let _ = socket.send_to(&t.payload, t.destination);
                }
                return Ok(Probe::Accepted);
            }
            ClientState::Failed(reason) => return Ok(Probe::Refused(reason.to_string())),
            ClientState::Closed(reason) => return Ok(Probe::Refused(format!("{reason:?}"))),
            ClientState::Handshaking => {}
        }
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            client.handle_datagram(Instant::now(), from, &buf[..n]);
        }
        if client.poll_timeout().is_some_and(|t| t <= Instant::now()) {
            client.handle_timeout(Instant::now());
        }
    }
    Ok(Probe::Refused(format!("no handshake within {limit:?}")))
}
