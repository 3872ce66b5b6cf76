//! Steps of onboarding and security: the bootstrap server's script, credential
//! changes, and the checks that a refused key stays refused.

use std::fmt::Write as _;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use dtls::{ClientConfig, ClientState, DtlsClient, OpensslClient, Psk};
use lwm2m::bootstrap::{BootstrapOp, BootstrapScript, ServerAccount};
use lwm2m::Record;

use crate::case::step::{BootstrapStepOp, BootstrapStepOpWithCodes, CredentialChange};
use crate::session::Session;

/// Builds the case's script against this run's server account.
pub fn script(session: &Session, ops: &[BootstrapStepOpWithCodes]) -> BootstrapScript {
    let account = session.server_account();
    let mut script = BootstrapScript::new();
    for o in ops {
        let op = match &o.op {
            BootstrapStepOp::Discover(p) => BootstrapOp::Discover { path: *p },
            BootstrapStepOp::Delete(p) => BootstrapOp::Delete { path: *p },
            BootstrapStepOp::Read(p) => BootstrapOp::Read { path: *p },
            BootstrapStepOp::WriteSecurity => BootstrapOp::Write {
                path: account.security_path(),
                records: account.security_records(),
            },
            BootstrapStepOp::WriteServer => BootstrapOp::Write {
                path: account.server_path(),
                records: account.server_records(),
            },
            BootstrapStepOp::WriteInvalidSecurity => invalid_security(&account),
            BootstrapStepOp::Finish => BootstrapOp::Finish,
        };
        script = if o.expect.is_empty() {
            script.then(op)
        } else {
            script.then_expect(op, &o.expect)
        };
    }
    script
}

/// A Security instance a device must refuse (LwM2M 1.1 Core §E.1: the
/// LwM2M Server URI, /0/x/0, is mandatory): the account without it.
fn invalid_security(account: &ServerAccount) -> BootstrapOp {
    let path = account.security_path();
    let uri = path
        .child(0)
        .expect("an instance path has room for a resource");
    let records: Vec<Record> = account
        .security_records()
        .into_iter()
        .filter(|r| r.path != uri)
        .collect();
    BootstrapOp::Write { path, records }
}

/// Changes which server credential the device is expected to use.
pub async fn change(
    session: &mut Session,
    change: CredentialChange,
    log: &mut String,
) -> Result<(), String> {
    let ep = session.endpoint.clone();
    let creds = session
        .credentials
        .as_mut()
        .ok_or("this rig uses no credentials (device.security: psk)")?;
    match change {
        CredentialChange::Rotate => {
            let old = creds.rotate_server()?;
            session.server.set_psk(&ep, creds.server.clone());
            let _ = writeln!(
                log,
                "  server credential {} replaced: key {} -> {} (the next bootstrap provisions it)",
                creds.server.identity,
                old.key.fingerprint(),
                creds.server.key.fingerprint()
            );
            session.replaced_server_psk = Some(old);
        }
        CredentialChange::BreakServer => {
            // The server now holds a key the device does not have; the next
            // bootstrap provisions it, so a device that falls back recovers.
            let old = creds.rotate_server()?;
            session.server.set_psk(&ep, creds.server.clone());
            let _ = writeln!(
                log,
                "  server no longer accepts key {} of {}",
                old.key.fingerprint(),
                old.identity
            );
            session.replaced_server_psk = Some(old);
        }
    }
    let script = BootstrapScript::standard(&session.server_account());
    if session.bootstrap.is_some() {
        session.set_bootstrap_script(script).await?;
    }
    Ok(())
}

/// Outcome of a handshake attempt with a given credential.
pub enum Probe {
    Accepted,
    Refused(String),
}

/// Tries a DTLS handshake with `psk` against the server, on loopback or the
/// bench network, bounded by `limit`.
pub fn probe(server: std::net::SocketAddr, psk: Psk, limit: Duration) -> Result<Probe, String> {
    let bind = if server.is_ipv6() {
        "[::1]:0"
    } else {
        "127.0.0.1:0"
    };
    let socket = UdpSocket::bind(bind).map_err(|e| format!("cannot bind a probe socket: {e}"))?;
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut client =
        OpensslClient::connect(ClientConfig::new(psk), server, start).map_err(|e| e.to_string())?;
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
