//! The CBOR content format (60, `application/cbor`, LwM2M 1.1 Core §7.4.6):
//! one resource value as one CBOR data item, each LwM2M data type as the
//! CBOR major type Table 7.4.6-1 gives it. Vectors are byte-exact RFC 8949
//! encodings (§3.1 major types and argument widths, §3.3 floats and simple
//! values, §3.4.2 tag 1 epoch time, §4.2.2 preferred serialization of
//! floats); the client role answers a Read with Accept 60 and takes a Write
//! in 60 over the wire.

use std::net::SocketAddr;
use std::time::Instant;

use crate::support;
use crate::support::vectors::{hex, p, rec, s};
use crate::support::SERVER;
use lwm2m::client::{Client, ObjectStore};
use lwm2m::format::{decode, encode};
use lwm2m::{ContentFormat, Path, Registry, Value};

/// (request path, value, RFC 8949 encoding): one per LwM2M data type.
fn vectors() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        // Text string (major type 3), length 20 in the initial byte (0x74).
        (
            "/3/0/0",
            s("Open Mobile Alliance"),
            "74 4F 70 65 6E 20 4D 6F 62 69 6C 65 20 41 6C 6C 69 61 6E 63 65",
        ),
        // Integer: major type 0 with a one-byte argument (0x18 0x64 = 100) ...
        ("/3/0/9", Value::Integer(100), "18 64"),
        // ... and major type 1 for -500 (-1 - 499, 499 = 0x01F3).
        ("/3/0/9", Value::Integer(-500), "39 01 F3"),
        // A resource instance takes the same single item.
        ("/3/0/6/0", Value::Integer(1), "01"),
        // Unsigned Integer: major type 0 with an eight-byte argument.
        (
            "/5/0/13",
            Value::Unsigned(u64::MAX),
            "1B FF FF FF FF FF FF FF FF",
        ),
        // Float: the shortest width that keeps the value (RFC 8949 §4.2.2):
        // 806.5 is exact in half precision (0x624D), 0.1 needs double.
        ("/501/0/2", Value::Float(806.5), "F9 62 4D"),
        ("/501/0/2", Value::Float(0.1), "FB 3F B9 99 99 99 99 99 9A"),
        // Boolean: simple value 21 (true) / 20 (false).
        ("/1/0/6", Value::Boolean(true), "F5"),
        ("/1/0/6", Value::Boolean(false), "F4"),
        // Opaque: byte string (major type 2).
        (
            "/5/0/0",
            Value::Opaque(vec![0, 1, 2, 255]),
            "44 00 01 02 FF",
        ),
        // Time: tag 1 (epoch-based date/time) over the integer seconds.
        ("/3/0/13", Value::Time(1_367_491_215), "C1 1A 51 82 42 8F"),
        // Objlnk: the text string "object:instance".
        (
            "/501/0/48",
            Value::Objlnk(26241, 0),
            "67 32 36 32 34 31 3A 30",
        ),
    ]
}

#[test]
fn every_data_type_encodes_byte_exact_core_7_4_6() {
    let reg = Registry::core();
    for (path, value, bytes) in vectors() {
        let base = p(path);
        let got = encode(
            ContentFormat::Cbor,
            &base,
            &[rec(path, value.clone())],
            &reg,
        )
        .unwrap();
        assert_eq!(
            hex::encode_upper(&got),
            hex::encode_upper(hex(bytes)),
            "{value:?} at {path}"
        );
    }
}

#[test]
fn every_data_type_decodes_to_the_resource_type_core_7_4_6() {
    let reg = Registry::core();
    for (path, value, bytes) in vectors() {
        let got = decode(ContentFormat::Cbor, &p(path), &hex(bytes), &reg).unwrap();
        assert_eq!(got, vec![rec(path, value)], "{bytes} at {path}");
    }
}

/// What a correct peer may send that the encoder does not write: a Time
/// without tag 1, a Float as a single-precision float or an integer, a text
/// string in indefinite-length chunks (RFC 8949 §3.2.3).
#[test]
fn decoder_accepts_the_other_encodings_a_peer_may_choose() {
    let reg = Registry::core();
    let cases = [
        ("/3/0/13", "1A 51 82 42 8F", Value::Time(1_367_491_215)),
        ("/501/0/2", "FA 44 49 A0 00", Value::Float(806.5)),
        ("/501/0/2", "19 03 26", Value::Float(806.0)),
        ("/3/0/0", "7F 62 4F 70 62 65 6E FF", s("Open")),
    ];
    for (path, bytes, value) in cases {
        assert_eq!(
            decode(ContentFormat::Cbor, &p(path), &hex(bytes), &reg).unwrap(),
            vec![rec(path, value)],
            "{bytes} at {path}"
        );
    }
}

/// A resource the model does not know keeps the item's own type.
#[test]
fn unknown_resource_keeps_the_natural_type() {
    let reg = Registry::core();
    let path = "/26241/0/7";
    for (bytes, value) in [
        ("2B", Value::Integer(-12)),
        ("1B FF FF FF FF FF FF FF FF", Value::Unsigned(u64::MAX)),
        ("F9 3E 00", Value::Float(1.5)),
        ("F5", Value::Boolean(true)),
        ("62 68 69", s("hi")),
        ("42 01 02", Value::Opaque(vec![1, 2])),
        ("C1 1A 51 82 42 8F", Value::Time(1_367_491_215)),
    ] {
        assert_eq!(
            decode(ContentFormat::Cbor, &p(path), &hex(bytes), &reg).unwrap(),
            vec![rec(path, value)],
            "{bytes}"
        );
    }
}

