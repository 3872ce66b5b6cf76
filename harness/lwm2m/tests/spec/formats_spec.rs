//! Spec conformance of the content formats, each test byte-exact and named
//! for the section it checks: TLV Create without the Object Instance layer
//! (LwM2M 1.1 Core §6.3.6, §7.4.3), SenML base fields (RFC 8428 §4.1, §4.2,
//! §4.5, §4.6 and the §5.1 examples; CBOR labels §6), the LwM2M 1.0 JSON
//! format (OMA LwM2M 1.0 TS §6.4.4), TLV identifier and length widths
//! (§7.4.3), LwM2M CBOR nesting (LwM2M 1.2 Core §7.4.6) and CoRE link-format
//! quoted values (RFC 6690 §2).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support;
use crate::support::vectors::{device_records, hex, p, rec, s};
use crate::support::SERVER;
use lwm2m::client::{Client, ClientEvent, ObjectStore};
use lwm2m::format::link::{encode_links, parse_links, Link};
use lwm2m::format::{decode, decode_create, decode_timed, encode, TimedRecord};
use lwm2m::{ContentFormat, Path, Registry, Value};

fn timed(path: &str, v: Value, time: Option<f64>) -> TimedRecord {
    TimedRecord {
        record: rec(path, v),
        time,
        sum: None,
    }
}

// ---------------------------------------------------------------------------
// 1. Create without the Object Instance TLV (Core §6.3.6, §7.4.3)
// ---------------------------------------------------------------------------

fn client() -> Client {
    let registry = Registry::core();
    Client::new(
        support::client_config(&registry, Duration::from_secs(60)),
        ObjectStore::new(registry),
    )
}

/// Feeds one request datagram to the client and returns the one datagram it answers.
fn exchange(client: &mut Client, request: &[u8]) -> Vec<u8> {
    let server: SocketAddr = SERVER.parse().unwrap();
    client.handle_datagram(Instant::now(), server, request);
    let reply = client.poll_transmit().expect("the client answers");
    assert_eq!(reply.destination, server);
    assert!(client.poll_transmit().is_none(), "one answer only");
    reply.payload
}

/// Core §6.3.6 (Create: the server may leave the instance id to the client,
/// which answers 2.01 Created with the new instance in Location-Path) and
/// §7.4.3 (TLV ids are relative to the request path): `POST /19` with the
/// resource TLV `C1 01 05` alone, no Object Instance TLV around it, as Leshan
/// sends a Create without an instance id.
///
/// Request: CON POST, MID 0x1234, token AB CD, Uri-Path "19",
/// Content-Format 11542, payload C1 01 05 (resource 1 = 5).
/// Answer: ACK 2.01, same MID and token, Location-Path "19" "0".
#[test]
fn create_without_object_instance_tlv_core_6_3_6_answers_2_01_with_location_path() {
    let mut c = client();
    let reply = exchange(
        &mut c,
        &hex("42 02 12 34 AB CD  B2 31 39  12 2D 16  FF C1 01 05"),
    );
    assert_eq!(
        hex::encode_upper(&reply),
        hex::encode_upper(hex("62 41 12 34 AB CD  82 31 39  01 30"))
    );
    assert_eq!(
        c.store().get(&p("/19/0/1")),
        Some(&Value::Integer(5)),
        "Data Priority stored under the instance the client chose"
    );
    assert_eq!(
        c.poll_event(),
        Some(ClientEvent::Created {
            path: Path::instance(19, 0)
        })
    );

    // A second bare Create gets the next free id: Location-Path "19" "1".
    let reply = exchange(
        &mut c,
        &hex("42 02 12 35 AB CE  B2 31 39  12 2D 16  FF C1 01 07"),
    );
    assert_eq!(
        hex::encode_upper(&reply),
        hex::encode_upper(hex("62 41 12 35 AB CE  82 31 39  01 31"))
    );
    assert_eq!(c.store().get(&p("/19/1/1")), Some(&Value::Integer(7)));
}

