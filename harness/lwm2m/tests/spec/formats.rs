//! Byte-exact vectors for every content format. Where the LwM2M 1.1 Core
//! specification gives an example, the vector is that example and the test
//! cites its section; other vectors are derived by hand from the encoding rules
//! cited, to pin down sizes, widths and edge cases.

use crate::support::vectors::{device_records, hex, p, rec, s};
use lwm2m::format::link::{encode_links, parse_links, Link};
use lwm2m::format::{decode, encode};
use lwm2m::{ContentFormat, Path, Registry, Value};

/// LwM2M 1.1 Core §7.4.3.1, "Single Object Instance Request Example": Read /3/0 in TLV.
const DEVICE_TLV: &str = "
    C8 00 14 4F 70 65 6E 20 4D 6F 62 69 6C 65 20 41 6C 6C 69 61 6E 63 65
    C8 01 16 4C 69 67 68 74 77 65 69 67 68 74 20 4D 32 4D 20 43 6C 69 65 6E 74
    C8 02 09 33 34 35 30 30 30 31 32 33
    C3 03 31 2E 30
    86 06 41 00 01 41 01 05
    88 07 08 42 00 0E D8 42 01 13 88
    87 08 41 00 7D 42 01 03 84
    C1 09 64
    C1 0A 0F
    83 0B 41 00 00
    C4 0D 51 82 42 8F
    C6 0E 2B 30 32 3A 30 30
    C1 10 55";

#[test]
fn tlv_device_read_example_7_4_3_1_decodes_typed() {
    let reg = Registry::core();
    let recs = decode(ContentFormat::Tlv, &p("/3/0"), &hex(DEVICE_TLV), &reg).unwrap();
    assert_eq!(recs, device_records());
}

#[test]
fn tlv_device_read_example_7_4_3_1_encodes_byte_exact() {
    let reg = Registry::core();
    let bytes = encode(ContentFormat::Tlv, &p("/3/0"), &device_records(), &reg).unwrap();
    assert_eq!(hex::encode_upper(bytes), hex::encode_upper(hex(DEVICE_TLV)));
}

/// §7.4.3.1 reads one multiple resource: Read /3/0/7 answers the multiple-resource TLV alone.
#[test]
fn tlv_multiple_resource_read_7_4_3_1() {
    let reg = Registry::core();
    let bytes = hex("88 07 08 42 00 0E D8 42 01 13 88");
    let recs = decode(ContentFormat::Tlv, &p("/3/0/7"), &bytes, &reg).unwrap();
    assert_eq!(
        recs,
        vec![
            rec("/3/0/7/0", Value::Integer(3800)),
            rec("/3/0/7/1", Value::Integer(5000))
        ]
    );
    assert_eq!(
        encode(ContentFormat::Tlv, &p("/3/0/7"), &recs, &reg).unwrap(),
        bytes
    );
    // A client may also answer bare resource-instance TLVs (§7.4.3): accepted.
    let bare = decode(
        ContentFormat::Tlv,
        &p("/3/0/7"),
        &hex("42 00 0E D8 42 01 13 88"),
        &reg,
    )
    .unwrap();
    assert_eq!(bare, recs);
    // Reading one resource instance answers a resource-instance TLV.
    let one = encode(ContentFormat::Tlv, &p("/3/0/7/1"), &recs[1..], &reg).unwrap();
    assert_eq!(one, hex("42 01 13 88"));
    assert_eq!(
        decode(ContentFormat::Tlv, &p("/3/0/7/1"), &one, &reg).unwrap(),
        recs[1..]
    );
}

