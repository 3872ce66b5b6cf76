//! Property tests over every content format: typed round trips for records
//! that respect the object model's types, and decoders that never panic,
//! whatever bytes arrive.

use lwm2m::format::link::{encode_links, parse_links};
use lwm2m::format::{decode, encode};
use lwm2m::model::parse_ddf;
use lwm2m::{ContentFormat, Path, Record, Registry, ResourceType, Value};
use proptest::prelude::*;

const MULTI_VALUE: [ContentFormat; 5] = [
    ContentFormat::Tlv,
    ContentFormat::SenmlJson,
    ContentFormat::SenmlCbor,
    ContentFormat::Lwm2mJson,
    ContentFormat::Lwm2mCbor,
];

const OBJECTS: [u16; 9] = [0, 1, 3, 4, 5, 9, 19, 501, 504];

fn value(kind: ResourceType) -> BoxedStrategy<Value> {
    match kind {
        ResourceType::String | ResourceType::None => {
            any::<String>().prop_map(Value::String).boxed()
        }
        ResourceType::Corelnk => "(</[0-9]{1,4}(/[0-9]{1,3})?>(;[a-z]{1,4}=[0-9]{1,3})?,?){0,3}"
            .prop_map(Value::Corelnk)
            .boxed(),
        ResourceType::Integer => any::<i64>().prop_map(Value::Integer).boxed(),
        ResourceType::UnsignedInteger => any::<u64>().prop_map(Value::Unsigned).boxed(),
        ResourceType::Float => prop_oneof![
            any::<f64>().prop_filter("finite", |f| f.is_finite()),
            any::<f32>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(f64::from),
            (-1000i32..1000).prop_map(f64::from),
        ]
        .prop_map(Value::Float)
        .boxed(),
        ResourceType::Boolean => any::<bool>().prop_map(Value::Boolean).boxed(),
        ResourceType::Opaque => proptest::collection::vec(any::<u8>(), 0..40)
            .prop_map(Value::Opaque)
            .boxed(),
        ResourceType::Time => any::<i64>().prop_map(Value::Time).boxed(),
        ResourceType::Objlnk => (any::<u16>(), any::<u16>())
            .prop_map(|(o, i)| Value::Objlnk(o, i))
            .boxed(),
    }
}

/// Records for one object instance: each typed resource present or not,
/// multiple resources with up to three instances, all typed by the registry.
fn instance_records(object: u16, instance: u16) -> BoxedStrategy<Vec<Record>> {
    let reg = Registry::core();
    let per_resource: Vec<BoxedStrategy<Vec<Record>>> = reg
        .object(object)
        .unwrap()
        .resources
        .values()
        .filter(|d| d.kind != ResourceType::None && !d.operations.execute)
        .map(|d| {
            let path = Path::resource(object, instance, d.id);
            if d.multiple {
                proptest::collection::btree_map(0u16..6, value(d.kind), 0..3)
                    .prop_map(move |m| {
                        m.into_iter()
                            .map(|(ri, v)| Record::new(path.child(ri).unwrap(), v))
                            .collect()
                    })
                    .boxed()
            } else {
                proptest::option::of(value(d.kind))
                    .prop_map(move |v| v.into_iter().map(|v| Record::new(path, v)).collect())
                    .boxed()
            }
        })
        .collect();
    per_resource
        .prop_map(|v| v.into_iter().flatten().collect())
        .boxed()
}

fn object_and_records() -> impl Strategy<Value = (u16, Vec<Record>)> {
    proptest::sample::select(OBJECTS.to_vec()).prop_flat_map(|o| {
        (Just(o), instance_records(o, 0), instance_records(o, 7)).prop_map(|(o, mut a, b)| {
            a.extend(b);
            (o, a)
        })
    })
}

