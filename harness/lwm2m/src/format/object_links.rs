//! A registration's object list (LwM2M 1.1 Core §6.2.1, "Objects and Object
//! Instances": `</1/0>,</3/0>,</5>;ver=1.1,</5/0>`) held compactly.
//!
//! The server keeps one list per registered client for the registration's
//! whole life, so at 100,000 clients its size is most of what a registration
//! costs: as `Vec<Link>` each link is 48 bytes plus a heap string for its
//! target (about 420 bytes for eight links, docs/perf/figures.md). Nearly
//! every link of a real list is a bare `</O>` or `</O/I>`, so a link is held
//! as its two ids (4 bytes); what only some links carry — attributes such as
//! `ver` (Core §6.2.1: "the Object Version ... is indicated with the ver
//! attribute") or a target that is not a canonical object or instance path —
//! is kept apart, boxed, only for the links that have it. The list is parsed
//! once, at Register or Update, and read through accessors; it writes back
//! the link-format text it was built from ([`fmt::Display`]).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use crate::format::link::{encode_links, parse_links, Link};
use crate::format::FormatError;
use crate::path::Path;

/// Marks "no instance" in [`Ids::instance`]: 65535 is not an instance id
/// (LwM2M 1.1 Core §7.2: MAX_ID 65535 is reserved), so no `</O/65535>`
/// link is ever stored in the compact form (it keeps its raw target).
const NO_INSTANCE: u16 = u16::MAX;

/// One link's object and instance ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ids {
    object: u16,
    instance: u16,
}

/// One attribute, `ver=1.1` (name, value) or a bare `obs` (name, `None`).
pub type LinkAttribute = (Box<str>, Option<Box<str>>);

/// What a link carries beyond `</O>` or `</O/I>`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Extra {
    /// The link's index in the list.
    index: u32,
    /// The target, when it is not a canonical object or instance path
    /// (`</>`, `</3/0/1>`, `</lwm2m/3>` outside the alternate path).
    target: Option<Box<str>>,
    attributes: Box<[LinkAttribute]>,
}

/// A registration's object and instance links, compact (see the module doc).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ObjectLinks {
    ids: Box<[Ids]>,
    /// Sorted by `index`; `None` when no link has attributes or an odd target.
    extras: Option<Box<[Extra]>>,
}

/// One link of an [`ObjectLinks`], read in place.
#[derive(Debug, Clone, Copy)]
pub struct ObjectLink<'a> {
    ids: Ids,
    extra: Option<&'a Extra>,
}

impl ObjectLinks {
    /// Parses a link-format object list (RFC 6690 §2) as is: no root link
    /// is split off here ([`crate::server::ObjectList`] does that).
    pub fn parse(text: &str) -> Result<Self, FormatError> {
        parse_links(text).map(ObjectLinks::from)
    }
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    /// The links in the order the client listed them.
    pub fn iter(&self) -> impl Iterator<Item = ObjectLink<'_>> + '_ {
        let mut extras = self.extras.as_deref().unwrap_or(&[]).iter().peekable();
        self.ids.iter().enumerate().map(move |(i, ids)| {
            let extra = extras.next_if(|e| e.index as usize == i);
            ObjectLink { ids: *ids, extra }
        })
    }
    /// Whether the object is listed, with or without instances.
    pub fn has_object(&self, object: u16) -> bool {
        self.iter().any(|l| l.object_id() == Some(object))
    }
    /// The instance ids listed for `object`, in list order.
    pub fn instances_of(&self, object: u16) -> impl Iterator<Item = u16> + '_ {
        self.iter()
            .filter_map(move |l| {
                l.path()
                    .filter(|p| p.depth() == 2 && p.object_id() == Some(object))
            })
            .filter_map(|p| p.instance_id())
    }
    /// Every object instance listed (`</O/I>` links), in list order.
    pub fn instances(&self) -> impl Iterator<Item = Path> + '_ {
        self.iter()
            .filter_map(|l| l.path())
            .filter(|p| p.depth() == 2)
    }
    /// The links as owned [`Link`]s, for code that edits or encodes them.
    pub fn to_links(&self) -> Vec<Link> {
        self.iter().map(|l| l.to_link()).collect()
    }
}

