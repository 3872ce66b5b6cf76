//! The rig file's `link:`: a named profile (`link: nb-iot`), or a map
//! with an optional base profile and figures that replace its own, for
//! both directions or for `up` (device -> servers) and `down` apart:
//!
//! ```yaml
//! link: { profile: lossy, loss: 20%, down: { duplicate: 0.05 } }
//! ```
//!
//! Without a `profile:` the base is a perfect link.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer};

use super::params::{DirectionParams, LinkParams, LinkProfile, Probability, Rate};

/// A rig's link, as its file gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSpec {
    pub profile: Option<LinkProfile>,
    /// Figures for both directions.
    pub both: DirectionSpec,
    pub up: DirectionSpec,
    pub down: DirectionSpec,
}

/// Figures that replace the base profile's; each absent one keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DirectionSpec {
    /// One-way delay (`420ms`).
    #[serde(default, deserialize_with = "crate::duration::deserialize_option")]
    #[schemars(with = "Option<crate::schema::DurationText>")]
    pub delay: Option<Duration>,
    /// Each datagram's delay varies within `delay ± jitter`.
    #[serde(default, deserialize_with = "crate::duration::deserialize_option")]
    #[schemars(with = "Option<crate::schema::DurationText>")]
    pub jitter: Option<Duration>,
    /// Share of datagrams lost (`0.1` or `10%`); `100%` makes every case fail, saying so.
    #[serde(default, deserialize_with = "deserialize_probability")]
    #[schemars(with = "Option<ProbabilityText>")]
    pub loss: Option<Probability>,
    /// Share of delivered datagrams delivered twice.
    #[serde(default, deserialize_with = "deserialize_probability")]
    #[schemars(with = "Option<ProbabilityText>")]
    pub duplicate: Option<Probability>,
    /// Share of datagrams held back so that later ones overtake them.
    #[serde(default, deserialize_with = "deserialize_probability")]
    #[schemars(with = "Option<ProbabilityText>")]
    pub reorder: Option<Probability>,
    /// Largest UDP payload in bytes; larger datagrams are dropped.
    #[serde(default)]
    #[schemars(range(min = 1, max = 65535))]
    pub mtu: Option<usize>,
    /// Bandwidth cap (`26kbit/s`).
    #[serde(default, deserialize_with = "deserialize_rate")]
    #[schemars(with = "Option<RateText>")]
    pub rate: Option<Rate>,
    /// Bytes queued before the bandwidth cap before datagrams are dropped
    /// (`16KiB`; default 16KiB).
    #[serde(default, deserialize_with = "deserialize_queue")]
    #[schemars(with = "Option<QueueText>")]
    pub queue: Option<usize>,
}

impl DirectionSpec {
    fn apply(&self, p: &mut DirectionParams) {
        if let Some(v) = self.delay {
            p.delay = v;
        }
        if let Some(v) = self.jitter {
            p.jitter = v;
        }
        if let Some(v) = self.loss {
            p.loss = v;
        }
        if let Some(v) = self.duplicate {
            p.duplicate = v;
        }
        if let Some(v) = self.reorder {
            p.reorder = v;
        }
        if let Some(v) = self.mtu {
            p.mtu = Some(v);
        }
        if let Some(v) = self.rate {
            p.rate = Some(v);
        }
        if let Some(v) = self.queue {
            p.queue = v;
        }
    }

    fn is_empty(&self) -> bool {
        *self == DirectionSpec::default()
    }
}

impl LinkSpec {
    /// The figures the link runs with: the profile's (or a perfect
    /// link's), then `both`, then each direction's own.
    pub fn params(&self) -> LinkParams {
        let mut p = match self.profile {
            Some(profile) => profile.params(),
            None => LinkParams {
                name: "custom".into(),
                up: DirectionParams::perfect(),
                down: DirectionParams::perfect(),
            },
        };
        let customised = !(self.both.is_empty() && self.up.is_empty() && self.down.is_empty());
        if customised && self.profile.is_some() {
            p.name = format!("{} (customised)", p.name);
        }
        self.both.apply(&mut p.up);
        self.both.apply(&mut p.down);
        self.up.apply(&mut p.up);
        self.down.apply(&mut p.down);
        p
    }

    /// The checks a `link:` must pass beyond its schema: (field, message).
    pub fn check(&self) -> Result<(), (String, String)> {
        for (name, d) in [
            ("link", &self.both),
            ("link.up", &self.up),
            ("link.down", &self.down),
        ] {
            if d.mtu == Some(0) || d.mtu.is_some_and(|m| m > 65_535) {
                return Err((
                    format!("{name}.mtu"),
                    "must be between 1 and 65535 bytes (a UDP payload)".into(),
                ));
            }
            if d.queue == Some(0) {
                return Err((format!("{name}.queue"), "must hold at least 1 byte".into()));
            }
        }
        Ok(())
    }
}