/// The form with the instance layer still works (§7.4.3): the Object
/// Instance TLV `03 05` (id 5, 3 bytes) around `C1 01 05` creates /19/5,
/// and naming an existing instance is refused with 4.00.
#[test]
fn create_with_object_instance_tlv_core_6_3_6_uses_the_named_id() {
    let mut c = client();
    let reply = exchange(
        &mut c,
        &hex("42 02 12 34 AB CD  B2 31 39  12 2D 16  FF 03 05 C1 01 05"),
    );
    assert_eq!(
        hex::encode_upper(&reply),
        hex::encode_upper(hex("62 41 12 34 AB CD  82 31 39  01 35"))
    );
    assert_eq!(c.store().get(&p("/19/5/1")), Some(&Value::Integer(5)));
    let reply = exchange(
        &mut c,
        &hex("42 02 12 36 AB CF  B2 31 39  12 2D 16  FF 03 05 C1 01 06"),
    );
    assert_eq!(reply[1], 0x80, "4.00 Bad Request: /19/5 exists");
}

/// §7.4.3 at the format level: the bare resource TLVs decode under the
/// instance the caller picks; the generic decoder at an object path still
/// asks for Object Instance TLVs (a Read of /19 answers them), naming the
/// byte where the resource TLV sits.
#[test]
fn tlv_resource_level_payload_at_an_object_path_7_4_3() {
    let reg = Registry::core();
    let bare = hex("C1 01 05 C8 03 04 6D 65 74 65");
    let create = decode_create(ContentFormat::Tlv, &p("/19"), 4, &bare, &reg).unwrap();
    assert!(!create.names_instance);
    assert_eq!(
        create.records,
        vec![rec("/19/4/1", Value::Integer(5)), rec("/19/4/3", s("mete"))]
    );
    let named = decode_create(
        ContentFormat::Tlv,
        &p("/19"),
        4,
        &hex("03 02 C1 01 05"),
        &reg,
    )
    .unwrap();
    assert!(named.names_instance);
    assert_eq!(named.records, vec![rec("/19/2/1", Value::Integer(5))]);
    // SenML names its paths: the instance is always named.
    let senml = decode_create(
        ContentFormat::SenmlJson,
        &p("/19"),
        4,
        br#"[{"n":"/19/9/1","v":5}]"#,
        &reg,
    )
    .unwrap();
    assert!(senml.names_instance);
    assert_eq!(senml.records, vec![rec("/19/9/1", Value::Integer(5))]);

    let e = decode(ContentFormat::Tlv, &p("/19"), &bare, &reg).unwrap_err();
    assert_eq!((e.format, e.offset), (ContentFormat::Tlv, 0), "{e}");
    assert!(e.reason.contains("object instance TLV"), "{e}");
    let e = decode_create(ContentFormat::Tlv, &p("/19/0"), 4, &bare, &reg).unwrap_err();
    assert!(e.reason.contains("Create targets an object"), "{e}");
}

// ---------------------------------------------------------------------------
// 2. SenML base fields (RFC 8428 §4.1, §4.2, §4.5, §4.6; CBOR labels §6)
// ---------------------------------------------------------------------------

/// RFC 8428 §4.2/§4.6: the base value is added to the value (20 + 1.5 =
/// 21.5), and like every base field it applies to later records until
/// replaced (§4.1): the second record resolves to 20 + 2 = 22.
#[test]
fn senml_json_base_value_is_added_rfc8428_4_2() {
    let reg = Registry::core();
    let json = br#"[{"bn":"/3303/0/","bv":20,"n":"5700","v":1.5},{"n":"5700","v":2}]"#;
    let recs = decode(ContentFormat::SenmlJson, &p("/3303"), json, &reg).unwrap();
    assert_eq!(
        recs,
        vec![
            rec("/3303/0/5700", Value::Float(21.5)),
            rec("/3303/0/5700", Value::Integer(22))
        ]
    );
    // A known Integer resource: bv 100 + v -7 = 93.
    let json = br#"[{"bn":"/3/0/","bv":100,"n":"9","v":-7}]"#;
    assert_eq!(
        decode(ContentFormat::SenmlJson, &p("/3/0"), json, &reg).unwrap(),
        vec![rec("/3/0/9", Value::Integer(93))]
    );
    // The base value never stands in for a missing value, nor applies to strings.
    let json = br#"[{"bn":"/3/0/","bv":1,"n":"0","vs":"x"},{"n":"9"}]"#;
    let e = decode(ContentFormat::SenmlJson, &p("/3/0"), json, &reg).unwrap_err();
    assert!(e.reason.contains("no value"), "{e}");
    assert_eq!(e.offset, 40, "{e}");
}