fn sorted(mut r: Vec<Record>) -> Vec<Record> {
    r.sort_by_key(|r| r.path);
    r
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Every multi-value format round-trips typed records read from an object
    /// (/O) and from an instance (/O/I).
    #[test]
    fn multi_value_formats_round_trip((object, records) in object_and_records()) {
        let reg = Registry::core();
        let records = sorted(records);
        for format in MULTI_VALUE {
            let base = Path::object(object);
            let bytes = encode(format, &base, &records, &reg).unwrap();
            let back = decode(format, &base, &bytes, &reg).unwrap();
            prop_assert_eq!(sorted(back), records.clone(), "{} at {}", format, base);

            let base = Path::instance(object, 7);
            let mine: Vec<Record> = records.iter().filter(|r| base.contains(&r.path)).cloned().collect();
            let bytes = encode(format, &base, &mine, &reg).unwrap();
            let back = decode(format, &base, &bytes, &reg).unwrap();
            prop_assert_eq!(sorted(back), mine, "{} at {}", format, base);
        }
    }

    /// Each single resource round-trips at its own path, in every format that
    /// can carry it (text and CBOR for all, opaque for Opaque resources).
    #[test]
    fn single_resources_round_trip_in_every_format((_, records) in object_and_records()) {
        let reg = Registry::core();
        for r in records {
            let base = r.path;
            let one = vec![r.clone()];
            let mut formats = MULTI_VALUE.to_vec();
            formats.push(ContentFormat::Text);
            formats.push(ContentFormat::Cbor);
            if matches!(r.value, Value::Opaque(_)) {
                formats.push(ContentFormat::Opaque);
            }
            for format in formats {
                let bytes = encode(format, &base, &one, &reg).unwrap();
                let back = decode(format, &base, &bytes, &reg).unwrap();
                prop_assert_eq!(&back, &one, "{} at {}", format, base);
            }
        }
    }

    /// Decoders never panic on arbitrary bytes, whatever the request path.
    #[test]
    fn decoders_never_panic_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256), base in 0usize..8) {
        let reg = Registry::core();
        let bases = ["/", "/3", "/3/0", "/3/0/7", "/3/0/7/1", "/5/0/0", "/26241/0", "/501/0/2"];
        let base: Path = bases[base].parse().unwrap();
        for format in ContentFormat::ALL {
            if let Err(e) = decode(format, &base, &bytes, &reg) {
                prop_assert_eq!(e.format, format);
                prop_assert!(e.offset <= bytes.len(), "offset {} past {} bytes: {}", e.offset, bytes.len(), e);
            }
        }
        let _ = parse_links(&String::from_utf8_lossy(&bytes));
        let _ = parse_ddf("random.xml", &String::from_utf8_lossy(&bytes));
    }

    /// Valid payloads with bytes changed, cut or inserted still never panic.
    #[test]
    fn decoders_never_panic_on_mutated_payloads(
        (object, records) in object_and_records(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4),
    ) {
        let reg = Registry::core();
        let base = Path::object(object);
        for format in MULTI_VALUE {
            let mut bytes = encode(format, &base, &sorted(records.clone()), &reg).unwrap();
            for (at, byte, op) in &edits {
                if bytes.is_empty() { break; }
                let i = at.index(bytes.len());
                match op {
                    0 => bytes[i] = *byte,
                    1 => bytes.truncate(i),
                    _ => bytes.insert(i, *byte),
                }
            }
            if let Err(e) = decode(format, &base, &bytes, &reg) {
                prop_assert!(e.offset <= bytes.len(), "{}", e);
            }
        }
    }

    /// Link lists survive encode -> parse unchanged.
    #[test]
    fn links_round_trip(links in proptest::collection::vec(
        ("/[0-9]{0,5}(/[0-9]{1,5}){0,3}", proptest::collection::vec(("[a-z]{1,6}", proptest::option::of("[ -~]{0,12}")), 0..4)),
        0..5,
    )) {
        let links: Vec<lwm2m::format::Link> = links
            .into_iter()
            .map(|(target, attributes)| lwm2m::format::Link { target, attributes })
            .collect();
        let text = encode_links(&links);
        prop_assert_eq!(parse_links(&text).unwrap(), links, "{}", text);
    }
}

/// Hostile CBOR: a byte string that claims 2^64-1 bytes, and nesting far past
/// any sane depth, must fail cleanly rather than allocate or overflow the stack.
#[test]
fn hostile_cbor_lengths_and_nesting_fail_cleanly() {
    let reg = Registry::core();
    let base: Path = "/3/0".parse().unwrap();
    let huge = [
        0x81, 0xA1, 0x08, 0x5B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00,
    ];
    assert!(decode(ContentFormat::SenmlCbor, &base, &huge, &reg).is_err());
    let huge_array = [0x9B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
    assert!(decode(ContentFormat::SenmlCbor, &base, &huge_array, &reg).is_err());
    let huge_map = [
        0xA1, 0x82, 0x03, 0x00, 0xBB, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    ];
    assert!(decode(ContentFormat::Lwm2mCbor, &base, &huge_map, &reg).is_err());
    let deep = vec![0x81u8; 100_000];
    assert!(decode(ContentFormat::SenmlCbor, &base, &deep, &reg).is_err());
    let mut deep_map = vec![0xA1u8, 0x03];
    for _ in 0..50_000 {
        deep_map.extend([0xA1, 0x00]);
    }
    assert!(decode(ContentFormat::Lwm2mCbor, &base, &deep_map, &reg).is_err());
    let deep_json = "[".repeat(100_000);
    assert!(decode(ContentFormat::SenmlJson, &base, deep_json.as_bytes(), &reg).is_err());
    let mut tlv = Vec::new();
    for _ in 0..10_000 {
        tlv.extend([0x08, 0x00, 0xFF]);
    }
    assert!(decode(ContentFormat::Tlv, &"/3".parse().unwrap(), &tlv, &reg).is_err());
}
