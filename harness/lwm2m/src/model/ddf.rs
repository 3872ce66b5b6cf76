//! OMA object definition (DDF) XML, as published in the OMA LwM2M registry
//! (LwM2M 1.1 Core Appendix D, schema `LWM2M.xsd`).
//!
//! The registry's files vary more than the schema suggests: elements indented
//! with tabs or spaces and values padded with newlines inside CDATA, optional
//! elements (`RangeEnumeration`, `Units`, `Description2`, `ObjectURN`,
//! `ObjectVersion`) left out, `<Type>` empty for executable resources, and
//! executables that still declare a type. The parser trims every value,
//! defaults what is optional and only insists on what the object model needs:
//! ids, names, operations, multiplicity, mandatory and type.

use std::collections::BTreeMap;

use roxmltree::{Document, Node};

use crate::model::{ObjectDef, Operations, ResourceDef, ResourceType};

/// A DDF file that could not be read, with the position of the offending element.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{column}: {reason}")]
pub struct DdfError {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub reason: String,
}

/// Parses one DDF document (`<LWM2M><Object>...</Object></LWM2M>`); `file` names it in errors.
///
/// A document may hold several `<Object>` elements; each becomes one [`ObjectDef`].
pub fn parse_ddf(file: &str, xml: &str) -> Result<Vec<ObjectDef>, DdfError> {
    let doc = Document::parse(xml).map_err(|e| {
        let pos = e.pos();
        DdfError {
            file: file.to_string(),
            line: pos.row,
            column: pos.col,
            reason: format!("malformed XML: {e}"),
        }
    })?;
    let ctx = Ctx { file, doc: &doc };
    let root = doc.root_element();
    if root.tag_name().name() != "LWM2M" {
        return Err(ctx.error(
            root,
            format!(
                "expected root element <LWM2M>, found <{}>",
                root.tag_name().name()
            ),
        ));
    }
    let objects: Vec<Node> = root
        .children()
        .filter(|n| n.is_element() && n.tag_name().name() == "Object")
        .collect();
    if objects.is_empty() {
        return Err(ctx.error(root, "expected at least one <Object> inside <LWM2M>"));
    }
    objects.into_iter().map(|o| ctx.object(o)).collect()
}

struct Ctx<'a, 'input> {
    file: &'a str,
    doc: &'a Document<'input>,
}

impl Ctx<'_, '_> {
    fn error(&self, node: Node, reason: impl Into<String>) -> DdfError {
        let pos = self.doc.text_pos_at(node.range().start);
        DdfError {
            file: self.file.to_string(),
            line: pos.row,
            column: pos.col,
            reason: reason.into(),
        }
    }

    fn object(&self, node: Node) -> Result<ObjectDef, DdfError> {
        let id_node = self.required(node, "ObjectID", "<Object>")?;
        let id = self.id(id_node, "<ObjectID>")?;
        let name = self.required_text(node, "Name", "<Object>")?;
        let version = optional_text(node, "ObjectVersion").unwrap_or_else(|| "1.0".to_string());
        let urn = optional_text(node, "ObjectURN").unwrap_or_else(|| default_urn(id, &version));
        let multiple = self.multiplicity(node)?;
        let mandatory = self.mandatory(node)?;
        let mut resources = BTreeMap::new();
        if let Some(list) = child(node, "Resources") {
            for item in list
                .children()
                .filter(|n| n.is_element() && n.tag_name().name() == "Item")
            {
                let def = self.resource(item)?;
                if resources.contains_key(&def.id) {
                    return Err(self.error(
                        item,
                        format!("resource id {} is defined twice in object {id}", def.id),
                    ));
                }
                resources.insert(def.id, def);
            }
        }
        Ok(ObjectDef {
            id,
            name,
            version,
            urn,
            multiple,
            mandatory,
            resources,
        })
    }

    fn resource(&self, item: Node) -> Result<ResourceDef, DdfError> {
        let raw = item
            .attribute("ID")
            .ok_or_else(|| self.error(item, "expected an ID attribute on <Item>"))?;
        let id = parse_id(raw.trim()).ok_or_else(|| {
            self.error(
                item,
                format!("expected <Item ID> to be a resource id in 0..=65534, found {raw:?}"),
            )
        })?;
        let name = self.required_text(item, "Name", "<Item>")?;
        let operations = self.operations(item)?;
        let multiple = self.multiplicity(item)?;
        let mandatory = self.mandatory(item)?;
        let kind = self.kind(item, operations)?;
        let units = optional_text(item, "Units");
        let description = optional_text(item, "Description").unwrap_or_default();
        Ok(ResourceDef {
            id,
            name,
            operations,
            multiple,
            mandatory,
            kind,
            units,
            description,
        })
    }

    fn required<'n, 'i>(
        &self,
        parent: Node<'n, 'i>,
        name: &str,
        inside: &str,
    ) -> Result<Node<'n, 'i>, DdfError> {
        child(parent, name)
            .ok_or_else(|| self.error(parent, format!("expected <{name}> inside {inside}")))
    }

    fn required_text(&self, parent: Node, name: &str, inside: &str) -> Result<String, DdfError> {
        let node = self.required(parent, name, inside)?;
        let text = text_of(node);
        if text.is_empty() {
            return Err(self.error(node, format!("expected a non-empty <{name}>")));
        }
        Ok(text)
    }