/// The same in SenML CBOR with the RFC 8428 §6 labels (-2 bn, -5 bv, 0 n, 2 v):
/// [{-2: "/3303/0/", -5: 20, 0: "5700", 2: 1.5 (half)}, {0: "5700", 2: 2}].
#[test]
fn senml_cbor_base_value_label_minus_5_rfc8428_6() {
    let reg = Registry::core();
    let bytes = hex(
        "82 A4 21 68 2F 33 33 30 33 2F 30 2F 24 14 00 64 35 37 30 30 02 F9 3E 00
            A2 00 64 35 37 30 30 02 02",
    );
    assert_eq!(
        decode(ContentFormat::SenmlCbor, &p("/3303/0"), &bytes, &reg).unwrap(),
        vec![
            rec("/3303/0/5700", Value::Float(21.5)),
            rec("/3303/0/5700", Value::Integer(22))
        ]
    );
}

/// RFC 8428 §5.1.3 "Multiple Measurements" (base name, base time 1.276020076001e+09,
/// base unit, bver 5, relative times -5..-1 and none), adapted to LwM2M paths
/// (voltage -> /3316/0/5700, current -> /3317/0/5700); the times are those of
/// its resolved form, §5.1.4: base time + time, the base time alone where
/// a record has no time.
fn rfc8428_5_1_3_expected() -> Vec<TimedRecord> {
    let bt = 1.276020076001e9;
    let mut out = vec![timed("/3316/0/5700", Value::Float(120.1), Some(bt))];
    for (t, v) in [(-5, 1.2), (-4, 1.3), (-3, 1.4), (-2, 1.5), (-1, 1.6)] {
        out.push(timed(
            "/3317/0/5700",
            Value::Float(v),
            Some(bt + f64::from(t)),
        ));
    }
    out.push(timed("/3317/0/5700", Value::Float(1.7), Some(bt)));
    out
}

#[test]
fn senml_json_base_time_and_name_carry_over_rfc8428_5_1_3() {
    let reg = Registry::core();
    let json = br#"[{"bn":"/","bt":1.276020076001e+09,"bu":"A","bver":5,"n":"3316/0/5700","u":"V","v":120.1},
        {"n":"3317/0/5700","t":-5,"v":1.2},
        {"n":"3317/0/5700","t":-4,"v":1.3},
        {"n":"3317/0/5700","t":-3,"v":1.4},
        {"n":"3317/0/5700","t":-2,"v":1.5},
        {"n":"3317/0/5700","t":-1,"v":1.6},
        {"n":"3317/0/5700","v":1.7}]"#;
    let recs = decode_timed(ContentFormat::SenmlJson, &p("/"), json, &reg).unwrap();
    assert_eq!(recs, rfc8428_5_1_3_expected());
    assert_eq!(recs[1].time, Some(1_276_020_071.001));
    // Without bt or t there is no time.
    let plain = decode_timed(
        ContentFormat::SenmlJson,
        &p("/3/0"),
        br#"[{"n":"/3/0/9","v":1}]"#,
        &reg,
    )
    .unwrap();
    assert_eq!(plain[0].time, None);
}

