//! `bootstrap: {script: [...]}`: the sequence meterbench's bootstrap server
//! runs when the device asks next, each operation with the response codes a
//! conforming device answers (or those the case `expect`s instead).

use std::fmt::Write as _;

use lwm2m::bootstrap::{BootstrapOp, BootstrapScript, ServerAccount};
use lwm2m::{Path, Record};
use serde::Deserialize;

use crate::case::fields::Code;
use crate::case::Need;
use crate::session::Session;
use crate::steps::error::bench;
use crate::steps::{CaseContext, Step, StepFuture, Turn};

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bootstrap {
    #[serde(deserialize_with = "script")]
    #[schemars(with = "Vec<OpSpec>")]
    pub script: Vec<ScriptOp>,
}

/// One operation as the case writes it: `discover: /`, `delete: /1`,
/// `read: /1`, `write: security` (the /0 instance of this run's server
/// account), `write: server` (its /1 instance), `write: invalid-security`
/// (a /0 instance without Server URI), `finish: true`.
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
enum WriteTarget {
    Security,
    Server,
    InvalidSecurity,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BootstrapStepOp {
    Discover(Path),
    Delete(Path),
    Read(Path),
    WriteSecurity,
    WriteServer,
    WriteInvalidSecurity,
    Finish,
}

#[derive(Debug, Clone)]
pub struct ScriptOp {
    pub op: BootstrapStepOp,
    pub expect: Vec<u16>,
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
            WriteTarget::Server => BootstrapStepOp::WriteServer,
            WriteTarget::InvalidSecurity => BootstrapStepOp::WriteInvalidSecurity,
        }));
        if o.finish == Some(true) {
            found.push(BootstrapStepOp::Finish);
        }
        if found.len() != 1 {
            return Err(serde::de::Error::custom(format!(
                "bootstrap script[{i}]: give one of discover, delete, read, write, finish"
            )));
        }
        ops.push(ScriptOp {
            op: found.remove(0),
            expect: o.expect.iter().map(|c| c.0).collect(),
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
        vec![Need::Bootstrap]
    }

    fn run<'a>(
        &'a self,
        _: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            let script = self.build(&rig.server_account());
            // The bootstrap server could not take the script: the harness's fault.
            rig.set_bootstrap_script(script)
                .await
                .map_err(|e| bench(format!("bootstrap server: {e}")))?;
            let _ = writeln!(
                ctx.log,
                "  the bootstrap server will run {} operations",
                self.script.len()
            );
            Ok(())
        })
    }
}

impl Bootstrap {
    /// The case's script against this run's server account.
    pub fn build(&self, account: &ServerAccount) -> BootstrapScript {
        let mut script = BootstrapScript::new();
        for o in &self.script {
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
                BootstrapStepOp::WriteInvalidSecurity => invalid_security(account),
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
