//! A registration's object list held compactly (`lwm2m::format::ObjectLinks`):
//! parsed once from the Register payload (RFC 6690 link format, LwM2M 1.1
//! Core §6.2.1 "Objects and Object Instances"), read through accessors, and
//! written back byte for byte.

use std::net::SocketAddr;
use std::time::Instant;

use lwm2m::format::{parse_links, ObjectLinks};
use lwm2m::Path;

use crate::support::{con_post, registry, seeded_server};

/// Registers `links` through the sans-IO server and returns what it holds.
fn registered_objects(links: &str) -> (ObjectLinks, String) {
    let mut s = seeded_server(&registry(), 7);
    let peer: SocketAddr = "127.0.0.1:5683".parse().unwrap();
    let bytes = con_post(0x10, &["rd"], &["ep=meter-1", "lwm2m=1.1"], Some(links));
    s.handle_datagram(Instant::now(), peer, &bytes);
    assert!(s.poll_transmit().is_some(), "the server answers");
    let reg = s.registration("meter-1").expect("registered");
    (reg.objects.clone(), reg.root.clone())
}

/// Core §6.2.1: objects are listed as `</O>` or `</O/I>`, the object's
/// version in `ver` (an object at 1.0 carries none). Each link reads back
/// as what was sent, and the list writes back the same bytes.
#[test]
fn a_register_object_list_reads_back_link_by_link() {
    let text = "</1/0>,</3/0>,</5>;ver=1.1,</5/0>,</3303/0>,</3303/1>";
    let (links, root) = registered_objects(text);
    assert_eq!(root, "");
    assert_eq!(links.len(), 6);
    let targets: Vec<String> = links.iter().map(|l| l.target().into_owned()).collect();
    assert_eq!(
        targets,
        ["/1/0", "/3/0", "/5", "/5/0", "/3303/0", "/3303/1"]
    );
    let paths: Vec<Path> = links.iter().filter_map(|l| l.path()).collect();
    assert_eq!(
        paths,
        [
            Path::instance(1, 0),
            Path::instance(3, 0),
            Path::object(5),
            Path::instance(5, 0),
            Path::instance(3303, 0),
            Path::instance(3303, 1)
        ]
    );
    let ver: Vec<Option<&str>> = links.iter().map(|l| l.attribute("ver")).collect();
    assert_eq!(ver, [None, None, Some("1.1"), None, None, None]);
    assert!(links.has_object(5) && links.has_object(3303) && !links.has_object(4));
    assert_eq!(links.instances_of(3303).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(links.instances_of(5).collect::<Vec<_>>(), [0]);
    assert_eq!(links.instances_of(4).count(), 0);
    assert_eq!(links.to_string(), text);
    assert_eq!(links.to_links(), parse_links(text).unwrap());
}

/// Core §6.2.1 "Alternate path": with `</lwm2m>;rt="oma.lwm2m";ct=11543`
/// the objects live under /lwm2m; the server holds them relative to it,
/// and the root link is not one of them.
#[test]
fn an_alternate_path_list_is_held_relative_to_its_root() {
    let (links, root) = registered_objects(
        "</lwm2m>;rt=\"oma.lwm2m\";ct=11543,</lwm2m/1/101>,</lwm2m/1/102>,</lwm2m/2/0>,</lwm2m/3/0>,</lwm2m/5>",
    );
    assert_eq!(root, "/lwm2m");
    assert_eq!(links.to_string(), "</1/101>,</1/102>,</2/0>,</3/0>,</5>");
    assert_eq!(links.instances_of(1).collect::<Vec<_>>(), [101, 102]);
}

/// RFC 6690 §5's own examples: targets that are not LwM2M paths and
/// attributes of every kind (quoted `rt`, `if`, `title`, `anchor`, `rel`;
/// token `ct`) survive the compact form byte for byte.
#[test]
fn rfc6690_examples_round_trip_byte_for_byte() {
    for (text, name, value) in [
        ("</sensors/temp>;rt=\"temperature-c\";if=\"sensor\",</sensors/light>;rt=\"light-lux\";if=\"sensor\"", "rt", "temperature-c"),
        ("</sensors>;ct=40;title=\"Sensor Index\",</sensors/temp>;rt=\"temperature-c\";if=\"sensor\",</sensors/light>;rt=\"light-lux\";if=\"sensor\",<http://www.example.com/sensors/t123>;anchor=\"/sensors/temp\";rel=\"describedby\",</t>;anchor=\"/sensors/temp\";rel=\"alternate\"", "title", "Sensor Index"),
    ] {
        let links: ObjectLinks = text.parse().unwrap();
        assert_eq!(links.to_string(), text);
        assert_eq!(links.iter().filter_map(|l| l.path()).count(), 0, "{text}");
        assert_eq!(links.iter().next().unwrap().attribute(name), Some(value));
    }
}

/// Targets that parse as a path but are not written the canonical way
/// (`</3/0/>`, a resource `</3/0/1>`, `</3/65535>` with the reserved id,
/// the root `</>`) keep their text: the list writes back what came.
#[test]
fn non_canonical_targets_keep_their_text() {
    let text = "</3/0/>,</3/0/1>;obs,</3/65535>,</>,</4>";
    let links: ObjectLinks = text.parse().unwrap();
    assert_eq!(links.to_string(), text);
    let paths: Vec<Option<Path>> = links.iter().map(|l| l.path()).collect();
    assert_eq!(
        paths,
        [
            Some(Path::instance(3, 0)),
            Some(Path::resource(3, 0, 1)),
            None,
            None,
            Some(Path::object(4))
        ]
    );
    assert!(links.iter().nth(1).unwrap().has_attribute("obs"));
    assert_eq!(links.instances_of(3).collect::<Vec<_>>(), [0]);
    assert!(links.has_object(4) && !links.has_object(0));
}

/// A malformed list is refused with the offset of the fault, as
/// `parse_links` reports it.
#[test]
fn a_malformed_list_names_where() {
    let err = "</1/0>,3/0".parse::<ObjectLinks>().unwrap_err();
    assert!(err.to_string().contains('7'), "{err}");
}