impl<'a> ObjectLink<'a> {
    /// The target as the client wrote it (`/3/0`).
    pub fn target(&self) -> Cow<'a, str> {
        if let Some(t) = self.extra.and_then(|e| e.target.as_deref()) {
            return Cow::Borrowed(t);
        }
        Cow::Owned(match self.ids.instance {
            NO_INSTANCE => format!("/{}", self.ids.object),
            i => format!("/{}/{i}", self.ids.object),
        })
    }
    /// The target as an LwM2M path, when it is one (`</>` is not).
    pub fn path(&self) -> Option<Path> {
        match self.extra.and_then(|e| e.target.as_deref()) {
            Some(t) => t.parse().ok().filter(|p: &Path| p.depth() > 0),
            None => Some(match self.ids.instance {
                NO_INSTANCE => Path::object(self.ids.object),
                i => Path::instance(self.ids.object, i),
            }),
        }
    }
    pub fn object_id(&self) -> Option<u16> {
        self.path().and_then(|p| p.object_id())
    }
    pub fn attributes(&self) -> &'a [LinkAttribute] {
        self.extra.map(|e| &*e.attributes).unwrap_or(&[])
    }
    /// The value of attribute `name` (`ver` of `</5>;ver=1.1`).
    pub fn attribute(&self, name: &str) -> Option<&'a str> {
        self.attributes()
            .iter()
            .find(|(n, _)| &**n == name)
            .and_then(|(_, v)| v.as_deref())
    }
    /// Whether the link carries `name`, with or without a value.
    pub fn has_attribute(&self, name: &str) -> bool {
        self.attributes().iter().any(|(n, _)| &**n == name)
    }
    pub fn to_link(&self) -> Link {
        Link {
            target: self.target().into_owned(),
            attributes: self
                .attributes()
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_deref().map(str::to_string)))
                .collect(),
        }
    }
}

/// The ids of `target` when it is exactly `/O` or `/O/I` as
/// [`Path`]'s `Display` writes it, so that writing it back gives the same text.
fn compact_ids(target: &str) -> Option<Ids> {
    let path: Path = target.parse().ok()?;
    let ids = match path.depth() {
        1 => Ids {
            object: path.object_id()?,
            instance: NO_INSTANCE,
        },
        2 => Ids {
            object: path.object_id()?,
            instance: path.instance_id()?,
        },
        _ => return None,
    };
    // `/3/0/` parses as `/3/0` but would not write back the same.
    (path.to_string() == target).then_some(ids)
}

impl From<Vec<Link>> for ObjectLinks {
    fn from(links: Vec<Link>) -> Self {
        let mut ids = Vec::with_capacity(links.len());
        let mut extras = Vec::new();
        for (index, link) in links.into_iter().enumerate() {
            let compact = compact_ids(&link.target);
            ids.push(compact.unwrap_or(Ids {
                object: 0,
                instance: NO_INSTANCE,
            }));
            if compact.is_none() || !link.attributes.is_empty() {
                extras.push(Extra {
                    index: index as u32,
                    target: compact.is_none().then(|| link.target.into_boxed_str()),
                    attributes: link
                        .attributes
                        .into_iter()
                        .map(|(n, v)| (n.into_boxed_str(), v.map(String::into_boxed_str)))
                        .collect(),
                });
            }
        }
        ObjectLinks {
            ids: ids.into_boxed_slice(),
            extras: (!extras.is_empty()).then(|| extras.into_boxed_slice()),
        }
    }
}

impl FromStr for ObjectLinks {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Self, FormatError> {
        ObjectLinks::parse(s)
    }
}

/// The link-format text (`</1/0>,</5>;ver=1.1`), as [`encode_links`] writes it.
impl fmt::Display for ObjectLinks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode_links(&self.to_links()))
    }
}

/// Debug shows the links as text: `ObjectLinks("</1/0>,</3/0>")`.
impl fmt::Debug for ObjectLinks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ObjectLinks")
            .field(&self.to_string())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_list_needs_no_extras() {
        let links: ObjectLinks = "</1/0>,</3/0>,</5>".parse().unwrap();
        assert!(links.extras.is_none());
        assert_eq!(links.ids.len(), 3);
        assert_eq!(std::mem::size_of::<Ids>(), 4);
    }
}