/// §7.4.3: reading an object gives object-instance TLVs (type 00, here with an
/// 8-bit length since the body is 15 bytes). Hand-derived for two Server instances.
#[test]
fn tlv_object_read_nests_object_instances_7_4_3() {
    let reg = Registry::core();
    let recs = vec![
        rec("/1/0/0", Value::Integer(1)),
        rec("/1/0/1", Value::Integer(86400)),
        rec("/1/0/6", Value::Boolean(true)),
        rec("/1/0/7", s("U")),
        rec("/1/2/0", Value::Integer(5)),
        rec("/1/2/1", Value::Integer(86400)),
        rec("/1/2/6", Value::Boolean(false)),
        rec("/1/2/7", s("UQ")),
    ];
    let bytes = hex("08 00 0F C1 00 01 C4 01 00 01 51 80 C1 06 01 C1 07 55
                     08 02 10 C1 00 05 C4 01 00 01 51 80 C1 06 00 C2 07 55 51");
    assert_eq!(
        encode(ContentFormat::Tlv, &p("/1"), &recs, &reg).unwrap(),
        bytes
    );
    assert_eq!(
        decode(ContentFormat::Tlv, &p("/1"), &bytes, &reg).unwrap(),
        recs
    );
    // A write to /1/2 may carry the object-instance TLV too.
    let inst = decode(ContentFormat::Tlv, &p("/1/2"), &bytes[18..], &reg).unwrap();
    assert_eq!(inst, recs[4..]);
}

/// §7.4.3 type byte: bit 5 selects a 16-bit id, bits 4-3 a 1/2/3-byte length.
#[test]
fn tlv_sixteen_bit_ids_and_wide_lengths() {
    let reg = Registry::core();
    // Resource 5750 (16-bit id) of 501 with a 300-byte String: 0xF0 = resource, 16-bit id, 16-bit length.
    let long = "x".repeat(300);
    let bytes = encode(
        ContentFormat::Tlv,
        &p("/501/0/5750"),
        &[rec("/501/0/5750", s(&long))],
        &reg,
    )
    .unwrap();
    assert_eq!(bytes[..5], [0xF0, 0x16, 0x76, 0x01, 0x2C]);
    assert_eq!(bytes.len(), 305);
    // 70000 bytes of Opaque: 24-bit length (0xD8).
    let blob = vec![0xAB; 70_000];
    let bytes = encode(
        ContentFormat::Tlv,
        &p("/5/0/0"),
        &[rec("/5/0/0", Value::Opaque(blob.clone()))],
        &reg,
    )
    .unwrap();
    assert_eq!(bytes[..5], [0xD8, 0x00, 0x01, 0x11, 0x70]);
    let back = decode(ContentFormat::Tlv, &p("/5/0/0"), &bytes, &reg).unwrap();
    assert_eq!(back, vec![rec("/5/0/0", Value::Opaque(blob))]);
    // 16-bit id with an 8-bit length: 0xE8.
    let bytes = encode(
        ContentFormat::Tlv,
        &p("/501/0"),
        &[rec("/501/0/5750", s("Band 20 only"))],
        &reg,
    )
    .unwrap();
    assert_eq!(bytes[..4], [0xE8, 0x16, 0x76, 0x0C]);
}

/// Appendix C / §7.4.3: integers in 1, 2, 4 or 8 bytes, floats in 4 or 8,
/// booleans in 1, object links in 4, time as an integer.
#[test]
fn tlv_value_sizes_follow_appendix_c() {
    let reg = Registry::core();
    let one =
        |path: &str, v: Value| encode(ContentFormat::Tlv, &p(path), &[rec(path, v)], &reg).unwrap();
    assert_eq!(one("/3/0/9", Value::Integer(-1)), hex("C1 09 FF"));
    assert_eq!(one("/3/0/9", Value::Integer(128)), hex("C2 09 00 80"));
    assert_eq!(
        one("/3/0/9", Value::Integer(-32769)),
        hex("C4 09 FF FF 7F FF")
    );
    assert_eq!(
        one("/3/0/9", Value::Integer(1 << 40)),
        hex("C8 09 08 00 00 01 00 00 00 00 00")
    );
    assert_eq!(one("/5/0/13", Value::Unsigned(255)), hex("C1 0D FF"));
    assert_eq!(
        one("/5/0/13", Value::Unsigned(u64::MAX)),
        hex("C8 0D 08 FF FF FF FF FF FF FF FF")
    );
    assert_eq!(one("/501/0/2", Value::Float(2.5)), hex("C4 02 40 20 00 00"));
    assert_eq!(
        one("/501/0/2", Value::Float(0.1)),
        hex("C8 02 08 3F B9 99 99 99 99 99 9A")
    );
    assert_eq!(one("/1/0/6", Value::Boolean(true)), hex("C1 06 01"));
    assert_eq!(
        one("/501/0/48", Value::Objlnk(26241, 3)),
        hex("C4 30 66 81 00 03")
    );
    assert_eq!(one("/3/0/13", Value::Time(0)), hex("C1 0D 00"));

    let dec = |path: &str, bytes: &str| decode(ContentFormat::Tlv, &p(path), &hex(bytes), &reg);
    assert_eq!(
        dec("/501/0/48", "C4 30 66 81 00 03").unwrap()[0].value,
        Value::Objlnk(26241, 3)
    );
    assert_eq!(
        dec("/5/0/13", "C2 0D FF FF").unwrap()[0].value,
        Value::Unsigned(65535)
    );
    assert_eq!(
        dec("/3/0/9", "C2 09 FF FF").unwrap()[0].value,
        Value::Integer(-1)
    );
    // Unknown resources stay Opaque.
    assert_eq!(
        dec("/26241/0/7", "C2 07 01 02").unwrap()[0].value,
        Value::Opaque(vec![1, 2])
    );
}

#[test]
fn tlv_errors_name_format_and_offset() {
    let reg = Registry::core();
    let dec = |path: &str, bytes: &str| {
        decode(ContentFormat::Tlv, &p(path), &hex(bytes), &reg).unwrap_err()
    };
    // An integer of 3 bytes at the second TLV (offset 3, value at 5).
    let e = dec("/3/0", "C1 09 64 C3 0A 00 00 0F");
    assert_eq!((e.format, e.offset), (ContentFormat::Tlv, 5), "{e}");
    assert!(e.reason.contains("1, 2, 4 or 8"), "{e}");
    // Length runs past the end.
    let e = dec("/3/0", "C1 09 64 C8 00 10 41");
    assert_eq!(e.offset, 3, "{e}");
    // Truncated header.
    let e = dec("/3/0", "E8 01");
    assert_eq!(e.offset, 0, "{e}");
    // Boolean out of range.
    let e = dec("/1/0/6", "C1 06 02");
    assert!(e.reason.contains("0 or 1"), "{e}");
    // Wrong id for the request path.
    let e = dec("/3/0/9", "C1 0A 0F");
    assert!(e.reason.contains("request path"), "{e}");
    // Invalid UTF-8 in a String.
    let e = dec("/3/0", "C1 00 64 C2 01 41 FF");
    assert_eq!(e.offset, 6, "{e}");
    assert_eq!(
        e.to_string(),
        "tlv (11542) payload, byte 6: /3/0/1: String value is not UTF-8"
    );
}

/// LwM2M 1.1 Core §7.4.4, SenML JSON example: Read /3/0 (whitespace removed).
const DEVICE_SENML_JSON: &str = r#"[{"bn":"/3/0/","n":"0","vs":"Open Mobile Alliance"},
{"n":"1","vs":"Lightweight M2M Client"},
{"n":"2","vs":"345000123"},
{"n":"3","vs":"1.0"},
{"n":"6/0","v":1},
{"n":"6/1","v":5},
{"n":"7/0","v":3800},
{"n":"7/1","v":5000},
{"n":"8/0","v":125},
{"n":"8/1","v":900},
{"n":"9","v":100},
{"n":"10","v":15},
{"n":"11/0","v":0},
{"n":"13","v":1367491215},
{"n":"14","vs":"+02:00"},
{"n":"16","vs":"U"}]"#;