/// §5.1.3 in SenML CBOR (labels §6: -2 bn, -3 bt, -4 bu, -1 bver, 0 n, 1 u, 2 v, 6 t).
#[test]
fn senml_cbor_base_time_and_name_carry_over_rfc8428_5_1_3() {
    let reg = Registry::core();
    let bytes = hex(
        "87 A7 21 61 2F 22 FB 41 D3 03 A1 5B 00 10 62 23 61 41 20 05 00 6B 33 33 31 36 2F 30 2F
         35 37 30 30 01 61 56 02 FB 40 5E 06 66 66 66 66 66
         A3 00 6B 33 33 31 37 2F 30 2F 35 37 30 30 06 24 02 FB 3F F3 33 33 33 33 33 33
         A3 00 6B 33 33 31 37 2F 30 2F 35 37 30 30 06 23 02 FB 3F F4 CC CC CC CC CC CD
         A3 00 6B 33 33 31 37 2F 30 2F 35 37 30 30 06 22 02 FB 3F F6 66 66 66 66 66 66
         A3 00 6B 33 33 31 37 2F 30 2F 35 37 30 30 06 21 02 FB 3F F8 00 00 00 00 00 00
         A3 00 6B 33 33 31 37 2F 30 2F 35 37 30 30 06 20 02 FB 3F F9 99 99 99 99 99 9A
         A2 00 6B 33 33 31 37 2F 30 2F 35 37 30 30 02 FB 3F FB 33 33 33 33 33 33",
    );
    let recs = decode_timed(ContentFormat::SenmlCbor, &p("/"), &bytes, &reg).unwrap();
    assert_eq!(recs, rfc8428_5_1_3_expected());
}

/// RFC 8428 §4.2/§4.6: the base sum is added to each record's sum (labels
/// -6 bs, 5 s): 1000 + 12.5 and 1000 + 13.5, carried to the second record.
#[test]
fn senml_base_sum_is_added_rfc8428_4_2() {
    let reg = Registry::core();
    let json = br#"[{"bn":"/3305/0/","bs":1000,"n":"5800","v":3.25,"s":12.5},{"n":"5800","v":3.5,"s":13.5}]"#;
    let cbor = hex(
        "82 A5 21 68 2F 33 33 30 35 2F 30 2F 25 19 03 E8 00 64 35 38 30 30 02 F9 42 80 05 F9 4A 40
            A3 00 64 35 38 30 30 02 F9 43 00 05 F9 4A C0",
    );
    for (format, payload) in [
        (ContentFormat::SenmlJson, json.to_vec()),
        (ContentFormat::SenmlCbor, cbor),
    ] {
        let recs = decode_timed(format, &p("/3305"), &payload, &reg).unwrap();
        let got: Vec<(Value, Option<f64>)> =
            recs.into_iter().map(|t| (t.record.value, t.sum)).collect();
        assert_eq!(
            got,
            vec![
                (Value::Float(3.25), Some(1012.5)),
                (Value::Float(3.5), Some(1013.5))
            ],
            "{format}"
        );
    }
    // A record with only a sum has no LwM2M value.
    let e = decode(
        ContentFormat::SenmlJson,
        &p("/3305"),
        br#"[{"n":"/3305/0/5805","s":2}]"#,
        &reg,
    )
    .unwrap_err();
    assert!(e.reason.contains("only a sum"), "{e}");
}

/// RFC 8428 §4.5.1: the name is base name + name, whatever each holds; a
/// new base name replaces the old one from its record on.
#[test]
fn senml_relative_names_concatenate_rfc8428_4_5_1() {
    let reg = Registry::core();
    let json = br#"[{"bn":"/3/","n":"0/9","v":1},{"n":"0/10","v":2},{"bn":"/3/0/11/","n":"0","v":3},{"bn":"/3/0/13","vb":false,"v":4}]"#;
    let e = decode(ContentFormat::SenmlJson, &p("/3"), json, &reg).unwrap_err();
    assert!(e.reason.contains("more than one value"), "{e}");
    let json = br#"[{"bn":"/3/","n":"0/9","v":1},{"n":"0/10","v":2},{"bn":"/3/0/11/","n":"0","v":3},{"bn":"/3/0/13","v":4}]"#;
    assert_eq!(
        decode(ContentFormat::SenmlJson, &p("/3"), json, &reg).unwrap(),
        vec![
            rec("/3/0/9", Value::Integer(1)),
            rec("/3/0/10", Value::Integer(2)),
            rec("/3/0/11/0", Value::Integer(3)),
            rec("/3/0/13", Value::Time(4)),
        ]
    );
}