    fn id(&self, node: Node, what: &str) -> Result<u16, DdfError> {
        let text = text_of(node);
        parse_id(&text).ok_or_else(|| {
            self.error(
                node,
                format!("expected {what} to be an id in 0..=65534, found {text:?}"),
            )
        })
    }

    fn multiplicity(&self, parent: Node) -> Result<bool, DdfError> {
        let node = self.required(
            parent,
            "MultipleInstances",
            &format!("<{}>", parent.tag_name().name()),
        )?;
        match text_of(node).as_str() {
            "Single" => Ok(false),
            "Multiple" => Ok(true),
            other => Err(self.error(
                node,
                format!("expected <MultipleInstances> Single or Multiple, found {other:?}"),
            )),
        }
    }

    fn mandatory(&self, parent: Node) -> Result<bool, DdfError> {
        let node = self.required(
            parent,
            "Mandatory",
            &format!("<{}>", parent.tag_name().name()),
        )?;
        match text_of(node).as_str() {
            "Mandatory" => Ok(true),
            "Optional" => Ok(false),
            other => Err(self.error(
                node,
                format!("expected <Mandatory> Mandatory or Optional, found {other:?}"),
            )),
        }
    }

    fn operations(&self, item: Node) -> Result<Operations, DdfError> {
        // Object 0's resources have no operations at all: only the Bootstrap-Server touches them.
        let Some(node) = child(item, "Operations") else {
            return Ok(Operations::default());
        };
        let text = text_of(node);
        text.parse().map_err(|_| {
            self.error(
                node,
                format!("expected <Operations> R, W, RW, E or empty, found {text:?}"),
            )
        })
    }

    fn kind(&self, item: Node, ops: Operations) -> Result<ResourceType, DdfError> {
        let Some(node) = child(item, "Type") else {
            return if ops.execute {
                Ok(ResourceType::None)
            } else {
                Err(self.error(
                    item,
                    "expected <Type> inside <Item> (only executable resources may omit it)",
                ))
            };
        };
        let text = text_of(node);
        text.parse().map_err(|_| {
            self.error(
                node,
                format!(
                    "expected <Type> String, Integer, Unsigned Integer, Float, Boolean, Opaque, Time, Objlnk, Corelnk or empty, found {text:?}"
                ),
            )
        })
    }
}

fn child<'n, 'i>(parent: Node<'n, 'i>, name: &str) -> Option<Node<'n, 'i>> {
    parent
        .children()
        .find(|n| n.is_element() && n.tag_name().name() == name)
}

/// The element's text (CDATA included), trimmed; empty for `<X/>`.
fn text_of(node: Node) -> String {
    node.children()
        .filter_map(|c| c.text())
        .collect::<String>()
        .trim()
        .to_string()
}

fn optional_text(parent: Node, name: &str) -> Option<String> {
    child(parent, name).map(text_of).filter(|t| !t.is_empty())
}

fn parse_id(text: &str) -> Option<u16> {
    text.parse::<u16>().ok().filter(|id| *id != u16::MAX)
}

/// `urn:oma:lwm2m:oma:<id>` with `:<version>` for versions past 1.0 (LwM2M 1.1 Core §5.1.2).
fn default_urn(id: u16, version: &str) -> String {
    let kind = match id {
        0..=1023 => "oma",
        2048..=10240 => "ext",
        10241..=42800 => "x",
        _ => "oma",
    };
    if version == "1.0" {
        format!("urn:oma:lwm2m:{kind}:{id}")
    } else {
        format!("urn:oma:lwm2m:{kind}:{id}:{version}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"<LWM2M>
  <Object ObjectType="MODefinition">
    <Name> Tiny </Name>
    <ObjectID>
      42000
    </ObjectID>
    <MultipleInstances>Multiple</MultipleInstances>
    <Mandatory>Optional</Mandatory>
    <Resources>
      <Item ID="0"><Name>Go</Name><Operations>E</Operations><MultipleInstances>Single</MultipleInstances><Mandatory>Mandatory</Mandatory><Type></Type></Item>
      <Item ID="1"><Name>Count</Name><Operations>R</Operations><MultipleInstances>Single</MultipleInstances><Mandatory>Optional</Mandatory><Type>Unsigned Integer</Type><Units>pulses</Units></Item>
    </Resources>
  </Object>
</LWM2M>"#;

    #[test]
    fn optional_elements_default_and_values_are_trimmed() {
        let objs = parse_ddf("tiny.xml", MINIMAL).unwrap();
        let o = &objs[0];
        assert_eq!(
            (o.id, o.name.as_str(), o.version.as_str()),
            (42000, "Tiny", "1.0")
        );
        assert_eq!(o.urn, "urn:oma:lwm2m:x:42000");
        assert!(o.multiple && !o.mandatory);
        assert_eq!(o.resource(0).unwrap().kind, ResourceType::None);
        assert!(o.resource(0).unwrap().operations.execute);
        let count = o.resource(1).unwrap();
        assert_eq!(count.kind, ResourceType::UnsignedInteger);
        assert_eq!(count.units.as_deref(), Some("pulses"));
    }

    #[test]
    fn bad_enumerations_name_the_element_position() {
        let xml = MINIMAL.replace("<Type>Unsigned Integer</Type>", "<Type>Decimal</Type>");
        let e = parse_ddf("tiny.xml", &xml).unwrap_err();
        assert_eq!((e.line, e.column), (11, 140), "{e}");
        assert!(e.reason.contains("Decimal"), "{e}");
    }
}