/// The rig file's `link:` as written, for the schema and the map form.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLink {
    /// The profile the figures below change; absent: a perfect link.
    #[serde(default)]
    profile: Option<LinkProfile>,
    #[serde(default, deserialize_with = "crate::duration::deserialize_option")]
    #[schemars(with = "Option<crate::schema::DurationText>")]
    delay: Option<Duration>,
    #[serde(default, deserialize_with = "crate::duration::deserialize_option")]
    #[schemars(with = "Option<crate::schema::DurationText>")]
    jitter: Option<Duration>,
    #[serde(default, deserialize_with = "deserialize_probability")]
    #[schemars(with = "Option<ProbabilityText>")]
    loss: Option<Probability>,
    #[serde(default, deserialize_with = "deserialize_probability")]
    #[schemars(with = "Option<ProbabilityText>")]
    duplicate: Option<Probability>,
    #[serde(default, deserialize_with = "deserialize_probability")]
    #[schemars(with = "Option<ProbabilityText>")]
    reorder: Option<Probability>,
    #[serde(default)]
    #[schemars(range(min = 1, max = 65535))]
    mtu: Option<usize>,
    #[serde(default, deserialize_with = "deserialize_rate")]
    #[schemars(with = "Option<RateText>")]
    rate: Option<Rate>,
    #[serde(default, deserialize_with = "deserialize_queue")]
    #[schemars(with = "Option<QueueText>")]
    queue: Option<usize>,
    /// Device -> servers only.
    #[serde(default)]
    up: Option<DirectionSpec>,
    /// Servers -> device only.
    #[serde(default)]
    down: Option<DirectionSpec>,
}

/// The schema of `link:`: a profile name or the map.
#[derive(schemars::JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)] // only its schema is used
pub(crate) enum LinkSpecText {
    /// A named profile: nb-iot, lte-m or lossy.
    Profile(LinkProfile),
    /// A profile changed, or figures of its own.
    Custom(Box<RawLink>),
}

impl<'de> Deserialize<'de> for LinkSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = LinkSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a link profile (nb-iot, lte-m, lossy) or a map such as `{ profile: lossy, loss: 20% }`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<LinkSpec, E> {
                let profile = match v {
                    "nb-iot" => LinkProfile::NbIot,
                    "lte-m" => LinkProfile::LteM,
                    "lossy" => LinkProfile::Lossy,
                    other => {
                        return Err(E::custom(format!(
                            "unknown link profile `{other}`: expected nb-iot, lte-m or lossy (or a map with `profile:` and figures)"
                        )))
                    }
                };
                Ok(LinkSpec {
                    profile: Some(profile),
                    both: DirectionSpec::default(),
                    up: DirectionSpec::default(),
                    down: DirectionSpec::default(),
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<LinkSpec, A::Error> {
                let r = RawLink::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(LinkSpec {
                    profile: r.profile,
                    both: DirectionSpec {
                        delay: r.delay,
                        jitter: r.jitter,
                        loss: r.loss,
                        duplicate: r.duplicate,
                        reorder: r.reorder,
                        mtu: r.mtu,
                        rate: r.rate,
                        queue: r.queue,
                    },
                    up: r.up.unwrap_or_default(),
                    down: r.down.unwrap_or_default(),
                })
            }
        }
        d.deserialize_any(Visit)
    }
}

/// A number or a string, handed to `parse` as text.
fn text_or_number<'de, D: Deserializer<'de>>(d: D, what: &'static str) -> Result<String, D::Error> {
    struct Visit(&'static str);
    impl serde::de::Visitor<'_> for Visit {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_any(Visit(what))
}

fn deserialize_probability<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Probability>, D::Error> {
    let t = text_or_number(d, "a fraction such as 0.2 or a percentage such as 20%")?;
    Probability::parse(&t)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn deserialize_rate<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Rate>, D::Error> {
    let t = text_or_number(d, "a rate such as 26kbit/s")?;
    Rate::parse(&t).map(Some).map_err(serde::de::Error::custom)
}

fn deserialize_queue<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    let t = text_or_number(d, "a size such as 16KiB or 4096 (bytes)")?;
    parse_queue(&t).map(Some).map_err(serde::de::Error::custom)
}

/// `4096`, `4096B`, `16KiB`, `1MiB`: at most 64MiB, a queue held in memory.
fn parse_queue(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        _ => {
            return Err(format!(
                "`{text}` is not a size: expected bytes, KiB or MiB (e.g. 16KiB)"
            ))
        }
    };
    let n: usize = digits.parse().map_err(|_| {
        format!("`{text}` is not a size: expected a whole number of bytes, KiB or MiB (e.g. 16KiB)")
    })?;
    match n.checked_mul(scale) {
        Some(b) if b <= 64 << 20 => Ok(b),
        _ => Err(format!(
            "`{text}` is more than 64MiB: a link's queue is held in memory"
        )),
    }
}

/// A probability as `link:` writes it.
pub struct ProbabilityText;

impl JsonSchema for ProbabilityText {
    fn schema_name() -> Cow<'static, str> {
        "Probability".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A fraction from 0 to 1 (0.2) or a percentage (20%).",
            "anyOf": [
                { "type": "number", "minimum": 0, "maximum": 1 },
                { "type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*%\s*$" }
            ],
            "examples": [0.1, "10%"]
        })
    }
}

/// A bandwidth as `link:` writes it.
pub struct RateText;

impl JsonSchema for RateText {
    fn schema_name() -> Cow<'static, str> {
        "Rate".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Bits per second: a number, or with bit/s, kbit/s or Mbit/s (26kbit/s).",
            "anyOf": [
                { "type": "integer", "minimum": 1 },
                { "type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*(bit/s|bps|kbit/s|kbps|Mbit/s|Mbps)?\s*$" }
            ],
            "examples": ["26kbit/s"]
        })
    }
}

/// A queue size as `link:` writes it.
pub struct QueueText;

impl JsonSchema for QueueText {
    fn schema_name() -> Cow<'static, str> {
        "QueueSize".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Bytes, or with KiB or MiB (16KiB); at most 64MiB.",
            "anyOf": [
                { "type": "integer", "minimum": 1, "maximum": 67108864 },
                { "type": "string", "pattern": r"^\s*[0-9]+\s*(B|KiB|MiB)?\s*$" }
            ],
            "examples": ["16KiB"]
        })
    }
}