/// Errors name the format, the offset and what the resource needed.
#[test]
fn wrong_types_and_malformed_items_are_refused_with_offset() {
    let reg = Registry::core();
    let err = |path: &str, bytes: &str| {
        decode(ContentFormat::Cbor, &p(path), &hex(bytes), &reg).unwrap_err()
    };
    // A text string for an Integer resource.
    let e = err("/3/0/9", "62 31 30");
    assert_eq!(e.format, ContentFormat::Cbor);
    assert!(
        e.reason.contains("Integer") && e.reason.contains("text string"),
        "{e}"
    );
    // A float for an Integer resource (Table 7.4.6-1: major type 0 or 1 only).
    assert!(err("/3/0/9", "F9 3E 00").reason.contains("integer"));
    // A negative number for an Unsigned Integer resource.
    assert!(err("/5/0/13", "20").reason.contains("unsigned"));
    // An integer past i64 for an Integer resource.
    assert!(err("/3/0/9", "1B FF FF FF FF FF FF FF FF")
        .reason
        .contains("64 bits"));
    // Tag 1 over a float is not a whole number of seconds.
    assert!(err("/3/0/13", "C1 F9 3E 00").reason.contains("time"));
    // An object link that is not object:instance.
    assert!(err("/501/0/48", "63 31 3A 78")
        .reason
        .contains("object:instance"));
    // A second item after the value: the offset is where it starts.
    let e = err("/3/0/9", "18 64 01");
    assert_eq!(e.offset, 2, "{e}");
    assert!(e.reason.contains("trailing"), "{e}");
    // A truncated item and an empty payload.
    assert!(err("/3/0/0", "74 4F 70").offset <= 3);
    assert_eq!(err("/3/0/0", "").offset, 0);
    // Not a single resource: an instance path.
    assert!(err("/3/0", "18 64")
        .reason
        .contains("single resource value"));
    // An array is no resource value.
    assert!(err("/26241/0/7", "82 01 02").reason.contains("array"));
}

#[test]
fn encoding_more_than_one_value_is_refused() {
    let reg = Registry::core();
    let records = [
        rec("/3/0/6/0", Value::Integer(1)),
        rec("/3/0/6/1", Value::Integer(5)),
    ];
    let e = encode(ContentFormat::Cbor, &p("/3/0/6"), &records, &reg).unwrap_err();
    assert!(e.to_string().contains("cbor (60)"), "{e}");
}

#[test]
fn content_format_60_is_named_cbor_and_carries_one_value() {
    assert_eq!(ContentFormat::from_code(60), Some(ContentFormat::Cbor));
    assert_eq!(ContentFormat::from_name("cbor"), Some(ContentFormat::Cbor));
    assert!(ContentFormat::Cbor.carries_single_value());
    assert!(!ContentFormat::Lwm2mCbor.carries_single_value());
}

// ---------------------------------------------------------------------------
// The client role (the virtual meter) over the wire
// ---------------------------------------------------------------------------

fn client() -> Client {
    let registry = Registry::core();
    let mut store = ObjectStore::new(registry.clone());
    store.create_instance(3, 0);
    store.set(Path::resource(3, 0, 9), Value::Integer(100));
    store.set(Path::resource(3, 0, 13), Value::Time(0));
    Client::new(
        support::client_config(&registry, std::time::Duration::from_secs(60)),
        store,
    )
}

fn exchange(client: &mut Client, request: &[u8]) -> Vec<u8> {
    let server: SocketAddr = SERVER.parse().unwrap();
    client.handle_datagram(Instant::now(), server, request);
    let reply = client.poll_transmit().expect("the client answers");
    assert!(client.poll_transmit().is_none(), "one answer only");
    reply.payload
}

/// CON GET /3/0/9, Accept 60 (option 17: delta 6, `61 3C`) -> ACK 2.05,
/// Content-Format 60 (option 12: `C1 3C`), payload `18 64` (100).
#[test]
fn client_answers_a_read_with_accept_60_in_cbor() {
    let mut c = client();
    let reply = exchange(&mut c, &hex("42 01 12 34 AB CD  B1 33 01 30 01 39  61 3C"));
    assert_eq!(
        hex::encode_upper(&reply),
        hex::encode_upper(hex("62 45 12 34 AB CD  C1 3C  FF 18 64"))
    );
}

/// Accept 60 on an object instance asks one value for many: 4.06.
#[test]
fn client_refuses_accept_60_for_an_instance_with_4_06() {
    let mut c = client();
    let reply = exchange(&mut c, &hex("42 01 12 36 AB CF  B1 33 01 30  61 3C"));
    assert_eq!(reply[1], 0x86, "{}", hex::encode_upper(&reply));
}

/// CON PUT /3/0/13, Content-Format 60 (option 12 after Uri-Path: delta 1,
/// `11 3C`), payload tag 1 over 1367491215 -> ACK 2.04, stored as Time.
#[test]
fn client_takes_a_write_in_cbor() {
    let mut c = client();
    let reply = exchange(
        &mut c,
        &hex("42 03 12 35 AB CE  B1 33 01 30 02 31 33  11 3C  FF C1 1A 51 82 42 8F"),
    );
    assert_eq!(
        hex::encode_upper(&reply),
        hex::encode_upper(hex("62 44 12 35 AB CE"))
    );
    assert_eq!(
        c.store().get(&p("/3/0/13")),
        Some(&Value::Time(1_367_491_215))
    );
}
