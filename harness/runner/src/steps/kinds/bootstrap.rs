//! `bootstrap: {script: [...]}`: the sequence meterbench's bootstrap server
//! runs when the device asks next, each operation with the response codes a
//! conforming device answers (or those the case `expect`s instead), and for
//! a Discover or Read what its answer must show (`lists`, `omits`,
//! `bootstrap_account`: the pass criteria of ETS tests such as
//! LightweightM2M-1.1-int-4). A check that fails ends the bootstrap session
//! there, and the `await: bootstrapped` that follows fails naming the
//! operation and what the device showed.

use std::borrow::Cow;
use std::fmt::Write as _;

use lwm2m::bootstrap::{AnswerCheck, BootstrapOp, BootstrapScript, ServerAccount};
use lwm2m::{Path, Record, Value};
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer};

use crate::case::fields::{szx_of, Code};
use crate::case::Need;
use crate::session::Session;
use crate::steps::error::{bench, StepError};
use crate::steps::{CaseContext, Step, StepFuture, Turn};

/// The rig's bootstrap server; a rig that does not onboard its device by
/// bootstrap skips the step (its case names `Need::Bootstrap` up front too).
pub(crate) fn bootstrap_server(rig: &Session) -> Result<&server::BootstrapServerHandle, StepError> {
    rig.bootstrap
        .as_ref()
        .ok_or_else(|| StepError::Skip("this rig does not onboard its device by bootstrap".into()))
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bootstrap {
    #[serde(deserialize_with = "script")]
    #[schemars(with = "Vec<OpSpec>")]
    pub script: Vec<ScriptOp>,
    /// Block size in bytes (16..1024) of this session's writes: a write
    /// longer than one block goes in Block1 blocks (RFC 7959 §2.5), as a
    /// network with a small datagram size needs. Default: the server's
    /// (1024).
    #[serde(default, rename = "block_size", deserialize_with = "block_size")]
    #[schemars(with = "Option<u32>")]
    pub block1_szx: Option<u8>,
}

fn block_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    let size = u32::deserialize(d)?;
    szx_of(size).map(Some).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "bootstrap block_size {size}: expected 16, 32, 64, 128, 256, 512 or 1024"
        ))
    })
}

/// One operation as the case writes it: `discover: /`, `delete: /1`,
/// `read: /1`, `write: security` (the /0 instance of this run's server
/// account), `write: server` (its /1 instance), `write: invalid-security`
/// (a /0 instance without Server URI), `write: security-certificate`
/// (the account's /0 instance in certificate mode, Security Mode 2: a
/// device certificate and key issued for this run and the server's
/// certificate, Core §E.1 /0/x/3, /0/x/5, /0/x/4), `write: disable-timeout` (only
/// /1/x/5 of the account's Server instance, 86400 s), `write:
/// access-control` (/2/0, the Access Control entry of the account's Server
/// instance), `finish: true`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct OpSpec {
    #[schemars(with = "Option<crate::schema::ObjectPath>")]
    discover: Option<Path>,
    #[schemars(with = "Option<crate::schema::ObjectPath>")]
    delete: Option<Path>,
    #[schemars(with = "Option<crate::schema::ObjectPath>")]
    read: Option<Path>,
    write: Option<WriteTarget>,
    finish: Option<bool>,
    /// Response codes accepted instead of the operation's success code, e.g. `"4.00"`.
    #[serde(default)]
    expect: Vec<Code>,
    /// Discover or Read: the answer shows an instance at or below each
    /// (`server`, `security`: this run's account instances; or a path).
    #[serde(default)]
    lists: Vec<Shown>,
    /// Discover or Read: the answer shows no instance at or below each.
    #[serde(default)]
    omits: Vec<Shown>,
    /// Discover: the answer lists the Bootstrap-Server account, a Security
    /// instance without `ssid` (Core §6.1.7.3), which no Bootstrap-Delete
    /// affects (§6.1.7.5).
    #[serde(default)]
    bootstrap_account: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
enum WriteTarget {
    Security,
    SecurityCertificate,
    Server,
    InvalidSecurity,
    DisableTimeout,
    AccessControl,
}