#[test]
fn senml_json_device_example_7_4_4() {
    let reg = Registry::core();
    let recs = decode(
        ContentFormat::SenmlJson,
        &p("/3/0"),
        DEVICE_SENML_JSON.as_bytes(),
        &reg,
    )
    .unwrap();
    assert_eq!(recs, device_records());
    let compact: String = DEVICE_SENML_JSON.chars().filter(|c| *c != '\n').collect();
    let bytes = encode(ContentFormat::SenmlJson, &p("/3/0"), &recs, &reg).unwrap();
    assert_eq!(String::from_utf8(bytes).unwrap(), compact);
}

/// §7.4.4 value keys: vb, vd (base64url, RFC 8428 §4.3), vlo, and numbers typed by the model.
#[test]
fn senml_json_value_keys_and_typing() {
    let reg = Registry::core();
    let recs = vec![
        rec("/19/0/0/0", Value::Opaque(vec![0xfb, 0xff])),
        rec("/19/0/2", Value::Time(1_700_000_000)),
        rec("/19/0/3", s("register dump")),
    ];
    let bytes = encode(ContentFormat::SenmlJson, &p("/19/0"), &recs, &reg).unwrap();
    assert_eq!(
        String::from_utf8(bytes.clone()).unwrap(),
        r#"[{"bn":"/19/0/","n":"0/0","vd":"-_8"},{"n":"2","v":1700000000},{"n":"3","vs":"register dump"}]"#
    );
    assert_eq!(
        decode(ContentFormat::SenmlJson, &p("/19/0"), &bytes, &reg).unwrap(),
        recs
    );

    let json = br#"[{"bn":"/501/0/","n":"2","v":806},{"n":"1","v":6300.0},{"n":"48","vlo":"26241:0"},{"bn":"/1/0/","n":"6","vb":true,"bt":1.7e9}]"#;
    let recs = decode(ContentFormat::SenmlJson, &p("/"), json, &reg).unwrap();
    assert_eq!(
        recs,
        vec![
            rec("/501/0/2", Value::Float(806.0)),
            rec("/501/0/1", Value::Integer(6300)),
            rec("/501/0/48", Value::Objlnk(26241, 0)),
            rec("/1/0/6", Value::Boolean(true)),
        ]
    );
    // Unknown resources keep the natural type; standard base64 with padding is accepted too.
    let json = br#"[{"n":"/26241/0/9","v":-3},{"n":"/26241/0/10","v":18446744073709551615},{"n":"/26241/0/11","v":0.5},{"n":"/26241/0/12","vd":"Zm8="}]"#;
    let recs = decode(ContentFormat::SenmlJson, &p("/26241"), json, &reg).unwrap();
    let values: Vec<Value> = recs.into_iter().map(|r| r.value).collect();
    assert_eq!(
        values,
        vec![
            Value::Integer(-3),
            Value::Unsigned(u64::MAX),
            Value::Float(0.5),
            Value::Opaque(b"fo".to_vec())
        ]
    );
}

