//! Spec vectors: the byte-exact examples the crates' tests check, copied
//! here as seeds (`corpus/<target>/spec-*`). Each names the test it comes
//! from; the test cites the spec section.

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType};
use lwm2m::format::{self, ContentFormat, Record};
use lwm2m::{Path, Value};

use crate::targets::format::{lwm2m_json_format, registry};

/// A seed file: `corpus/<target>/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    pub target: &'static str,
    pub name: String,
    pub bytes: Vec<u8>,
}

impl Seed {
    pub fn new(target: &'static str, name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        Seed {
            target,
            name: name.into(),
            bytes: bytes.into(),
        }
    }
}

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .map(|b| (b as char).to_digit(16).expect("hex digit") as u8)
        .collect();
    digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
}

/// lwm2m/tests/spec/formats.rs `DEVICE_TLV`: Core §7.4.3.1, Read /3/0.
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

/// lwm2m/tests/spec/formats.rs `DEVICE_SENML_JSON`: Core §7.4.4, Read /3/0.
const DEVICE_SENML_JSON: &str = r#"[{"bn":"/3/0/","n":"0","vs":"Open Mobile Alliance"},{"n":"1","vs":"Lightweight M2M Client"},{"n":"2","vs":"345000123"},{"n":"3","vs":"1.0"},{"n":"6/0","v":1},{"n":"6/1","v":5},{"n":"7/0","v":3800},{"n":"7/1","v":5000},{"n":"8/0","v":125},{"n":"8/1","v":900},{"n":"9","v":100},{"n":"10","v":15},{"n":"11/0","v":0},{"n":"13","v":1367491215},{"n":"14","vs":"+02:00"},{"n":"16","vs":"U"}]"#;

/// LwM2M 1.0 Core §6.4.4 (JSON, 11543), the Device object example.
const DEVICE_LWM2M_JSON: &str = r#"{"bn":"/3/0/","e":[{"n":"0","sv":"Open Mobile Alliance"},{"n":"1","sv":"Lightweight M2M Client"},{"n":"2","sv":"345000123"},{"n":"3","sv":"1.0"},{"n":"6/0","v":1},{"n":"6/1","v":5},{"n":"7/0","v":3800},{"n":"7/1","v":5000},{"n":"8/0","v":125},{"n":"8/1","v":900},{"n":"9","v":100},{"n":"10","v":15},{"n":"11/0","v":0},{"n":"13","v":1367491215},{"n":"14","sv":"+02:00"},{"n":"15","sv":"U"}]}"#;

/// The records of lwm2m/tests/spec/support/vectors.rs `device_records()` and
/// a few of every type, encoded by the library into each format.
fn sample_records() -> Vec<(Path, Vec<Record>)> {
    let p = |s: &str| s.parse::<Path>().expect("sample path");
    let r = |s: &str, v: Value| Record::new(p(s), v);
    let text = |s: &str| Value::String(s.into());
    vec![
        (
            p("/3/0"),
            vec![
                r("/3/0/0", text("Open Mobile Alliance")),
                r("/3/0/6/0", Value::Integer(1)),
                r("/3/0/6/1", Value::Integer(5)),
                r("/3/0/9", Value::Integer(100)),
                r("/3/0/13", Value::Time(1_367_491_215)),
                r("/3/0/14", text("+02:00")),
            ],
        ),
        (
            p("/501/0"),
            vec![
                r("/501/0/2", Value::Float(806.5)),
                r("/501/0/48", Value::Objlnk(26241, 0)),
            ],
        ),
        (
            p("/5/0"),
            vec![
                r("/5/0/0", Value::Opaque(vec![0, 1, 2, 255])),
                r("/5/0/13", Value::Unsigned(u64::MAX)),
                r("/5/0/14", Value::Boolean(true)),
            ],
        ),
        (
            p("/19/0"),
            vec![
                r("/19/0/0/0", Value::Opaque(vec![0xfb, 0xff])),
                r("/19/0/2", Value::Time(1_700_000_000)),
                r("/19/0/3", text("register dump")),
            ],
        ),
        (p("/3/0/9"), vec![r("/3/0/9", Value::Integer(-12))]),
    ]
}

fn encoded(format: ContentFormat, target: &'static str) -> Vec<Seed> {
    sample_records()
        .into_iter()
        .filter_map(|(base, records)| {
            let bytes = format::encode(format, &base, &records, registry()).ok()?;
            let name = format!("spec-encoded{}", base.to_string().replace('/', "-"));
            Some(Seed::new(target, name, bytes))
        })
        .collect()
}