// ---------------------------------------------------------------------------
// 3. LwM2M 1.0 JSON, content format 11543 (OMA LwM2M 1.0 TS §6.4.4)
// ---------------------------------------------------------------------------

/// OMA LwM2M 1.0 TS §6.4.4, the Read /3/0 example (whitespace removed; the
/// device values are those of the TLV example §6.4.3.1, Supported Binding
/// as resource 16).
const DEVICE_JSON: &str = concat!(
    r#"{"bn":"/3/0/","e":["#,
    r#"{"n":"0","sv":"Open Mobile Alliance"},"#,
    r#"{"n":"1","sv":"Lightweight M2M Client"},"#,
    r#"{"n":"2","sv":"345000123"},"#,
    r#"{"n":"3","sv":"1.0"},"#,
    r#"{"n":"6/0","v":1},"#,
    r#"{"n":"6/1","v":5},"#,
    r#"{"n":"7/0","v":3800},"#,
    r#"{"n":"7/1","v":5000},"#,
    r#"{"n":"8/0","v":125},"#,
    r#"{"n":"8/1","v":900},"#,
    r#"{"n":"9","v":100},"#,
    r#"{"n":"10","v":15},"#,
    r#"{"n":"11/0","v":0},"#,
    r#"{"n":"13","v":1367491215},"#,
    r#"{"n":"14","sv":"+02:00"},"#,
    r#"{"n":"16","sv":"U"}]}"#
);

#[test]
fn lwm2m_json_device_read_example_1_0_ts_6_4_4() {
    let reg = Registry::core();
    assert_eq!(
        ContentFormat::from_code(11543),
        Some(ContentFormat::Lwm2mJson)
    );
    assert_eq!(
        ContentFormat::from_name("lwm2m-json"),
        Some(ContentFormat::Lwm2mJson)
    );
    let recs = decode(
        ContentFormat::Lwm2mJson,
        &p("/3/0"),
        DEVICE_JSON.as_bytes(),
        &reg,
    )
    .unwrap();
    assert_eq!(recs, device_records());
    let bytes = encode(ContentFormat::Lwm2mJson, &p("/3/0"), &recs, &reg).unwrap();
    assert_eq!(String::from_utf8(bytes).unwrap(), DEVICE_JSON);
    // Pretty-printed, as the TS prints it, decodes the same.
    let pretty = DEVICE_JSON.replace(",{", ",\n  {").replace("[{", "[\n  {");
    assert_eq!(
        decode(ContentFormat::Lwm2mJson, &p("/3"), pretty.as_bytes(), &reg).unwrap(),
        device_records()
    );
}

/// 1.0 TS §6.4.4, the notification example with historical values: base
/// name a resource, base time 25462634, times relative to it.
#[test]
fn lwm2m_json_historical_notification_1_0_ts_6_4_4() {
    let reg = Registry::core();
    let json = br#"{"bn":"/3303/0/5700","bt":25462634,"e":[{"v":22.4,"t":-5},{"v":22.9,"t":-30},{"v":24.1,"t":-50}]}"#;
    let recs = decode_timed(ContentFormat::Lwm2mJson, &p("/3303/0/5700"), json, &reg).unwrap();
    assert_eq!(
        recs,
        vec![
            timed("/3303/0/5700", Value::Float(22.4), Some(25_462_629.0)),
            timed("/3303/0/5700", Value::Float(22.9), Some(25_462_604.0)),
            timed("/3303/0/5700", Value::Float(24.1), Some(25_462_584.0)),
        ]
    );
}