/// What a `lists` or `omits` names: the Security or Server instance of
/// this run's account (the bootstrap server chose their ids, so the case
/// need not), or a path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shown {
    Security,
    Server,
    Path(Path),
}

impl<'de> Deserialize<'de> for Shown {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match text.as_str() {
            "security" => Ok(Shown::Security),
            "server" => Ok(Shown::Server),
            t => t.parse::<Path>().map(Shown::Path).map_err(|e| {
                serde::de::Error::custom(format!(
                    "{t:?}: give `security`, `server` or an object path like /1 ({e})"
                ))
            }),
        }
    }
}

impl JsonSchema for Shown {
    fn schema_name() -> Cow<'static, str> {
        "BootstrapShown".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "`security` or `server` (this run's account instances), or an LwM2M path such as /1.",
            "type": "string",
            // As `lwm2m::Path` parses paths: ids 0 to 65534 (Core §7.2.1).
            "pattern": "^(security|server|/((0|[1-9][0-9]{0,4})(/(0|[1-9][0-9]{0,4})){0,3})?/?)$"
        })
    }
}

/// A check on an answer, before the account's instance ids are known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Check {
    Lists(Shown),
    Omits(Shown),
    BootstrapAccount,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BootstrapStepOp {
    Discover(Path),
    Delete(Path),
    Read(Path),
    WriteSecurity,
    WriteSecurityCertificate,
    WriteServer,
    WriteInvalidSecurity,
    WriteDisableTimeout,
    WriteAccessControl,
    Finish,
}

#[derive(Debug, Clone)]
pub struct ScriptOp {
    pub op: BootstrapStepOp,
    pub expect: Vec<u16>,
    pub checks: Vec<Check>,
}

fn script<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ScriptOp>, D::Error> {
    let specs = Vec::<OpSpec>::deserialize(d)?;
    let mut ops = Vec::new();
    for (i, o) in specs.into_iter().enumerate() {
        let mut found = Vec::new();
        found.extend(o.discover.map(BootstrapStepOp::Discover));
        found.extend(o.delete.map(BootstrapStepOp::Delete));
        found.extend(o.read.map(BootstrapStepOp::Read));
        found.extend(o.write.map(|w| match w {
            WriteTarget::Security => BootstrapStepOp::WriteSecurity,
            WriteTarget::SecurityCertificate => BootstrapStepOp::WriteSecurityCertificate,
            WriteTarget::Server => BootstrapStepOp::WriteServer,
            WriteTarget::InvalidSecurity => BootstrapStepOp::WriteInvalidSecurity,
            WriteTarget::DisableTimeout => BootstrapStepOp::WriteDisableTimeout,
            WriteTarget::AccessControl => BootstrapStepOp::WriteAccessControl,
        }));
        if o.finish == Some(true) {
            found.push(BootstrapStepOp::Finish);
        }
        if found.len() != 1 {
            return Err(serde::de::Error::custom(format!(
                "bootstrap script[{i}]: give one of discover, delete, read, write, finish"
            )));
        }
        let op = found.remove(0);
        let mut checks: Vec<Check> = o.lists.iter().map(|s| Check::Lists(*s)).collect();
        checks.extend(o.omits.iter().map(|s| Check::Omits(*s)));
        if o.bootstrap_account {
            checks.push(Check::BootstrapAccount);
        }
        let answers = matches!(op, BootstrapStepOp::Discover(_) | BootstrapStepOp::Read(_));
        if !checks.is_empty() && !answers {
            return Err(serde::de::Error::custom(format!(
                "bootstrap script[{i}]: lists, omits and bootstrap_account check the answer of a discover or read"
            )));
        }
        if o.bootstrap_account && !matches!(op, BootstrapStepOp::Discover(_)) {
            return Err(serde::de::Error::custom(format!(
                "bootstrap script[{i}]: bootstrap_account is shown by a discover (a read never shows Security)"
            )));
        }
        ops.push(ScriptOp {
            op,
            expect: o.expect.iter().map(|c| c.0).collect(),
            checks,
        });
    }
    if ops.is_empty() {
        return Err(serde::de::Error::custom(
            "bootstrap: the script needs at least one operation",
        ));
    }
    Ok(ops)
}

impl Step for Bootstrap {
    fn describe(&self) -> String {
        format!("bootstrap script of {} operations", self.script.len())
    }

