//! Conformance cases as YAML files say them. A case names what it needs and the
//! steps that prove a behaviour; it never names a port or an address, so the
//! same file runs on the virtual rig and on a real bench.

use serde::Deserialize;

use std::time::Duration;

/// The file as written.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    pub id: String,
    pub title: String,
    /// OMA LwM2M ETS test ids this case covers (e.g. `LightweightM2M-1.1-int-101`).
    #[serde(default)]
    pub ets: Vec<String>,
    /// ETS test ids whose procedure this case runs only in part (not counted
    /// as covered by `meterbench ets`).
    #[serde(default)]
    pub ets_partial: Vec<String>,
    /// Why no ETS test applies in full; required when `ets` is empty
    /// (checked by `meterbench ets`).
    #[serde(default)]
    pub ets_none: Option<String>,
    /// What the rig and device must have: `modem`, `power`, `debug`, `object/5`.
    #[serde(default)]
    pub needs: Vec<String>,
    /// Whole-case limit; the case errors out when it passes.
    #[serde(default, deserialize_with = "rig::duration::deserialize_option")]
    #[schemars(with = "Option<rig::schema::DurationText>")]
    pub timeout: Option<Duration>,
    /// A case that is only run with `--ignored` / `--include-ignored`.
    #[serde(default)]
    pub ignored: bool,
    /// A group case: it needs the rig's devices together (`group: all`, or
    /// `group: { min: 3 }`) and runs once per rig on all of them at once.
    #[serde(default)]
    pub group: Option<GroupSpec>,
    pub steps: Vec<super::CaseStep>,
    /// Steps that put the device back as the case found it (a setting the
    /// steps changed, PSM timers kept in the modem's NV, a network the lab
    /// made refuse a profile): run after the steps however they ended —
    /// passed, failed, errored, skipped part-way or out of time — as if
    /// they followed the step that ended the case, with its saved values.
    /// Not run when no step ran, nor after Ctrl-C/SIGTERM (the run's safe
    /// end applies). A passed case whose cleanup fails is a failure: the
    /// device was left changed. In a group case the cleanup's steps are
    /// group steps: `group`/`campaign` act on the group, any other step
    /// runs on every member with the member's own saved values.
    #[serde(default)]
    pub cleanup: Option<Vec<super::CaseStep>>,
    /// How long the cleanup may take, apart from the case's `timeout`
    /// (default 60s); a cleanup step that waits on the rig or the device (a
    /// reboot) gets that wait even beyond it.
    #[serde(default, deserialize_with = "rig::duration::deserialize_option")]
    #[schemars(with = "Option<rig::schema::DurationText>")]
    pub cleanup_timeout: Option<Duration>,
}

/// `group:` of a case file: `all` (every device of the rig, at least two:
/// one device is no group), or `{ min: N }` (every device of the rig, at
/// least N). A rig with fewer devices skips the case with the reason.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum GroupSpec {
    All(GroupAll),
    AtLeast(GroupMin),
}

#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupAll {
    All,
}

#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupMin {
    /// The fewest devices the case needs (2 or more).
    pub min: usize,
}

/// A value written in a case: typed later by the object model.
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(untagged)]
pub enum ScalarValue {
    Bool(bool),
    Integer(i64),
    Float(f64),
    Text(String),
}

impl std::fmt::Display for ScalarValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScalarValue::Bool(b) => write!(f, "{b}"),
            ScalarValue::Integer(i) => write!(f, "{i}"),
            ScalarValue::Float(x) => write!(f, "{x}"),
            ScalarValue::Text(s) => write!(f, "{s:?}"),
        }
    }
}

/// A step written short (`execute: /3/0/4`) or long (a map). Unlike an
/// untagged enum, a mistake inside the map keeps its own message and position
/// (serde's untagged enums only say "did not match any variant").
#[derive(Debug, Clone)]
pub enum StringOr<M> {
    Short(String),
    Long(M),
}

impl<'de, M: Deserialize<'de>> Deserialize<'de> for StringOr<M> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<M>(std::marker::PhantomData<M>);
        impl<'de, M: Deserialize<'de>> serde::de::Visitor<'de> for Visit<M> {
            type Value = StringOr<M>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a map")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(StringOr::Short(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                M::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(StringOr::Long)
            }
        }
        d.deserialize_any(Visit(std::marker::PhantomData))
    }
}
