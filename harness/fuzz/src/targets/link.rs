//! The CoRE link-format parser (RFC 6690; LwM2M 1.1 Core §6.2.1, §5.2.7.3):
//! Register and Update object lists, Discover and Bootstrap-Discover
//! answers. The input is the payload; bytes that are not UTF-8 are replaced
//! (the callers refuse such payloads before parsing, but a lossy
//! conversion keeps mutated inputs useful).

use lwm2m::bootstrap::server::parse_discover;
use lwm2m::format::{encode_links, parse_links};

pub fn run(input: &[u8]) {
    let text = String::from_utf8_lossy(input);
    if let Ok(links) = parse_links(&text) {
        for link in &links {
            let _ = link.path();
            let _ = link.attribute("ct");
        }
        let again = encode_links(&links);
        let _ = parse_links(&again);
    }
    let _ = parse_discover(&text);
}

pub const DICTIONARY: &[&[u8]] = &[
    b"<",
    b">",
    b"</",
    b"</>",
    b"</3/0>",
    b"</0/0>",
    b"</65535/65535/65535/65535>",
    b",",
    b";",
    b"=",
    b"\"",
    b"\\",
    b"\\\"",
    b";rt=\"oma.lwm2m\"",
    b";ct=11543",
    b";ct=\"60 110 112 11542 11543\"",
    b";ver=1.1",
    b";lwm2m=1.1",
    b"lwm2m=\"1.0\",",
    b";ssid=101",
    b";uri=\"coap://127.0.0.1:5683\"",
    b";pmin=10",
    b";pmax=60",
    b";dim=2",
    b";obs",
    b" ",
    b"\n",
    b"\xc3\xa9",
];