    fn needs(&self) -> Vec<Need> {
        let mut needs = vec![Need::Bootstrap];
        if self.writes_certificate() {
            needs.push(Need::CertificateMode);
        }
        needs
    }

    fn run<'a>(
        &'a self,
        _: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            // Bootstrap-Read is LwM2M 1.1 (Core §6.1.7.2): a device that
            // registered with 1.0 is not asked, and the case does not apply.
            if self
                .script
                .iter()
                .any(|o| matches!(o.op, BootstrapStepOp::Read(_)))
            {
                super::composite::require_version(rig, "Bootstrap-Read")?;
            }
            let account = rig.server_account();
            let script = if self.writes_certificate() {
                let certificate = certificate_account(rig, &account)?;
                let _ = writeln!(
                    ctx.log,
                    "  certificate account: device CN={}, key {}",
                    rig.endpoint, certificate.1
                );
                self.build_with(&account, Some(&certificate.0))
            } else {
                self.build(&account)
            };
            // The bootstrap server could not take the script: the harness's fault.
            rig.set_bootstrap_script(script)
                .await
                .map_err(|e| bench(format!("bootstrap server: {e}")))?;
            // Only a session the device asks for from now on runs this
            // script: one begun earlier (the bring-up's own bootstrap, still
            // finishing as the case starts) is not what a later `await:
            // bootstrapped` means.
            if let Some(bs) = rig.bootstrap.as_ref() {
                ctx.bootstrap_cursor = ctx.bootstrap_cursor.max(bs.current_seq());
            }
            let _ = writeln!(
                ctx.log,
                "  the bootstrap server will run {} operations",
                self.script.len()
            );
            Ok(())
        })
    }
}

/// This run's server account in certificate mode (Security Mode 2): the
/// same URI, instances, Short Server ID and lifetime, with a device
/// certificate `CN=<endpoint>` and key freshly issued by the server's
/// per-run CA, and the server's certificate for the device to pin. Returns
/// it with the key's public fingerprint (what the log may show).
fn certificate_account(
    rig: &Session,
    account: &ServerAccount,
) -> Result<(ServerAccount, String), crate::steps::StepError> {
    let issued = rig
        .server
        .credentials()
        .issue_certificate(&rig.endpoint)
        .map_err(|e| bench(format!("issuing the device certificate: {e}")))?;
    let key = issued
        .key
        .to_pkcs8_der()
        .map_err(|e| bench(format!("encoding the device key: {e}")))?;
    let certificate = ServerAccount {
        security_instance: account.security_instance,
        server_instance: account.server_instance,
        lifetime: account.lifetime,
        binding: account.binding.clone(),
        ..ServerAccount::certificate(
            account.short_server_id,
            account.server_uri.clone(),
            issued.certificate.der().to_vec(),
            issued.server_certificate.der().to_vec(),
            key.to_vec(),
        )
    };
    Ok((certificate, issued.key.fingerprint()))
}

impl Bootstrap {
    fn writes_certificate(&self) -> bool {
        self.script
            .iter()
            .any(|o| o.op == BootstrapStepOp::WriteSecurityCertificate)
    }

    /// The case's script against this run's server account.
    pub fn build(&self, account: &ServerAccount) -> BootstrapScript {
        self.build_with(account, None)
    }

    /// Like [`Bootstrap::build`], with the certificate-mode account that
    /// `write: security-certificate` writes (none: it writes `account`).
    pub fn build_with(
        &self,
        account: &ServerAccount,
        certificate: Option<&ServerAccount>,
    ) -> BootstrapScript {
        let mut script = BootstrapScript::new();
        script.block1_szx = self.block1_szx;
        for o in &self.script {
            let op = match &o.op {
                BootstrapStepOp::Discover(p) => BootstrapOp::Discover { path: *p },
                BootstrapStepOp::Delete(p) => BootstrapOp::Delete { path: *p },
                BootstrapStepOp::Read(p) => BootstrapOp::Read { path: *p },
                BootstrapStepOp::WriteSecurity => BootstrapOp::Write {
                    path: account.security_path(),
                    records: account.security_records(),
                },
                BootstrapStepOp::WriteSecurityCertificate => {
                    let a = certificate.unwrap_or(account);
                    BootstrapOp::Write {
                        path: a.security_path(),
                        records: a.security_records(),
                    }
                }
                BootstrapStepOp::WriteServer => BootstrapOp::Write {
                    path: account.server_path(),
                    records: account.server_records(),
                },
                BootstrapStepOp::WriteInvalidSecurity => invalid_security(account),
                BootstrapStepOp::WriteDisableTimeout => disable_timeout(account),
                BootstrapStepOp::WriteAccessControl => access_control(account),
                BootstrapStepOp::Finish => BootstrapOp::Finish,
            };
            script = if o.expect.is_empty() {
                script.then(op)
            } else {
                script.then_expect(op, &o.expect)
            };
            let checks: Vec<AnswerCheck> = o.checks.iter().map(|c| c.resolve(account)).collect();
            script = script.checking(&checks);
        }
        script
    }
}

