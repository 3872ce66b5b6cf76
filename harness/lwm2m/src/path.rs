//! LwM2M paths: `/Object[/Instance[/Resource[/ResourceInstance]]]` (LwM2M 1.1 Core §6.1 / §7.2).

use std::fmt;
use std::str::FromStr;

/// A path into the object tree. Each level is present only if the previous one is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Path {
    ids: [u16; 4],
    len: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path {0:?} must start with '/'")]
    NoLeadingSlash(String),
    #[error("path {path:?}: segment {segment:?} is not an id in 0..=65534")]
    BadSegment { path: String, segment: String },
    #[error("path {0:?} has more than four levels")]
    TooDeep(String),
}

impl Path {
    /// The root path `/`.
    pub const ROOT: Path = Path {
        ids: [0; 4],
        len: 0,
    };

    pub fn object(object: u16) -> Self {
        Path {
            ids: [object, 0, 0, 0],
            len: 1,
        }
    }
    pub fn instance(object: u16, instance: u16) -> Self {
        Path {
            ids: [object, instance, 0, 0],
            len: 2,
        }
    }
    pub fn resource(object: u16, instance: u16, resource: u16) -> Self {
        Path {
            ids: [object, instance, resource, 0],
            len: 3,
        }
    }
    pub fn resource_instance(object: u16, instance: u16, resource: u16, ri: u16) -> Self {
        Path {
            ids: [object, instance, resource, ri],
            len: 4,
        }
    }
    /// Builds a path from up to four ids; `None` if there are more.
    pub fn from_ids(ids: &[u16]) -> Option<Self> {
        if ids.len() > 4 {
            return None;
        }
        let mut p = Path::ROOT;
        p.ids[..ids.len()].copy_from_slice(ids);
        p.len = ids.len() as u8;
        Some(p)
    }
    pub fn ids(&self) -> &[u16] {
        &self.ids[..self.len as usize]
    }
    pub fn depth(&self) -> usize {
        self.len as usize
    }
    pub fn object_id(&self) -> Option<u16> {
        self.ids().first().copied()
    }
    pub fn instance_id(&self) -> Option<u16> {
        self.ids().get(1).copied()
    }
    pub fn resource_id(&self) -> Option<u16> {
        self.ids().get(2).copied()
    }
    pub fn resource_instance_id(&self) -> Option<u16> {
        self.ids().get(3).copied()
    }
    /// This path with one more level; `None` at depth 4.
    pub fn child(&self, id: u16) -> Option<Self> {
        if self.len >= 4 {
            return None;
        }
        let mut p = *self;
        p.ids[p.len as usize] = id;
        p.len += 1;
        Some(p)
    }
    /// This path without its last level; the root is its own parent.
    pub fn parent(&self) -> Self {
        let mut p = *self;
        if p.len > 0 {
            p.len -= 1;
            p.ids[p.len as usize] = 0;
        }
        p
    }
    /// Whether `other` is this path or lies below it.
    pub fn contains(&self, other: &Path) -> bool {
        other.len >= self.len && other.ids[..self.len as usize] == self.ids[..self.len as usize]
    }
    /// The Uri-Path segments a CoAP request to this path carries.
    pub fn segments(&self) -> Vec<String> {
        self.ids().iter().map(|i| i.to_string()).collect()
    }
    /// Parses the Uri-Path segments of a request (empty list = root).
    pub fn from_segments<S: AsRef<str>>(segments: &[S]) -> Result<Self, PathError> {
        let joined = format!(
            "/{}",
            segments
                .iter()
                .map(|s| s.as_ref())
                .collect::<Vec<_>>()
                .join("/")
        );
        joined.parse()
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.len == 0 {
            return f.write_str("/");
        }
        for id in self.ids() {
            write!(f, "/{id}")?;
        }
        Ok(())
    }
}

impl FromStr for Path {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix('/')
            .ok_or_else(|| PathError::NoLeadingSlash(s.to_string()))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() {
            return Ok(Path::ROOT);
        }
        let mut ids = Vec::new();
        for seg in rest.split('/') {
            // 65535 is reserved (MAX_ID) by the specification.
            let id: u16 = seg
                .parse()
                .ok()
                .filter(|id| *id != u16::MAX && (seg == "0" || !seg.starts_with('0')))
                .ok_or_else(|| PathError::BadSegment {
                    path: s.to_string(),
                    segment: seg.to_string(),
                })?;
            ids.push(id);
        }
        Path::from_ids(&ids).ok_or_else(|| PathError::TooDeep(s.to_string()))
    }
}

impl serde::Serialize for Path {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Path {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays_every_depth() {
        for s in ["/", "/3", "/3/0", "/3/0/9", "/3/0/6/1"] {
            assert_eq!(s.parse::<Path>().unwrap().to_string(), s);
        }
        assert_eq!("/3/0/".parse::<Path>().unwrap(), Path::instance(3, 0));
    }

    #[test]
    fn rejects_bad_paths() {
        assert!(matches!(
            "3/0".parse::<Path>(),
            Err(PathError::NoLeadingSlash(_))
        ));
        assert!(matches!(
            "/3/x".parse::<Path>(),
            Err(PathError::BadSegment { .. })
        ));
        assert!(matches!(
            "/65535".parse::<Path>(),
            Err(PathError::BadSegment { .. })
        ));
        assert!(matches!(
            "/1/2/3/4/5".parse::<Path>(),
            Err(PathError::TooDeep(_))
        ));
    }

    #[test]
    fn containment_follows_the_tree() {
        let r = Path::resource(3, 0, 9);
        assert!(Path::object(3).contains(&r));
        assert!(Path::ROOT.contains(&r));
        assert!(!Path::object(4).contains(&r));
        assert!(!r.contains(&Path::instance(3, 0)));
        assert_eq!(r.parent(), Path::instance(3, 0));
    }
}