/// 1.0 TS §6.4.4 value fields: `v` numbers (typed by the model), `bv`
/// booleans, `ov` object links, `sv` strings and Opaque in base64; without
/// `bn` the names are full paths.
#[test]
fn lwm2m_json_value_fields_1_0_ts_6_4_4() {
    let reg = Registry::core();
    let recs = vec![
        rec("/1/0/6", Value::Boolean(true)),
        rec("/19/0/0/0", Value::Opaque(b"foobar".to_vec())),
        rec("/501/0/2", Value::Float(2.5)),
        rec("/501/0/48", Value::Objlnk(26241, 3)),
    ];
    let json = r#"{"e":[{"n":"/1/0/6","bv":true},{"n":"/19/0/0/0","sv":"Zm9vYmFy"},{"n":"/501/0/2","v":2.5},{"n":"/501/0/48","ov":"26241:3"}]}"#;
    assert_eq!(
        decode(ContentFormat::Lwm2mJson, &p("/"), json.as_bytes(), &reg).unwrap(),
        recs
    );
    let one = encode(ContentFormat::Lwm2mJson, &p("/1/0/6"), &recs[..1], &reg).unwrap();
    assert_eq!(
        String::from_utf8(one).unwrap(),
        r#"{"bn":"/1/0/6","e":[{"bv":true}]}"#
    );
    let enc = encode(ContentFormat::Lwm2mJson, &p("/19/0"), &recs[1..2], &reg).unwrap();
    assert_eq!(
        String::from_utf8(enc).unwrap(),
        r#"{"bn":"/19/0/","e":[{"n":"0/0","sv":"Zm9vYmFy"}]}"#
    );
    let enc = encode(ContentFormat::Lwm2mJson, &p("/501/0"), &recs[2..], &reg).unwrap();
    assert_eq!(
        String::from_utf8(enc).unwrap(),
        r#"{"bn":"/501/0/","e":[{"n":"2","v":2.5},{"n":"48","ov":"26241:3"}]}"#
    );
}