impl Shown {
    fn path(self, account: &ServerAccount) -> Path {
        match self {
            Shown::Security => account.security_path(),
            Shown::Server => account.server_path(),
            Shown::Path(p) => p,
        }
    }
}

impl Check {
    fn resolve(self, account: &ServerAccount) -> AnswerCheck {
        match self {
            Check::Lists(s) => AnswerCheck::Lists(s.path(account)),
            Check::Omits(s) => AnswerCheck::Omits(s.path(account)),
            Check::BootstrapAccount => AnswerCheck::BootstrapAccount,
        }
    }
}

/// Disable Timeout the ETS writes alone in LightweightM2M-1.1-int-9: 86400 s,
/// the default Core Appendix E.2 gives resource 5.
const DISABLE_TIMEOUT_S: i64 = 86_400;

/// Only /1/x/5 (Disable Timeout, optional) of the account's Server
/// instance: what ETS LightweightM2M-1.1-int-9 writes so that the device,
/// lacking the mandatory resources of a Server account, must refuse
/// Bootstrap-Finish (Core §6.1.6 Bootstrap and Configuration Consistency).
fn disable_timeout(account: &ServerAccount) -> BootstrapOp {
    let path = account
        .server_path()
        .child(5)
        .expect("an instance path has room for a resource");
    BootstrapOp::Write {
        path,
        records: vec![Record::new(path, Value::Integer(DISABLE_TIMEOUT_S))],
    }
}

