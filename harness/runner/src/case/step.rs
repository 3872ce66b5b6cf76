//! One step as a case file holds it: exactly one action key, whose payload
//! is a [`StepKind`], plus the two keys every step may carry, `within` and
//! `note`, peeled off here once so that no kind has to know about them.

use std::time::Duration;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::case::fields::Span;
use crate::steps::StepKind;

/// A step of a case, with its place in the file for failure messages.
#[derive(Debug, Clone)]
pub struct CaseStep {
    pub line: u32,
    pub column: u32,
    pub kind: StepKind,
    /// How long the step may take (default: what the kind asks, else what
    /// is left of the case's timeout).
    pub within: Option<Duration>,
    /// Printed in the step log.
    pub note: Option<String>,
}

impl CaseStep {
    /// A short description for the step log.
    pub fn describe(&self) -> String {
        self.kind.step().describe()
    }
}

impl<'de> Deserialize<'de> for CaseStep {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<Entry>::deserialize(d)?;
        let Entry { kind, within, note } = spanned.value;
        // `await: {path, equals, within}` may say its limit inside its map.
        let within = within.or(match &kind {
            StepKind::Await(a) => a.within,
            _ => None,
        });
        Ok(CaseStep {
            line: spanned.referenced.line() as u32,
            column: spanned.referenced.column() as u32,
            kind,
            within,
            note,
        })
    }
}

/// The map of one step, before its position is attached.
struct Entry {
    kind: StepKind,
    within: Option<Duration>,
    note: Option<String>,
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EntryVisitor)
    }
}

struct EntryVisitor;

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = Entry;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(
            "a step: one action key (power, await, read, ...) with `within` or `note` if needed",
        )
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry, A::Error> {
        let (mut kind, mut within, mut note) = (None::<(String, StepKind)>, None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "within" => within = Some(map.next_value::<Span>()?.0),
                "note" => note = Some(map.next_value::<String>()?),
                _ => {
                    if let Some((first, _)) = &kind {
                        return Err(de::Error::custom(format!(
                            "a step holds one action, this one holds `{first}` and `{key}`: split it into two steps"
                        )));
                    }
                    let value = map.next_value_seed(KindSeed(key.clone()))?;
                    kind = Some((key, value));
                }
            }
        }
        let (_, kind) = kind.ok_or_else(|| {
            de::Error::custom(format!(
                "a step needs one action: {}",
                StepKind::NAMES.join(", ")
            ))
        })?;
        Ok(Entry { kind, within, note })
    }
}

/// Reads an action's value as the [`StepKind`] variant its key names: the
/// step map is the enum's tag and payload, with `within`/`note` beside them.
struct KindSeed(String);

impl<'de> DeserializeSeed<'de> for KindSeed {
    type Value = StepKind;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<StepKind, D::Error> {
        StepKind::deserialize(Tagged {
            key: self.0,
            value: d,
        })
    }
}

/// A deserializer that presents (key, value) as one externally tagged enum.
struct Tagged<D> {
    key: String,
    value: D,
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Tagged<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        visitor.visit_enum(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

impl<'de, D: Deserializer<'de>> de::EnumAccess<'de> for Tagged<D> {
    type Error = D::Error;
    type Variant = Payload<D>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Payload<D>), D::Error> {
        let key: de::value::StringDeserializer<D::Error> = self.key.into_deserializer();
        Ok((seed.deserialize(key)?, Payload(self.value)))
    }
}

struct Payload<D>(D);

impl<'de, D: Deserializer<'de>> de::VariantAccess<'de> for Payload<D> {
    type Error = D::Error;

    fn unit_variant(self) -> Result<(), D::Error> {
        de::IgnoredAny::deserialize(self.0).map(|_| ())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, D::Error> {
        seed.deserialize(self.0)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple(len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_struct("", fields, visitor)
    }
}
