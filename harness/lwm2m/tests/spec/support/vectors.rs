//! Shorthands for writing byte-exact format vectors (formats.rs,
//! formats_spec.rs), and the Device instance the specifications' Read /3/0
//! examples (TLV, SenML, JSON) all encode.

use lwm2m::{Path, Record, Value};

pub fn p(s: &str) -> Path {
    s.parse().unwrap()
}

pub fn rec(path: &str, v: Value) -> Record {
    Record::new(p(path), v)
}

pub fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

/// Hex with any white space (the layout of the specification's tables).
pub fn hex(s: &str) -> Vec<u8> {
    hex::decode(s.split_whitespace().collect::<String>()).unwrap()
}

/// The Device object instance of the specifications' Read /3/0 examples
/// (e.g. LwM2M 1.1 Core §7.4.3.1 in TLV, §7.4.4 in SenML JSON).
pub fn device_records() -> Vec<Record> {
    vec![
        rec("/3/0/0", s("Open Mobile Alliance")),
        rec("/3/0/1", s("Lightweight M2M Client")),
        rec("/3/0/2", s("345000123")),
        rec("/3/0/3", s("1.0")),
        rec("/3/0/6/0", Value::Integer(1)),
        rec("/3/0/6/1", Value::Integer(5)),
        rec("/3/0/7/0", Value::Integer(3800)),
        rec("/3/0/7/1", Value::Integer(5000)),
        rec("/3/0/8/0", Value::Integer(125)),
        rec("/3/0/8/1", Value::Integer(900)),
        rec("/3/0/9", Value::Integer(100)),
        rec("/3/0/10", Value::Integer(15)),
        rec("/3/0/11/0", Value::Integer(0)),
        rec("/3/0/13", Value::Time(1_367_491_215)),
        rec("/3/0/14", s("+02:00")),
        rec("/3/0/16", s("U")),
    ]
}