/// The Access Control entry ETS LightweightM2M-1.1-int-8 writes, /2/0
/// (LwM2M 1.1 Core Appendix E.3): for the account's Server instance
/// (Object ID 1, Object Instance ID its instance), the account's server
/// holding Read, Write and Execute (ACL bits 1 | 2 | 4, resource instance
/// id its Short Server ID) and owning the entry.
fn access_control(account: &ServerAccount) -> BootstrapOp {
    let path = Path::instance(2, 0);
    let ssid = account.short_server_id;
    let records = vec![
        Record::new(Path::resource(2, 0, 0), Value::Integer(1)),
        Record::new(
            Path::resource(2, 0, 1),
            Value::Integer(i64::from(account.server_instance)),
        ),
        Record::new(
            Path::resource_instance(2, 0, 2, ssid),
            Value::Integer(1 | 2 | 4),
        ),
        Record::new(Path::resource(2, 0, 3), Value::Integer(i64::from(ssid))),
    ];
    BootstrapOp::Write { path, records }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Bootstrap, String> {
        serde_saphyr::from_str::<Bootstrap>(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn a_block_size_becomes_the_sessions_block1_szx() {
        let b = parse("{ block_size: 512, script: [ { finish: true } ] }").unwrap();
        assert_eq!(b.build(&account()).block1_szx, Some(5));
        let b = parse("{ script: [ { finish: true } ] }").unwrap();
        assert_eq!(b.build(&account()).block1_szx, None);
        let e = parse("{ block_size: 500, script: [ { finish: true } ] }").unwrap_err();
        assert!(e.contains("16, 32, 64, 128, 256, 512 or 1024"), "{e}");
    }

    fn account() -> ServerAccount {
        let mut a = ServerAccount::nosec(101, "coap://127.0.0.1:5683");
        a.security_instance = 2;
        a.server_instance = 1;
        a
    }

    #[test]
    fn write_security_certificate_writes_the_certificate_account_and_needs_certificate_mode() {
        let step = parse(
            "script:\n  - delete: /\n  - write: security-certificate\n  - write: server\n  - finish: true\n",
        )
        .unwrap();
        assert_eq!(step.needs(), vec![Need::Bootstrap, Need::CertificateMode]);
        let psk = account();
        let mut cert =
            ServerAccount::certificate(101, "coaps://127.0.0.1:5684", vec![1], vec![2], vec![3]);
        cert.security_instance = psk.security_instance;
        cert.server_instance = psk.server_instance;
        let script = step.build_with(&psk, Some(&cert));
        let BootstrapOp::Write { path, records } = &script.steps[1].op else {
            panic!("{:?}", script.steps[1]);
        };
        assert_eq!(*path, Path::instance(0, 2));
        let mode = records
            .iter()
            .find(|r| r.path == Path::resource(0, 2, 2))
            .unwrap();
        assert_eq!(mode.value, Value::Integer(2));
        // A plain `write: security` needs no certificate mode.
        let plain = parse("script:\n  - write: security\n").unwrap();
        assert_eq!(plain.needs(), vec![Need::Bootstrap]);
    }

    #[test]
    fn answer_checks_name_the_account_instances_the_bootstrap_server_chose() {
        let step = parse(
            "script:\n  - discover: /\n    lists: [server, /0]\n    bootstrap_account: true\n  - read: /1\n    omits: [server]\n  - finish: true\n",
        )
        .unwrap();
        let script = step.build(&account());
        assert_eq!(
            script.steps[0].checks,
            vec![
                AnswerCheck::Lists(Path::instance(1, 1)),
                AnswerCheck::Lists(Path::object(0)),
                AnswerCheck::BootstrapAccount,
            ]
        );
        assert_eq!(
            script.steps[1].checks,
            vec![AnswerCheck::Omits(Path::instance(1, 1))]
        );
        assert!(script.steps[2].checks.is_empty());
    }

    #[test]
    fn checks_belong_to_answers_that_show_something() {
        let e = parse("script:\n  - delete: /1\n    omits: [server]\n").unwrap_err();
        assert!(
            e.contains("script[0]: lists, omits and bootstrap_account"),
            "{e}"
        );
        let e = parse("script:\n  - read: /1\n    bootstrap_account: true\n").unwrap_err();
        assert!(
            e.contains("bootstrap_account is shown by a discover"),
            "{e}"
        );
        let e = parse("script:\n  - discover: /\n    lists: [accounts]\n").unwrap_err();
        assert!(
            e.contains("give `security`, `server` or an object path"),
            "{e}"
        );
    }

    #[test]
    fn access_control_entry_names_the_accounts_server_instance_and_owner() {
        let step =
            parse("script:\n  - write: access-control\n  - read: /2\n    lists: [/2/0]\n").unwrap();
        let script = step.build(&account());
        let BootstrapOp::Write { path, records } = &script.steps[0].op else {
            panic!("a write");
        };
        assert_eq!(*path, Path::instance(2, 0));
        let values: Vec<(String, Value)> = records
            .iter()
            .map(|r| (r.path.to_string(), r.value.clone()))
            .collect();
        assert_eq!(
            values,
            [
                ("/2/0/0".to_string(), Value::Integer(1)),
                ("/2/0/1".to_string(), Value::Integer(1)),
                ("/2/0/2/101".to_string(), Value::Integer(7)),
                ("/2/0/3".to_string(), Value::Integer(101)),
            ]
        );
        assert_eq!(
            script.steps[1].checks,
            vec![AnswerCheck::Lists(Path::instance(2, 0))]
        );
    }

    #[test]
    fn disable_timeout_writes_only_resource_5_of_the_server_instance() {
        let step = parse(
            "script:\n  - write: disable-timeout\n  - finish: true\n    expect: [\"4.06\"]\n",
        )
        .unwrap();
        let script = step.build(&account());
        let path = Path::resource(1, 1, 5);
        assert_eq!(
            script.steps[0].op,
            BootstrapOp::Write {
                path,
                records: vec![Record::new(path, Value::Integer(86_400))]
            }
        );
        assert_eq!(script.steps[1].expect, vec![406]);
    }
}