#[test]
fn lwm2m_json_errors_name_the_entry() {
    let reg = Registry::core();
    let dec = |json: &str| {
        decode(ContentFormat::Lwm2mJson, &p("/3/0"), json.as_bytes(), &reg).unwrap_err()
    };
    // The second entry (byte 39) holds a string for the Integer /3/0/9.
    let e = dec(r#"{"bn":"/3/0/","e":[{"n":"0","sv":"x"}, {"n":"9","sv":"y"}]}"#);
    assert_eq!((e.format, e.offset), (ContentFormat::Lwm2mJson, 39), "{e}");
    let e = dec(r#"{"bn":"/3/0/","e":[{"n":"9","v":1,"bv":true}]}"#);
    assert!(e.reason.contains("more than one value"), "{e}");
    let e = dec(r#"{"bn":"/3/0/"}"#);
    assert!(e.reason.contains("\"e\""), "{e}");
    let e = dec(r#"[{"n":"/3/0/9","v":1}]"#);
    assert!(e.reason.contains("JSON object"), "{e}");
    let e = dec("{\"bn\":\"/3/0/\",\n\"e\":[{\"n\":}]}");
    assert_eq!(e.offset, 25, "{e}");
    let e = dec(r#"{"bn":"/4/0/","e":[{"n":"0","v":1}]}"#);
    assert!(e.reason.contains("outside the request path"), "{e}");
}

// ---------------------------------------------------------------------------
// 4. TLV widths, LwM2M CBOR nesting, link-format quoting
// ---------------------------------------------------------------------------

/// Core §7.4.3 type byte: bit 5 set = 16-bit identifier, bits 4-3 = 0/8/16/24-bit
/// length field, and bits 2-0 carry the length only when bits 4-3 are 00
/// (otherwise they are ignored).
#[test]
fn tlv_sixteen_bit_ids_and_24_bit_lengths_7_4_3() {
    let reg = Registry::core();
    let dec = |path: &str, bytes: &str| decode(ContentFormat::Tlv, &p(path), &hex(bytes), &reg);
    // Object instance 256 (16-bit id, 8-bit length 3) holding Short Server ID 5.
    assert_eq!(
        dec("/1", "28 01 00 03 C1 00 05").unwrap(),
        vec![rec("/1/256/0", Value::Integer(5))]
    );
    // ... and its minimal encoding: 16-bit id, length 3 in bits 2-0.
    let bytes = encode(
        ContentFormat::Tlv,
        &p("/1"),
        &[rec("/1/256/0", Value::Integer(5))],
        &reg,
    )
    .unwrap();
    assert_eq!(bytes, hex("23 01 00 C1 00 05"));
    assert_eq!(
        dec("/1", "23 01 00 C1 00 05").unwrap(),
        vec![rec("/1/256/0", Value::Integer(5))]
    );
    // Resource 5750 with a 24-bit length field of 12 (type F8).
    assert_eq!(
        dec(
            "/501/0",
            "F8 16 76 00 00 0C 42 61 6E 64 20 32 30 20 6F 6E 6C 79"
        )
        .unwrap(),
        vec![rec("/501/0/5750", s("Band 20 only"))]
    );
    // A 16-bit id flag on an id below 256 is not minimal but valid (E1 00 09).
    assert_eq!(
        dec("/3/0", "E1 00 09 64").unwrap(),
        vec![rec("/3/0/9", Value::Integer(100))]
    );
    // Bits 2-0 are ignored once a length field is present: C9 = 8-bit length, low bits 001.
    assert_eq!(
        dec("/3/0", "C9 09 02 00 64").unwrap(),
        vec![rec("/3/0/9", Value::Integer(100))]
    );
    // Multiple resource 300 and resource instance 256, both 16-bit ids.
    assert_eq!(
        dec("/26241/0", "A8 01 2C 04 61 01 00 07").unwrap(),
        vec![rec("/26241/0/300/256", Value::Opaque(vec![7]))]
    );
    // A 16-bit id inside an object instance with a 24-bit length.
    let mut body = hex("F8 16 76 00 01 2C");
    body.extend(vec![b'x'; 300]);
    let mut inst = hex("38 00 07 00 01 32");
    inst.extend(&body);
    assert_eq!(
        dec("/501", &hex::encode(&inst)).unwrap(),
        vec![rec("/501/7/5750", s(&"x".repeat(300)))]
    );
    // id 65535 is reserved; a header cut inside its 24-bit length is an error at the TLV.
    let e = dec("/3/0", "E1 FF FF 00").unwrap_err();
    assert!(e.reason.contains("65535"), "{e}");
    let e = dec("/3/0", "C1 09 64 D8 0A 00 01").unwrap_err();
    assert_eq!(e.offset, 3, "{e}");
}

/// LwM2M 1.2 Core §7.4.6: nested maps one path level per map, the Read /3/0
/// answer fully nested `{3: {0: {0: "Open Mobile Alliance", ..., 6: {0: 1, 1: 5}, ...}}}`;
/// the encoder compresses the request path into one array key `{[3, 0]: {...}}`.
#[test]
fn lwm2m_cbor_nested_maps_1_2_core_7_4_6() {
    let reg = Registry::core();
    let nested = hex(
        "A1 03 A1 00 AD 00 74 4F 70 65 6E 20 4D 6F 62 69 6C 65 20 41 6C 6C 69 61 6E 63 65
         01 76 4C 69 67 68 74 77 65 69 67 68 74 20 4D 32 4D 20 43 6C 69 65 6E 74
         02 69 33 34 35 30 30 30 31 32 33 03 63 31 2E 30 06 A2 00 01 01 05
         07 A2 00 19 0E D8 01 19 13 88 08 A2 00 18 7D 01 19 03 84 09 18 64 0A 0F
         0B A1 00 00 0D 1A 51 82 42 8F 0E 66 2B 30 32 3A 30 30 10 61 55",
    );
    assert_eq!(
        decode(ContentFormat::Lwm2mCbor, &p("/3/0"), &nested, &reg).unwrap(),
        device_records()
    );
    assert_eq!(
        decode(ContentFormat::Lwm2mCbor, &p("/3"), &nested, &reg).unwrap(),
        device_records()
    );
    let compact = encode(
        ContentFormat::Lwm2mCbor,
        &p("/3/0"),
        &device_records(),
        &reg,
    )
    .unwrap();
    let mut expected = hex("A1 82 03 00");
    expected.extend(&nested[4..]);
    assert_eq!(hex::encode_upper(&compact), hex::encode_upper(&expected));
    // Several objects at the root: {1: {0: {1: 86400}}, 3: {0: {9: 100}}}.
    assert_eq!(
        decode(
            ContentFormat::Lwm2mCbor,
            &p("/"),
            &hex("A2 01 A1 00 A1 01 1A 00 01 51 80 03 A1 00 A1 09 18 64"),
            &reg
        )
        .unwrap(),
        vec![
            rec("/1/0/1", Value::Integer(86400)),
            rec("/3/0/9", Value::Integer(100))
        ]
    );
    // Indefinite-length maps at every level: {_ 3: {_ 0: {_ 9: 100}}}.
    assert_eq!(
        decode(
            ContentFormat::Lwm2mCbor,
            &p("/3/0/9"),
            &hex("BF 03 BF 00 BF 09 18 64 FF FF FF"),
            &reg
        )
        .unwrap(),
        vec![rec("/3/0/9", Value::Integer(100))]
    );
    // An array key below the top: {3: {[0, 6]: {1: 5}}}, and one down to a resource instance.
    assert_eq!(
        decode(
            ContentFormat::Lwm2mCbor,
            &p("/3/0/6"),
            &hex("A1 03 A1 82 00 06 A1 01 05"),
            &reg
        )
        .unwrap(),
        vec![rec("/3/0/6/1", Value::Integer(5))]
    );
    assert_eq!(
        decode(
            ContentFormat::Lwm2mCbor,
            &p("/3/0/6/1"),
            &hex("A1 84 03 00 06 01 05"),
            &reg
        )
        .unwrap(),
        vec![rec("/3/0/6/1", Value::Integer(5))]
    );
    // Paths deeper than four levels and negative keys are refused.
    let e = decode(
        ContentFormat::Lwm2mCbor,
        &p("/3"),
        &hex("A1 03 A1 84 00 06 01 02 05"),
        &reg,
    )
    .unwrap_err();
    assert!(e.reason.contains("deeper than four"), "{e}");
    let e = decode(
        ContentFormat::Lwm2mCbor,
        &p("/3"),
        &hex("A1 03 A1 20 05"),
        &reg,
    )
    .unwrap_err();
    assert!(e.reason.contains("not an id"), "{e}");
}

/// RFC 6690 §2 (link-extension = parmname [ "=" ( ptoken / quoted-string ) ])
/// and §5: a quoted value may hold "," and ";", which then separate neither
/// links nor attributes.
#[test]
fn link_format_quoted_values_with_separators_rfc6690_2() {
    let text = r#"</3/0>;rt="oma.lwm2m,x";ver=1.1,</4/0>"#;
    let links = parse_links(text).unwrap();
    assert_eq!(
        links,
        vec![
            Link::new("/3/0")
                .with("rt", "oma.lwm2m,x")
                .with("ver", "1.1"),
            Link::new("/4/0")
        ]
    );
    assert_eq!(encode_links(&links), text);

    let text = r#"</>;rt="a;b,c";ct="60 110 11543",</1/0>;title="x\"y,z";obs,</5>"#;
    let links = parse_links(text).unwrap();
    assert_eq!(links.len(), 3);
    assert_eq!(links[0].attribute("rt"), Some("a;b,c"));
    assert_eq!(links[0].attribute("ct"), Some("60 110 11543"));
    assert_eq!(links[1].attribute("title"), Some("x\"y,z"));
    assert!(links[1].has_attribute("obs"));
    assert_eq!(links[2].path(), Some(Path::object(5)));
    assert_eq!(encode_links(&links), text);
    // An unterminated quote holding a comma is an error at the quote, not a split link.
    let e = parse_links(r#"</3/0>;rt="a,</4/0>"#).unwrap_err();
    assert_eq!(e.offset, 10, "{e}");
}
