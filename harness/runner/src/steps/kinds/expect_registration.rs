//! `expect: {registration: {objects, lwm2m, binding, lifetime}}`: checks of
//! the device's current registration (LwM2M 1.1 Core §6.2.1). Objects are
//! matched by object where the case writes `/5`, so that a device may choose
//! its instance ids.

use std::fmt::Write as _;
use std::time::Duration;

use lwm2m::Path;
use serde::Deserialize;
use server::links_text;

use crate::session::Session;
use crate::steps::error::{device, StepError};
use crate::steps::CaseContext;

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectRegistration {
    /// Object instances (`/3/0`) or objects (`/5`) the object list must hold.
    #[serde(default)]
    #[schemars(with = "Vec<crate::schema::ObjectPath>")]
    pub objects: Vec<Path>,
    pub lwm2m: Option<String>,
    pub binding: Option<String>,
    #[serde(default, deserialize_with = "rig::duration::deserialize_option")]
    #[schemars(with = "Option<rig::schema::DurationText>")]
    pub lifetime: Option<Duration>,
    /// The lifetime in seconds, as a value that may be `{saved:NAME+N}`
    /// (see [`crate::steps::kinds::saved`]).
    pub lifetime_s: Option<crate::case::model::ScalarValue>,
}

impl ExpectRegistration {
    pub fn describe(&self) -> String {
        "expect registration".into()
    }

    pub fn run(&self, ctx: &mut CaseContext, rig: &Session) -> Result<(), StepError> {
        let reg = rig
            .server
            .registration(&rig.endpoint)
            .ok_or_else(|| device(format!("{} registered", rig.endpoint), "no registration"))?;
        let _ = writeln!(
            ctx.log,
            "  -> {} lifetime {:?} objects {}",
            reg.location,
            reg.lifetime,
            links_text(&reg.objects)
        );
        for p in &self.objects {
            let listed = reg
                .objects
                .iter()
                .filter_map(|l| l.path())
                .any(|l| l == *p || (p.depth() == 1 && l.object_id() == p.object_id()));
            if !listed {
                return Err(device(
                    format!("{p} in the registration's object list"),
                    links_text(&reg.objects),
                ));
            }
        }
        if let Some(v) = &self.lwm2m {
            if &reg.lwm2m_version != v {
                return Err(device(
                    format!("lwm2m={v}"),
                    format!("lwm2m={}", reg.lwm2m_version),
                ));
            }
        }
        if let Some(b) = &self.binding {
            if &reg.binding != b {
                return Err(device(format!("b={b}"), format!("b={}", reg.binding)));
            }
        }
        if let Some(v) = &self.lifetime_s {
            let v = crate::steps::kinds::saved::expand(v, &ctx.saved)?;
            let seen = lwm2m::Value::Integer(reg.lifetime.as_secs() as i64);
            if !crate::steps::value::matches(&seen, &v) {
                return Err(device(format!("lt={v}"), format!("lt={seen}")));
            }
        }
        if let Some(lt) = self.lifetime {
            if reg.lifetime != lt {
                return Err(device(
                    format!("lt={}", lt.as_secs()),
                    format!("lt={}", reg.lifetime.as_secs()),
                ));
            }
        }
        Ok(())
    }
}