fn formats() -> Vec<Seed> {
    let mut seeds = vec![
        Seed::new("tlv", "spec-7.4.3.1-device", hex(DEVICE_TLV)),
        // formats.rs tlv_multiple_resource_read_7_4_3_1
        Seed::new(
            "tlv",
            "spec-7.4.3.1-multiple-resource",
            hex("88 07 08 42 00 0E D8 42 01 13 88"),
        ),
        Seed::new(
            "tlv",
            "spec-7.4.3.1-bare-instances",
            hex("42 00 0E D8 42 01 13 88"),
        ),
        // formats.rs tlv_object_read_nests_object_instances_7_4_3
        Seed::new(
            "tlv",
            "spec-7.4.3-object-instances",
            hex("08 00 0F C1 00 01 C4 01 00 01 51 80 C1 06 01 C1 07 55
                 08 02 10 C1 00 05 C4 01 00 01 51 80 C1 06 00 C2 07 55 51"),
        ),
        // formats.rs tlv_sixteen_bit_ids_and_wide_lengths / value sizes (Appendix C)
        Seed::new("tlv", "spec-16-bit-id", {
            let mut v = hex("E8 16 76 0C");
            v.extend_from_slice(b"Band 20 only");
            v
        }),
        Seed::new(
            "tlv",
            "spec-appendix-c-integer-8",
            hex("C8 09 08 00 00 01 00 00 00 00 00"),
        ),
        Seed::new("tlv", "spec-appendix-c-float-4", hex("C4 02 40 20 00 00")),
        Seed::new(
            "tlv",
            "spec-appendix-c-float-8",
            hex("C8 02 08 3F B9 99 99 99 99 99 9A"),
        ),
        Seed::new("tlv", "spec-appendix-c-objlnk", hex("C4 30 66 81 00 03")),
        Seed::new("tlv", "spec-appendix-c-unsigned", hex("C2 0D FF FF")),
        Seed::new(
            "senml-json",
            "spec-7.4.4-device",
            DEVICE_SENML_JSON.as_bytes(),
        ),
        // formats.rs senml_json_value_keys_and_typing
        Seed::new(
            "senml-json",
            "spec-7.4.4-value-keys",
            br#"[{"bn":"/501/0/","n":"2","v":806},{"n":"1","v":6300.0},{"n":"48","vlo":"26241:0"},{"bn":"/5/0/","n":"14","vb":true,"bt":1.7e9}]"#.as_slice(),
        ),
        Seed::new(
            "senml-json",
            "spec-7.4.4-unknown-resources",
            br#"[{"n":"/26241/0/9","v":-3},{"n":"/26241/0/10","v":18446744073709551615},{"n":"/26241/0/11","v":0.5},{"n":"/26241/0/12","vd":"Zm8="}]"#.as_slice(),
        ),
        // formats.rs senml_cbor_labels_rfc8428_6
        Seed::new("senml-cbor", "spec-rfc8428-6-labels", {
            let mut v = hex("81 A3 21 65 2F 33 2F 30 2F 00 61 30 03 74");
            v.extend_from_slice(b"Open Mobile Alliance");
            v
        }),
        Seed::new(
            "senml-cbor",
            "spec-rfc8428-6-value-kinds",
            hex("84 A3 21 67 2F 35 30 31 2F 30 2F 00 61 32 02 F9 3E 00
                 A2 00 62 34 38 63 76 6C 6F 67 32 36 32 34 31 3A 30
                 A2 21 67 2F 35 2F 30 2F 31 34 04 F5
                 A2 21 69 2F 31 39 2F 30 2F 30 2F 30 08 42 01 02"),
        ),
        Seed::new(
            "senml-cbor",
            "spec-second-record-wrong-type",
            hex("82 A2 00 66 2F 33 2F 30 2F 39 02 01 A2 00 66 2F 33 2F 30 2F 39 03 61 78"),
        ),
        // formats.rs lwm2m_cbor_nested_and_array_keys_7_4_6
        Seed::new("lwm2m-cbor", "spec-7.4.6-array-keys", {
            let mut v = hex("A1 82 03 00 A3 00 74");
            v.extend_from_slice(b"Open Mobile Alliance");
            v.extend(hex("06 A2 00 01 01 05 0D 1A 51 82 42 8F"));
            v
        }),
        Seed::new("lwm2m-cbor", "spec-7.4.6-nested", {
            let mut v = hex("A1 03 A1 00 A4 00 74");
            v.extend_from_slice(b"Open Mobile Alliance");
            v.extend(hex("82 06 00 01 82 06 01 05 0D C1 1A 51 82 42 8F"));
            v
        }),
        Seed::new(
            "lwm2m-cbor",
            "spec-7.4.6-single",
            hex("A1 83 03 00 09 18 64"),
        ),
        Seed::new(
            "lwm2m-cbor",
            "spec-7.4.6-value-above-resource",
            hex("A2 83 03 00 09 01 82 03 00 05"),
        ),
        Seed::new(
            "lwm2m-json",
            "spec-1.0-6.4.4-device",
            DEVICE_LWM2M_JSON.as_bytes(),
        ),
        Seed::new(
            "lwm2m-json",
            "spec-1.0-6.4.4-types",
            br#"{"bn":"/","bt":1700000000,"e":[{"n":"501/0/2","v":806.5,"t":-5},{"n":"5/0/14","bv":true},{"n":"501/0/48","ov":"26241:0"},{"n":"19/0/0/0","sv":"AQI="}]}"#.as_slice(),
        ),
        Seed::new("opaque", "spec-7.4.2", vec![0, 1, 2, 255]),
    ];
    // formats_spec.rs cbor_single_values_7_4_6 (Core §7.4.6, RFC 8949 §3)
    for (name, bytes) in [
        (
            "string",
            "74 4F 70 65 6E 20 4D 6F 62 69 6C 65 20 41 6C 6C 69 61 6E 63 65",
        ),
        ("integer", "2B"),
        ("unsigned", "1B FF FF FF FF FF FF FF FF"),
        ("float-half", "F9 3E 00"),
        ("float-double", "FB 3F B9 99 99 99 99 99 9A"),
        ("boolean", "F5"),
        ("opaque", "44 00 01 02 FF"),
        ("time-tag-1", "C1 1A 51 82 42 8F"),
        ("time-untagged", "1A 51 82 42 8F"),
        ("objlnk", "67 32 36 32 34 31 3A 30"),
        ("indefinite-text", "7F 62 4F 70 62 65 6E FF"),
    ] {
        seeds.push(Seed::new("cbor", format!("spec-7.4.6-{name}"), hex(bytes)));
    }
    // formats.rs plain_text_values_7_4_1
    for (name, text) in [
        ("string", "Open Mobile Alliance"),
        ("integer", "-12"),
        ("time", "1367491215"),
        ("unsigned", "18446744073709551615"),
        ("float", "806.5"),
        ("boolean", "1"),
        ("objlnk", "26241:0"),
        ("base64", "Zm9vYmFy"),
    ] {
        seeds.push(Seed::new(
            "text",
            format!("spec-7.4.1-{name}"),
            text.as_bytes(),
        ));
    }
    for (format, target) in [
        (ContentFormat::Tlv, "tlv"),
        (ContentFormat::SenmlJson, "senml-json"),
        (ContentFormat::SenmlCbor, "senml-cbor"),
        (ContentFormat::Lwm2mCbor, "lwm2m-cbor"),
    ] {
        seeds.extend(encoded(format, target));
    }
    if let Some(f) = lwm2m_json_format() {
        seeds.extend(encoded(f, "lwm2m-json"));
    }
    seeds
}

fn links() -> Vec<Seed> {
    // formats.rs link_format_* (Core §6.2.1, §6.3.5, §5.2.7.3)
    [
        (
            "spec-6.2.1-register",
            r#"</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>,</4/0>,</5>,</26241>;ver=1.1,</26241/0>"#,
        ),
        (
            "spec-6.3.5-discover",
            "</3/0>;pmin=10;pmax=60,</3/0/1>,</3/0/7>;dim=2;gt=50;lt=42.2,</3/0/13>;obs",
        ),
        (
            "spec-5.2.7.3-bootstrap-discover",
            r#"</>;lwm2m=1.1,</0/0>;ssid=101;uri="coaps://server_1.example.com",</1/0>;ssid=101,</3/0>"#,
        ),
        ("spec-quoted", "</a>;title=\"x, \\\"y\\\"; z\" ,\n </b>"),
        ("spec-1.0-discover", r#"lwm2m="1.0",</0/0>,</1/0>;ssid=1"#),
        ("spec-alternate-path", r#"</lwm2m>;rt="oma.lwm2m";ct="60 110 112 11542",</lwm2m/1/0>,</lwm2m/3/0>"#),
    ]
    .into_iter()
    .map(|(name, text)| Seed::new("link-format", name, text.as_bytes()))
    .collect()
}

/// lwm2m/tests/spec/registration_spec.rs `post()`: `CON POST /rd?...` with token 0x0a.
pub fn register_datagram(
    mid: u16,
    path: &[&str],
    query: &[&str],
    objects: Option<&str>,
) -> Vec<u8> {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.code = MessageClass::Request(RequestType::Post);
    p.header.message_id = mid;
    p.set_token(vec![0x0a]);
    for s in path {
        p.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
    }
    for q in query {
        p.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
    }
    if let Some(objects) = objects {
        p.add_option(CoapOption::ContentFormat, vec![40]);
        p.payload = objects.as_bytes().to_vec();
    }
    p.to_bytes().expect("register datagram encodes")
}

fn registrations() -> Vec<Seed> {
    const OBJECTS: &str = "</1/0>,</3/0>";
    // registration_spec.rs registers_the_ts_does_not_allow / allows
    let cases: [(&str, &[&str], Option<&str>); 13] = [
        ("no-objects", &["lwm2m=1.1"], Some("")),
        ("version-9.9", &["lwm2m=9.9"], Some(OBJECTS)),
        ("version-word", &["lwm2m=eleven"], Some(OBJECTS)),
        ("uq-in-1.1", &["lwm2m=1.1", "b=UQ"], Some(OBJECTS)),
        ("q-in-1.0", &["lwm2m=1.0", "Q"], Some(OBJECTS)),
        ("um-in-1.0", &["lwm2m=1.0", "b=UM"], Some(OBJECTS)),
        (
            "security-listed",
            &["lwm2m=1.1"],
            Some("</0/0>,</1/0>,</3/0>"),
        ),
        (
            "oscore-listed",
            &["lwm2m=1.1"],
            Some("</1/0>,</3/0>,</21/0>"),
        ),
        ("1.0-uqs", &["lwm2m=1.0", "b=UQS"], Some(OBJECTS)),
        ("1.1-ut-q", &["lwm2m=1.1", "b=UT", "Q"], Some(OBJECTS)),
        ("1.2-n", &["lwm2m=1.2", "b=N"], Some(OBJECTS)),
        (
            "lifetime-max",
            &["lt=18446744073709551615", "sms=+15550100"],
            Some(OBJECTS),
        ),
        (
            "alternate-path",
            &["lwm2m=1.1"],
            Some(r#"</lwm2m>;rt="oma.lwm2m";ct="60 110 112",</lwm2m/1/0>,</lwm2m/3/0>"#),
        ),
    ];
    let mut seeds = Vec::new();
    for (name, query, objects) in cases {
        let mut q = vec!["ep=meter-1"];
        q.extend_from_slice(query);
        seeds.push(Seed::new(
            "registration-params",
            format!("spec-6.2.1-{name}"),
            register_datagram(0x200, &["rd"], &q, objects),
        ));
        let mut text = q.join("&").into_bytes();
        if let Some(objects) = objects {
            text.push(b'\n');
            text.extend_from_slice(objects.as_bytes());
        }
        seeds.push(Seed::new(
            "registration-params",
            format!("spec-6.2.1-{name}.text"),
            text,
        ));
    }
    seeds.push(Seed::new(
        "registration-params",
        "spec-6.2.2-update",
        register_datagram(0x201, &["rd", "5a3f"], &["lt=120", "b=U"], None),
    ));
    seeds
}

/// lwm2m/src/bootstrap/smartcard.rs `NOSEC_CARD`: Core Appendix G.3.3, one
/// NoSec account (a Security and a Server instance), both objects with the
/// implicit version.
const NOSEC_CARD: &str = "
    00 02 00 30
    00 00 00 00 17
    08 00 14
    C8 00 08 63 6F 61 70 3A 2F 2F 68
    C1 01 00  C1 02 03  C1 0A 01
    00 01 00 00 0F
    08 00 0C
    C1 00 01  C1 01 1E  C1 06 00  C1 07 55";

fn smartcard() -> Vec<Seed> {
    vec![Seed::new(
        "smartcard-bootstrap",
        "spec-nosec-card",
        hex(NOSEC_CARD),
    )]
}

fn at() -> Vec<Seed> {
    // rig/tests/bench/at_engine.rs: what modems say. Layout: control, command, 0, before, 0, answer.
    let seed = |name: &str, control: u8, command: &str, before: &[u8], answer: &[u8]| {
        let mut v = vec![control];
        v.extend_from_slice(command.as_bytes());
        v.push(0);
        v.extend_from_slice(before);
        v.push(0);
        v.extend_from_slice(answer);
        Seed::new("at-line", format!("spec-{name}"), v)
    };
    vec![
        seed(
            "imei-with-echo",
            0,
            "AT+CGSN",
            b"",
            b"AT+CGSN\r\r\n356938035643809\r\n\r\nOK\r\n",
        ),
        seed("bare-lf", 1, "AT+A", b"", b"one\ntwo\nOK\n"),
        seed("bare-cr", 2, "AT+B", b"", b"three\rOK\r"),
        seed(
            "urc-after-final",
            3,
            "AT",
            b"",
            b"\r\nOK\r\n\r\n+LWM2M: 1\r\n",
        ),
        seed(
            "urc-before",
            1,
            "AT+CGMI",
            b"\r\nNO CARRIER\r\n\r\n+CEREG: 1,5\r\n",
            b"\r\nmeterbench\r\n\r\nOK\r\n",
        ),
        seed(
            "answer-with-urc-prefix",
            0,
            "AT+CEREG?",
            b"",
            b"\r\n+CEREG: 0,1\r\n\r\n+LWM2M: registered\r\n\r\nOK\r\n",
        ),
        seed(
            "cme-text",
            0,
            "AT+CCID",
            b"",
            b"\r\n+CME ERROR: SIM not inserted\r\n",
        ),
        seed("cme-number", 1, "AT+CFUN=1", b"", b"\r\n+CME ERROR: 10\r\n"),
        seed("error", 2, "AT+NOPE", b"", b"\r\nERROR\r\n"),
        seed(
            "overlong",
            4 | 3,
            "AT+CGMR",
            b"",
            &[b"x".repeat(100).as_slice(), b"\r\n\r\nOK\r\n"].concat(),
        ),
        seed(
            "not-utf8",
            1,
            "AT+CSQ",
            b"\xff\xfe\r\n",
            b"\r\n+CSQ: 20,\xc399\r\n\r\nOK\r\n",
        ),
        seed(
            "wait-for-urc",
            0,
            "AT+LWM2MSTART",
            b"",
            b"\r\nOK\r\n\r\n+LWM2M: bootstrapped\r\n",
        ),
        seed(
            "accounts",
            3,
            "AT+LWM2MACC?",
            b"",
            b"\r\n+LWM2MACC: 101,\"coap://127.0.0.1:5683\",3,\"meter-1\",\"ab12\"\r\n\r\nOK\r\n",
        ),
    ]
}

/// dtls/src/record.rs tests `hello()`: a ClientHello as OpenSSL 3 sends it
/// (trimmed), offering TLS_PSK_WITH_AES_128_CCM_8 (RFC 6347 §4.2.1).
fn client_hello(cookie: &[u8], record_seq: u8, message_seq: u8) -> Vec<u8> {
    let mut body = vec![0xfe, 0xfd];
    body.extend_from_slice(&[0x11; 32]);
    body.push(0);
    body.push(cookie.len() as u8);
    body.extend_from_slice(cookie);
    body.extend_from_slice(&[0, 2, 0xc0, 0xa8]);
    body.extend_from_slice(&[1, 0]);
    let len = body.len() as u32;
    let mut hs = vec![1];
    hs.extend_from_slice(&len.to_be_bytes()[1..]);
    hs.extend_from_slice(&[0, message_seq, 0, 0, 0]);
    hs.extend_from_slice(&len.to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![22, 0xfe, 0xff, 0, 0, 0, 0, 0, 0, 0, record_seq];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

fn dtls() -> Vec<Seed> {
    vec![
        Seed::new("dtls-record", "spec-client-hello", client_hello(&[], 0, 0)),
        Seed::new(
            "dtls-record",
            "spec-client-hello-cookie",
            client_hello(&[9; 16], 1, 1),
        ),
        // record.rs hello_verify_request_layout, alert_record_layout
        Seed::new(
            "dtls-record",
            "spec-hello-verify-request",
            hex("16 FE FF 00 00 00 00 00 00 00 07 00 11
                 03 00 00 05 00 00 00 00 00 00 00 05 FE FF 02 AA BB"),
        ),
        Seed::new(
            "dtls-record",
            "spec-fatal-alert",
            hex("15 FE FD 00 00 00 00 00 00 00 03 00 02 02 33"),
        ),
    ]
}

/// Every spec vector.
pub fn spec_vectors() -> Vec<Seed> {
    let mut seeds = formats();
    seeds.extend(links());
    seeds.extend(registrations());
    seeds.extend(at());
    seeds.extend(smartcard());
    seeds.extend(dtls());
    seeds
}

/// Writes seeds as `root/<target>/<name>`, replacing files of the same name;
/// returns how many were written.
pub fn write(root: &std::path::Path, seeds: &[Seed]) -> std::io::Result<usize> {
    for s in seeds {
        let dir = root.join(s.target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(&s.name), &s.bytes)?;
    }
    Ok(seeds.len())
}