#[test]
fn senml_json_errors_point_at_the_record() {
    let reg = Registry::core();
    let dec = |base: &str, json: &str| {
        decode(ContentFormat::SenmlJson, &p(base), json.as_bytes(), &reg).unwrap_err()
    };
    let e = dec(
        "/3/0",
        r#"[{"bn":"/3/0/","n":"9","v":1}, {"n":"9","v":1.5}]"#,
    );
    assert_eq!((e.format, e.offset), (ContentFormat::SenmlJson, 31), "{e}");
    let e = dec("/3/0", r#"[{"n":"/4/0/0","v":1}]"#);
    assert!(e.reason.contains("outside the request path"), "{e}");
    let e = dec("/3/0", r#"[{"n":"/3/0/0","v":1}]"#);
    assert!(e.reason.contains("String"), "{e}");
    let e = dec("/3/0", r#"[{"n":"/3/0/9"}]"#);
    assert!(e.reason.contains("no value"), "{e}");
    let e = dec("/3/0", r#"[{"n":"/3/0/9","v":1} {"n":"/3/0/9","v":1}]"#);
    assert_eq!(e.offset, 22, "{e}");
    let e = dec("/3/0", "[{\"n\":\n\"/3/0/9\",\"v\":}]");
    assert_eq!(e.offset, 20, "{e}");
    let e = dec("/3/0", r#"[{"n":"/3/0/9","v":1,"x_":2}]"#);
    assert!(e.reason.contains("must-understand"), "{e}");
}

/// SenML CBOR (§7.4.5) with RFC 8428 §6 labels: -2 bn, 0 n, 3 vs. Hand-derived:
/// array(1) map(3) -2 "/3/0/" 0 "0" 3 "Open Mobile Alliance".
#[test]
fn senml_cbor_labels_rfc8428_6() {
    let reg = Registry::core();
    let recs = vec![rec("/3/0/0", s("Open Mobile Alliance"))];
    let bytes = encode(ContentFormat::SenmlCbor, &p("/3/0"), &recs, &reg).unwrap();
    let mut expected = hex("81 A3 21 65 2F 33 2F 30 2F 00 61 30 03 74");
    expected.extend_from_slice(b"Open Mobile Alliance");
    assert_eq!(bytes, expected);
    assert_eq!(
        decode(ContentFormat::SenmlCbor, &p("/3/0"), &bytes, &reg).unwrap(),
        recs
    );

    // v (2), vb (4), vd (8, byte string), "vlo"; a half-precision float for a Float resource.
    let bytes = hex("84 A3 21 67 2F 35 30 31 2F 30 2F 00 61 32 02 F9 3E 00
                     A2 00 62 34 38 63 76 6C 6F 67 32 36 32 34 31 3A 30
                     A2 21 66 2F 31 2F 30 2F 36 04 F5
                     A2 21 69 2F 31 39 2F 30 2F 30 2F 30 08 42 01 02");
    let recs = decode(ContentFormat::SenmlCbor, &p("/"), &bytes, &reg).unwrap();
    assert_eq!(
        recs,
        vec![
            rec("/501/0/2", Value::Float(1.5)),
            rec("/501/0/48", Value::Objlnk(26241, 0)),
            rec("/1/0/6", Value::Boolean(true)),
            rec("/19/0/0/0", Value::Opaque(vec![1, 2])),
        ]
    );
}

#[test]
fn senml_cbor_errors_point_at_the_record() {
    let reg = Registry::core();
    // Second record (offset 12) has vs for an Integer resource.
    let bytes = hex("82 A2 00 66 2F 33 2F 30 2F 39 02 01 A2 00 66 2F 33 2F 30 2F 39 03 61 78");
    let e = decode(ContentFormat::SenmlCbor, &p("/3/0"), &bytes, &reg).unwrap_err();
    assert_eq!((e.format, e.offset), (ContentFormat::SenmlCbor, 12), "{e}");
    // Truncated text inside the first record.
    let e = decode(
        ContentFormat::SenmlCbor,
        &p("/3/0"),
        &hex("81 A1 00 66 2F 33"),
        &reg,
    )
    .unwrap_err();
    assert_eq!(e.format, ContentFormat::SenmlCbor);
    // Not an array.
    let e = decode(ContentFormat::SenmlCbor, &p("/3/0"), &hex("A0"), &reg).unwrap_err();
    assert_eq!(e.offset, 0);
    assert!(e.reason.contains("array"), "{e}");
    // Trailing bytes.
    let e = decode(ContentFormat::SenmlCbor, &p("/3/0"), &hex("80 00"), &reg).unwrap_err();
    assert_eq!(e.offset, 1);
}

/// LwM2M CBOR (LwM2M 1.2 Core §7.4.6): nested maps keyed by ids, array keys for several levels.
#[test]
fn lwm2m_cbor_nested_and_array_keys_7_4_6() {
    let reg = Registry::core();
    let recs = vec![
        rec("/3/0/0", s("Open Mobile Alliance")),
        rec("/3/0/6/0", Value::Integer(1)),
        rec("/3/0/6/1", Value::Integer(5)),
        rec("/3/0/13", Value::Time(1_367_491_215)),
    ];
    // {[3, 0]: {0: "Open Mobile Alliance", 6: {0: 1, 1: 5}, 13: 1367491215}}
    let mut expected = hex("A1 82 03 00 A3 00 74");
    expected.extend_from_slice(b"Open Mobile Alliance");
    expected.extend(hex("06 A2 00 01 01 05 0D 1A 51 82 42 8F"));
    let bytes = encode(ContentFormat::Lwm2mCbor, &p("/3/0"), &recs, &reg).unwrap();
    assert_eq!(hex::encode(&bytes), hex::encode(&expected));
    assert_eq!(
        decode(ContentFormat::Lwm2mCbor, &p("/3/0"), &bytes, &reg).unwrap(),
        recs
    );

    // The fully nested form {3: {0: {0: ...}}} and a mixed one decode the same way.
    let mut nested = hex("A1 03 A1 00 A4 00 74");
    nested.extend_from_slice(b"Open Mobile Alliance");
    nested.extend(hex("82 06 00 01 82 06 01 05 0D C1 1A 51 82 42 8F"));
    assert_eq!(
        decode(ContentFormat::Lwm2mCbor, &p("/3"), &nested, &reg).unwrap(),
        recs
    );

    // A single resource: {[3, 0, 9]: 100}
    let one = encode(
        ContentFormat::Lwm2mCbor,
        &p("/3/0/9"),
        &[rec("/3/0/9", Value::Integer(100))],
        &reg,
    )
    .unwrap();
    assert_eq!(one, hex("A1 83 03 00 09 18 64"));

    // Errors: outside the base, and a value above resource level.
    let e = decode(
        ContentFormat::Lwm2mCbor,
        &p("/3/0"),
        &hex("A1 83 04 00 00 01"),
        &reg,
    )
    .unwrap_err();
    assert!(e.reason.contains("outside"), "{e}");
    let e = decode(
        ContentFormat::Lwm2mCbor,
        &p("/3"),
        &hex("A2 83 03 00 09 01 82 03 00 05"),
        &reg,
    )
    .unwrap_err();
    assert_eq!((e.format, e.offset), (ContentFormat::Lwm2mCbor, 6), "{e}");
}

/// Plain text §7.4.1: decimal numbers, booleans 0/1, objlnk "o:i", Opaque in base64.
#[test]
fn plain_text_values_7_4_1() {
    let reg = Registry::core();
    let cases: Vec<(&str, Value, &str)> = vec![
        ("/3/0/0", s("Open Mobile Alliance"), "Open Mobile Alliance"),
        ("/3/0/9", Value::Integer(-12), "-12"),
        ("/3/0/13", Value::Time(1_367_491_215), "1367491215"),
        ("/5/0/13", Value::Unsigned(u64::MAX), "18446744073709551615"),
        ("/501/0/2", Value::Float(806.5), "806.5"),
        ("/1/0/6", Value::Boolean(true), "1"),
        ("/501/0/48", Value::Objlnk(26241, 0), "26241:0"),
        ("/5/0/0", Value::Opaque(b"foobar".to_vec()), "Zm9vYmFy"),
    ];
    for (path, v, text) in cases {
        let r = vec![rec(path, v)];
        assert_eq!(
            encode(ContentFormat::Text, &p(path), &r, &reg).unwrap(),
            text.as_bytes(),
            "{path}"
        );
        assert_eq!(
            decode(ContentFormat::Text, &p(path), text.as_bytes(), &reg).unwrap(),
            r,
            "{path}"
        );
    }
    let e = decode(ContentFormat::Text, &p("/3/0/9"), b"12a", &reg).unwrap_err();
    assert!(e.reason.contains("integer"), "{e}");
    let e = decode(ContentFormat::Text, &p("/3/0"), b"1", &reg).unwrap_err();
    assert!(e.reason.contains("single resource"), "{e}");
    let e = decode(ContentFormat::Text, &p("/3/0/0"), b"ab\xffcd", &reg).unwrap_err();
    assert_eq!(e.offset, 2);
}

/// Opaque §7.4.2: raw bytes of one Opaque resource.
#[test]
fn opaque_carries_raw_bytes_7_4_2() {
    let reg = Registry::core();
    let r = vec![rec("/5/0/0", Value::Opaque(vec![0, 1, 2, 255]))];
    assert_eq!(
        encode(ContentFormat::Opaque, &p("/5/0/0"), &r, &reg).unwrap(),
        vec![0, 1, 2, 255]
    );
    assert_eq!(
        decode(ContentFormat::Opaque, &p("/5/0/0"), &[0, 1, 2, 255], &reg).unwrap(),
        r
    );
    assert!(decode(ContentFormat::Opaque, &p("/3/0/9"), &[1], &reg).is_err());
    assert!(encode(
        ContentFormat::Opaque,
        &p("/3/0/9"),
        &[rec("/3/0/9", Value::Integer(1))],
        &reg
    )
    .is_err());
}

/// Register's object list, LwM2M 1.1 Core §6.2.1 (with the root link carrying rt and ct).
#[test]
fn link_format_register_payload_6_2_1() {
    let text =
        r#"</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>,</4/0>,</5>,</26241>;ver=1.1,</26241/0>"#;
    let links = parse_links(text).unwrap();
    assert_eq!(links.len(), 7);
    assert_eq!(links[0].target, "/");
    assert_eq!(links[0].path(), None);
    assert_eq!(links[0].attribute("rt"), Some("oma.lwm2m"));
    assert_eq!(links[0].attribute("ct"), Some("11543"));
    assert_eq!(links[1].path(), Some(Path::instance(1, 0)));
    assert_eq!(links[5].attribute("ver"), Some("1.1"));
    assert_eq!(encode_links(&links), text);
}

/// Discover answers (§6.3.5 / §5.2.7.3): attributes with and without values, quoted URIs.
#[test]
fn link_format_discover_and_bootstrap_discover() {
    let text = r#"</3/0>;pmin=10;pmax=60,</3/0/1>,</3/0/7>;dim=2;gt=50;lt=42.2,</3/0/13>;obs"#;
    let links = parse_links(text).unwrap();
    assert_eq!(links[2].attribute("dim"), Some("2"));
    assert!(links[3].has_attribute("obs"));
    assert_eq!(links[3].attributes, vec![("obs".to_string(), None)]);
    assert_eq!(encode_links(&links), text);

    let text = r#"</>;lwm2m=1.1,</0/0>;ssid=101;uri="coaps://server_1.example.com",</1/0>;ssid=101,</3/0>"#;
    let links = parse_links(text).unwrap();
    assert_eq!(
        links[1].attribute("uri"),
        Some("coaps://server_1.example.com")
    );
    assert_eq!(encode_links(&links), text);

    // Quoted values may hold separators and escapes; whitespace between links is tolerated.
    let links = parse_links("</a>;title=\"x, \\\"y\\\"; z\" ,\n </b>").unwrap();
    assert_eq!(links[0].attribute("title"), Some("x, \"y\"; z"));
    assert_eq!(links[1].target, "/b");
    assert_eq!(encode_links(&links), r#"</a>;title="x, \"y\"; z",</b>"#);
    assert_eq!(parse_links("").unwrap(), Vec::<Link>::new());
    let built = vec![Link::new("/5/0").with("ver", "1.0").with_flag("obs")];
    assert_eq!(encode_links(&built), "</5/0>;ver=1.0;obs");
}

#[test]
fn link_format_errors_give_offsets() {
    let e = parse_links("</1/0>,/3/0").unwrap_err();
    assert_eq!((e.format, e.offset), (ContentFormat::LinkFormat, 7));
    let e = parse_links("</1/0").unwrap_err();
    assert_eq!(e.offset, 0);
    let e = parse_links(r#"</1/0>;uri="coap://x"#).unwrap_err();
    assert_eq!(e.offset, 11);
    let e = parse_links("</1/0>;=3").unwrap_err();
    assert_eq!(e.offset, 7);
    let e = parse_links("</1/0> </2>").unwrap_err();
    assert_eq!(e.offset, 7);
}

#[test]
fn link_format_is_not_a_value_format() {
    let reg = Registry::core();
    assert!(encode(ContentFormat::LinkFormat, &p("/3/0"), &[], &reg).is_err());
    assert!(decode(ContentFormat::LinkFormat, &p("/3/0"), b"</3/0>", &reg).is_err());
}
