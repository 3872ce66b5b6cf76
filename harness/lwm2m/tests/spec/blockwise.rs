//! Block-wise transfer (RFC 7959) and critical options (RFC 7252 §5.4.1) in
//! both roles of `lwm2m`, byte-exact: each test builds the peer's datagrams
//! by hand ([`coap`]) and checks what the role under test sends back, byte
//! for byte where the role chooses nothing (message ids and tokens it does
//! choose are read from its own datagram first). The `pair_*` tests then run
//! the server role against the client role over a lossy link with a fake
//! clock, the quinn-proto way (see `tests/spec/pair.rs`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support;
use crate::support::{registry, Dir, CLIENT, SERVER};

use coap_lite::{CoapOption, Packet};
use lwm2m::client::{Client, ClientConfig, ClientEvent, ObjectStore};
use lwm2m::coap::block::representation_etag;
use lwm2m::coap::{summarize, wire};
use lwm2m::format::{self, ContentFormat, Record};
use lwm2m::server::{
    Content, DmRequest, RequestError, RequestId, Response, Server, ServerConfig, ServerEvent,
};
use lwm2m::{Path, Registry, Value};

// Message types and codes as they sit in the header (RFC 7252 §3, §12.1).
const CON: u8 = 0;
const NON: u8 = 1;
const ACK: u8 = 2;
const GET: u8 = 0x01;
const POST: u8 = 0x02;
const PUT: u8 = 0x03;
const CREATED: u8 = 0x41;
const CHANGED: u8 = 0x44;
const CONTENT: u8 = 0x45;
const CONTINUE: u8 = 0x5f;
const BAD_OPTION: u8 = 0x82;
const INCOMPLETE: u8 = 0x88;
const PROXYING_NOT_SUPPORTED: u8 = 0xa5;

// Option numbers (RFC 7252 §12.2, RFC 7641 §2, RFC 7959 §6, RFC 9177).
const IF_NONE_MATCH: u16 = 5;
const ETAG: u16 = 4;
const OBSERVE: u16 = 6;
const URI_PATH: u16 = 11;
const CONTENT_FORMAT: u16 = 12;
const URI_QUERY: u16 = 15;
const ACCEPT: u16 = 17;
const Q_BLOCK1: u16 = 19;
const BLOCK2: u16 = 23;
const BLOCK1: u16 = 27;
const SIZE2: u16 = 28;
const PROXY_URI: u16 = 35;
const SIZE1: u16 = 60;

/// Content-Format application/vnd.oma.lwm2m+tlv (11542) as a uint option value.
const TLV: &[u8] = &[0x2d, 0x16];

/// A CoAP message built by hand (RFC 7252 §3): header, token, options in
/// ascending order with delta/length nibbles and their extensions, payload
/// after the 0xFF marker.
fn coap(
    kind: u8,
    code: u8,
    mid: u16,
    token: &[u8],
    options: &[(u16, &[u8])],
    payload: &[u8],
) -> Vec<u8> {
    fn nibble(v: usize) -> (u8, Vec<u8>) {
        match v {
            0..=12 => (v as u8, Vec::new()),
            13..=268 => (13, vec![(v - 13) as u8]),
            _ => (14, ((v - 269) as u16).to_be_bytes().to_vec()),
        }
    }
    let [hi, lo] = mid.to_be_bytes();
    let mut b = vec![0x40 | (kind << 4) | token.len() as u8, code, hi, lo];
    b.extend_from_slice(token);
    let mut last = 0;
    for (number, value) in options {
        assert!(*number >= last, "options in ascending order");
        let (d, dext) = nibble(usize::from(number - last));
        let (l, lext) = nibble(value.len());
        b.push((d << 4) | l);
        b.extend(dext);
        b.extend(lext);
        b.extend_from_slice(value);
        last = *number;
    }
    if !payload.is_empty() {
        b.push(0xff);
        b.extend_from_slice(payload);
    }
    b
}

/// The message id and token of a datagram.
fn id_and_token(datagram: &[u8]) -> (u16, Vec<u8>) {
    let tkl = usize::from(datagram[0] & 0x0f);
    (
        u16::from_be_bytes([datagram[2], datagram[3]]),
        datagram[4..4 + tkl].to_vec(),
    )
}

fn decode(datagram: &[u8]) -> Packet {
    wire::decode(datagram).expect("a valid CoAP message")
}

fn option(p: &Packet, number: u16) -> Option<Vec<u8>> {
    p.get_first_option(CoapOption::from(number)).cloned()
}

/// /3/0 of a device whose strings make its TLV 148 bytes: three 64-byte
/// blocks, the last one of 20.
fn device_records() -> Vec<Record> {
    vec![
        Record::new(
            Path::resource(3, 0, 0),
            Value::String("Meterbench Smart Metering Industries Ltd".into()),
        ),
        Record::new(
            Path::resource(3, 0, 1),
            Value::String("MB-3PH-DIN-RAIL-ELECTRICITY-METER-0042".into()),
        ),
        Record::new(
            Path::resource(3, 0, 2),
            Value::String("SN-2024-0000-0000-0000-0000-0000-0001".into()),
        ),
        Record::new(
            Path::resource(3, 0, 3),
            Value::String("2.0.0-rc1+build.77310".into()),
        ),
    ]
}

fn tlv(records: &[Record]) -> Vec<u8> {
    format::encode(
        ContentFormat::Tlv,
        &Path::instance(3, 0),
        records,
        &registry(),
    )
    .unwrap()
}

// ---------------------------------------------------------------------------
// The server role against a device scripted byte by byte.
// ---------------------------------------------------------------------------

/// The server role and a device whose every datagram the test writes.
struct Bench {
    server: Server,
    now: Instant,
    device: SocketAddr,
}

impl Bench {
    fn new() -> Self {
        Bench {
            server: Server::new(ServerConfig {
                registry: registry(),
                default_format: ContentFormat::Tlv,
                seed: 7,
            }),
            now: Instant::now(),
            device: CLIENT.parse().unwrap(),
        }
    }

    /// A server with the device `dev` registered (objects 1/0 and 3/0).
    fn registered() -> Self {
        let mut b = Bench::new();
        let out = b.send(&register_block(0x0100, None, b"</1/0>,</3/0>"));
        assert_eq!(
            decode(&out[0]).header.code,
            coap_lite::MessageClass::from(CREATED)
        );
        b.events();
        b
    }

    /// The device sends `datagram`; returns what the server sent at once.
    fn send(&mut self, datagram: &[u8]) -> Vec<Vec<u8>> {
        self.server.handle_datagram(self.now, self.device, datagram);
        self.sent()
    }

    fn sent(&mut self) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| self.server.poll_transmit())
            .map(|t| {
                assert_eq!(t.destination, self.device);
                t.payload
            })
            .collect()
    }

    fn events(&mut self) -> Vec<ServerEvent> {
        std::iter::from_fn(|| self.server.poll_event()).collect()
    }

    /// Issues a request and returns its id with the one datagram it sent.
    fn request(&mut self, request: DmRequest) -> (RequestId, Vec<u8>) {
        let id = self.server.request(self.now, "dev", request).unwrap();
        let mut sent = self.sent();
        assert_eq!(sent.len(), 1);
        (id, sent.remove(0))
    }

    /// The device answers `request` with a 2.05 (ACK, same message id and
    /// token) carrying `options` and `payload`; returns what the server sent.
    fn answer(&mut self, request: &[u8], options: &[(u16, &[u8])], payload: &[u8]) -> Vec<Vec<u8>> {
        let (mid, token) = id_and_token(request);
        self.send(&coap(ACK, CONTENT, mid, &token, options, payload))
    }

    fn response(&mut self, id: RequestId) -> Result<Response, RequestError> {
        self.events()
            .into_iter()
            .find_map(|e| match e {
                ServerEvent::Response { id: i, result, .. } if i == id => Some(result),
                _ => None,
            })
            .expect("a response event")
    }
}

/// CON POST /rd?ep=dev&lt=300&lwm2m=1.1&b=U, Content-Format 40, token 0xa1,
/// with `block1` (and Size1 on block 0) when given.
fn register_block(mid: u16, block1: Option<(u8, usize)>, payload: &[u8]) -> Vec<u8> {
    let mut options: Vec<(u16, Vec<u8>)> = vec![(URI_PATH, b"rd".to_vec())];
    options.push((CONTENT_FORMAT, vec![40]));
    for q in ["ep=dev", "lt=300", "lwm2m=1.1", "b=U"] {
        options.push((URI_QUERY, q.as_bytes().to_vec()));
    }
    if let Some((value, size1)) = block1 {
        options.push((BLOCK1, if value == 0 { vec![] } else { vec![value] }));
        if value >> 4 == 0 {
            options.push((SIZE1, vec![size1 as u8]));
        }
    }
    let options: Vec<(u16, &[u8])> = options.iter().map(|(n, v)| (*n, v.as_slice())).collect();
    coap(CON, POST, mid, &[0xa1], &options, payload)
}

/// Read /3/0 in TLV: the request whose answer the Block2 tests split.
fn read_3_0() -> DmRequest {
    DmRequest::Read {
        path: Path::instance(3, 0),
        format: Some(ContentFormat::Tlv),
    }
}

/// The GET of /3/0 with Accept TLV the server sends, with `extra` options
/// (Block2, Size2) after those.
fn device_get(mid: u16, token: &[u8], extra: &[(u16, &[u8])]) -> Vec<u8> {
    let mut options: Vec<(u16, &[u8])> = vec![(URI_PATH, b"3"), (URI_PATH, b"0"), (ACCEPT, TLV)];
    options.extend_from_slice(extra);
    coap(CON, GET, mid, token, &options, b"")
}

/// The device answers the blocks after block 0 the way RFC 7959 §2.4
/// Figure 2 shows: each GET the server sends in `next` must ask for block
/// NUM (1, then 2) of /3/0 with Block2 NUM/0/64 and a token not in `tokens`
/// (§3.4), and gets that block of `body` tagged `etag`. Returns what the
/// server sent after the last block.
fn answer_device_blocks(
    b: &mut Bench,
    mut next: Vec<Vec<u8>>,
    etag: &[u8],
    body: &[u8],
    tokens: &mut Vec<Vec<u8>>,
) -> Vec<Vec<u8>> {
    for (num, answer, range) in [(1u8, 0x1au8, 64..128), (2, 0x22, 128..148)] {
        assert_eq!(next.len(), 1, "one request for block {num}");
        let (mid, token) = id_and_token(&next[0]);
        assert!(
            !tokens.contains(&token),
            "a new token per block (RFC 7959 §3.4)"
        );
        // The same request with Block2 NUM/0/64: 0x12, 0x22.
        assert_eq!(
            next[0],
            device_get(mid, &token, &[(BLOCK2, &[(num << 4) | 0x02])]),
            "request for block {num}: {}",
            summarize(&next[0])
        );
        next = b.answer(
            &next[0],
            &[(ETAG, etag), (CONTENT_FORMAT, TLV), (BLOCK2, &[answer])],
            &body[range],
        );
        tokens.push(token);
    }
    next
}

/// RFC 7959 §2.4, Figure 2 (a GET answered in blocks the server proposes):
/// the device answers Read /3/0 with Block2 0/1/64; the server asks for
/// blocks 1 and 2 with the same request plus Block2 NUM/0/64, each with a
/// new token, and reports one 2.05 whose TLV holds every record — not a
/// TLV decode error, not the records of the first 64 bytes.
#[test]
fn server_reassembles_a_read_answered_with_block2() {
    let mut b = Bench::registered();
    let body = tlv(&device_records());
    assert_eq!(body.len(), 148);
    let etag: &[u8] = &[0xe7, 0x01];
    let (id, get) = b.request(read_3_0());
    let (mid, token) = id_and_token(&get);
    assert_eq!(get, device_get(mid, &token, &[]));
    // Block 0 of 148 bytes: Block2 0/1/64 = 0x0a, Size2 148.
    let out = b.send(&coap(
        ACK,
        CONTENT,
        mid,
        &token,
        &[
            (ETAG, etag),
            (CONTENT_FORMAT, TLV),
            (BLOCK2, &[0x0a]),
            (SIZE2, &[148]),
        ],
        &body[..64],
    ));
    assert!(b.events().is_empty(), "no response before the last block");
    let next = answer_device_blocks(&mut b, out, etag, &body, &mut vec![token]);
    assert!(next.is_empty(), "nothing after the last block");
    assert_eq!(
        b.response(id),
        Ok(Response {
            code: 205,
            format: Some(ContentFormat::Tlv),
            content: Content::Records(device_records()),
        })
    );
}

/// RFC 7959 §2.4: the blocks of one body must come from one representation.
/// Block 1 carries another ETag (the value changed on the device), so the
/// server starts over with block 0 at the size the device chose (Block2
/// 0/0/64 and Size2 0, §4) and delivers the new representation whole.
#[test]
fn server_restarts_a_block2_read_when_the_etag_changes() {
    let mut b = Bench::registered();
    let old = tlv(&device_records());
    let mut records = device_records();
    records[3].value = Value::String("2.0.0-rc2+build.77900".into());
    let new = tlv(&records);
    assert_eq!(new.len(), old.len());
    let (id, get) = b.request(read_3_0());
    let out = b.answer(
        &get,
        &[(ETAG, &[1]), (CONTENT_FORMAT, TLV), (BLOCK2, &[0x0a])],
        &old[..64],
    );
    let out = b.answer(
        &out[0],
        &[(ETAG, &[2]), (CONTENT_FORMAT, TLV), (BLOCK2, &[0x1a])],
        &new[64..128],
    );
    assert!(b.events().is_empty(), "mixed blocks are not delivered");
    let (mid, token) = id_and_token(&out[0]);
    assert_eq!(
        out[0],
        device_get(mid, &token, &[(BLOCK2, &[0x02]), (SIZE2, &[])]),
        "restart at block 0: {}",
        summarize(&out[0])
    );
    let mut next = out;
    for (answer, range) in [(0x0au8, 0..64), (0x1a, 64..128), (0x22, 128..148)] {
        next = b.answer(
            &next[0],
            &[(ETAG, &[2]), (CONTENT_FORMAT, TLV), (BLOCK2, &[answer])],
            &new[range],
        );
    }
    assert!(next.is_empty());
    assert_eq!(
        b.response(id).map(|r| r.content),
        Ok(Content::Records(records))
    );
}

/// RFC 7959 §2.4: a representation that changes under every attempt is not
/// reassembled from mixed blocks; after the restarts the Read fails and says
/// why.
#[test]
fn server_gives_up_when_the_etag_keeps_changing() {
    let mut b = Bench::registered();
    let body = tlv(&device_records());
    let (id, get) = b.request(read_3_0());
    let mut next = vec![get];
    let mut tag = 0u8;
    for _ in 0..20 {
        let Some(request) = next.first() else { break };
        let asked = option(&decode(request), BLOCK2).unwrap_or_default();
        let num = asked.first().map_or(0, |v| v >> 4);
        let range = usize::from(num) * 64..(usize::from(num) * 64 + 64).min(body.len());
        let block = [(num << 4) | 0x08 | 0x02];
        tag += 1;
        next = b.answer(
            request,
            &[(ETAG, &[tag]), (CONTENT_FORMAT, TLV), (BLOCK2, &block)],
            &body[range],
        );
    }
    match b.response(id) {
        Err(RequestError::Decode(reason)) => {
            assert!(reason.contains("changed"), "{reason}");
            assert!(reason.contains("/3/0"), "{reason}");
        }
        other => panic!("expected a clear failure, got {other:?}"),
    }
}

/// RFC 7959 §2.2, §2.4: a block that does not continue the body — NUM past
/// its end, a first response that is not block 0, a 4.02 for a block asked
/// for — ends the Read with an error naming it; nothing panics, no partial
/// records are delivered.
#[test]
fn server_fails_a_block2_read_whose_blocks_do_not_continue_the_body() {
    let body = tlv(&device_records());
    let read = read_3_0();
    // Block 1 asked for, block 9 (0x92, past the 148 bytes) answered.
    let mut b = Bench::registered();
    let (id, get) = b.request(read.clone());
    let out = b.answer(
        &get,
        &[(CONTENT_FORMAT, TLV), (BLOCK2, &[0x0a])],
        &body[..64],
    );
    let out = b.answer(
        &out[0],
        &[(CONTENT_FORMAT, TLV), (BLOCK2, &[0x92])],
        &body[128..],
    );
    assert!(out.is_empty());
    match b.response(id) {
        Err(RequestError::Decode(reason)) => {
            assert!(reason.contains("does not continue"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // A first response at the largest NUM (2^20-1, M set, SZX 6: 0xfffffe).
    let mut b = Bench::registered();
    let (id, get) = b.request(read.clone());
    let out = b.answer(
        &get,
        &[(CONTENT_FORMAT, TLV), (BLOCK2, &[0xff, 0xff, 0xfe])],
        &[0u8; 1024],
    );
    assert!(out.is_empty());
    assert!(matches!(b.response(id), Err(RequestError::Decode(_))));
    // The device refuses block 1 with 4.02 Bad Option.
    let mut b = Bench::registered();
    let (id, get) = b.request(read);
    let out = b.answer(
        &get,
        &[(CONTENT_FORMAT, TLV), (BLOCK2, &[0x0a])],
        &body[..64],
    );
    let (mid, token) = id_and_token(&out[0]);
    b.send(&coap(ACK, BAD_OPTION, mid, &token, &[], b"past the end"));
    match b.response(id) {
        Err(RequestError::Decode(reason)) => assert!(reason.contains("4.02"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

/// RFC 7959 §2.6 (Observe and Block2): a notification carries the first
/// block; the server fetches the rest with GETs of the observed path that
/// carry no Observe option and a token of their own, then delivers the
/// whole value as one notification.
#[test]
fn server_completes_a_block2_notification_with_gets_without_observe() {
    let mut b = Bench::registered();
    let (id, get) = b.request(DmRequest::Observe {
        path: Path::instance(3, 0),
        format: Some(ContentFormat::Tlv),
    });
    let (mid, observe_token) = id_and_token(&get);
    let short = tlv(&device_records()[3..]);
    b.send(&coap(
        ACK,
        CONTENT,
        mid,
        &observe_token,
        &[(OBSERVE, &[5]), (CONTENT_FORMAT, TLV)],
        &short,
    ));
    assert!(b.response(id).is_ok());
    assert_eq!(b.server.observations("dev").len(), 1);
    // NON notification, Observe 6, first block of 148 bytes.
    let body = tlv(&device_records());
    let out = b.send(&coap(
        NON,
        CONTENT,
        0x7000,
        &observe_token,
        &[
            (ETAG, &[9]),
            (OBSERVE, &[6]),
            (CONTENT_FORMAT, TLV),
            (BLOCK2, &[0x0a]),
            (SIZE2, &[148]),
        ],
        &body[..64],
    ));
    assert_eq!(
        out.len(),
        1,
        "{:?}",
        out.iter().map(|d| summarize(d)).collect::<Vec<_>>()
    );
    answer_device_blocks(&mut b, out, &[9], &body, &mut vec![observe_token.clone()]);
    let notes: Vec<Vec<Record>> = b
        .events()
        .into_iter()
        .filter_map(|e| match e {
            ServerEvent::Notification {
                observation,
                records,
                ..
            } if observation == id => Some(records),
            _ => None,
        })
        .collect();
    assert_eq!(notes, vec![device_records()]);
    assert_eq!(
        b.server.observations("dev").len(),
        1,
        "the observation goes on"
    );
}

/// RFC 7959 §2.3, §2.5 (Figure 4's atomic PUT, here a Register): each block
/// but the last is answered 2.31 Continue echoing its Block1; the last one
/// gets the Register's 2.01 with Block1 0/2/16 echoed, and the registration
/// holds the whole object list, not the 16 bytes of block 0.
#[test]
fn server_reassembles_a_register_sent_in_block1_blocks() {
    let mut b = Bench::new();
    let list = b"</1/0>,</3/0>,</4/0>,</5/0>"; // 27 bytes: 16 + 11
    let out = b.send(&register_block(
        0x0200,
        Some((0x08, list.len())),
        &list[..16],
    ));
    assert_eq!(
        out,
        vec![coap(
            ACK,
            CONTINUE,
            0x0200,
            &[0xa1],
            &[(BLOCK1, &[0x08])],
            b""
        )]
    );
    assert!(b.events().is_empty() && b.server.registrations().is_empty());
    let out = b.send(&register_block(0x0201, Some((0x10, 0)), &list[16..]));
    let answer = decode(&out[0]);
    assert_eq!(answer.header.code, coap_lite::MessageClass::from(CREATED));
    assert_eq!(answer.header.message_id, 0x0201);
    assert_eq!(
        option(&answer, BLOCK1),
        Some(vec![0x10]),
        "Block1 1/0/16 echoed"
    );
    let location = lwm2m::coap::options::strings(&answer, CoapOption::LocationPath);
    assert_eq!(location[0], "rd");
    let reg = b.server.registration("dev").expect("registered");
    assert_eq!(
        reg.instances(),
        vec![
            Path::instance(1, 0),
            Path::instance(3, 0),
            Path::instance(4, 0),
            Path::instance(5, 0)
        ]
    );
}

/// RFC 7959 §2.9.2: a block that does not follow the last one received is
/// 4.08 Request Entity Incomplete, and nothing is registered. RFC 7252
/// §5.4.1: a critical option the registration interface does not implement
/// (Q-Block1, RFC 9177) is 4.02 Bad Option in a CON and a Reset in a NON;
/// an unknown elective option (2048) is ignored.
#[test]
fn server_refuses_block_gaps_and_unknown_critical_options_on_rd() {
    let mut b = Bench::new();
    let list = b"</1/0>,</3/0>,</4/0>,</5/0>,</9/0>"; // 34 bytes
    b.send(&register_block(
        0x0300,
        Some((0x08, list.len())),
        &list[..16],
    ));
    let out = b.send(&register_block(0x0301, Some((0x20, 0)), &list[32..]));
    let answer = decode(&out[0]);
    assert_eq!(
        answer.header.code,
        coap_lite::MessageClass::from(INCOMPLETE)
    );
    assert_eq!(answer.header.message_id, 0x0301);
    assert!(b.server.registrations().is_empty());

    let critical = coap(
        CON,
        POST,
        0x0302,
        &[0xb2],
        &[
            (URI_PATH, b"rd"),
            (CONTENT_FORMAT, &[40]),
            (URI_QUERY, b"ep=dev"),
            (Q_BLOCK1, &[0x08]),
        ],
        b"</1/0>",
    );
    let out = b.send(&critical);
    let answer = decode(&out[0]);
    assert_eq!(
        answer.header.code,
        coap_lite::MessageClass::from(BAD_OPTION)
    );
    assert_eq!(answer.header.message_id, 0x0302);
    assert_eq!(answer.get_token(), &[0xb2]);
    assert!(String::from_utf8_lossy(&answer.payload).contains("19"));
    assert!(b.server.registrations().is_empty());

    let mut non = critical.clone();
    non[0] = 0x51; // NON, TKL 1
    non[3] = 0x03;
    assert_eq!(b.send(&non), vec![vec![0x70, 0x00, 0x03, 0x03]], "Reset");
    assert!(b.server.registrations().is_empty());

    let elective = coap(
        CON,
        POST,
        0x0304,
        &[0xb4],
        &[
            (URI_PATH, b"rd"),
            (CONTENT_FORMAT, &[40]),
            (URI_QUERY, b"ep=dev"),
            (URI_QUERY, b"lwm2m=1.1"),
            (2048, &[1]),
        ],
        b"</1/0>",
    );
    let out = b.send(&elective);
    assert_eq!(
        decode(&out[0]).header.code,
        coap_lite::MessageClass::from(CREATED)
    );
}

// ---------------------------------------------------------------------------
// The client role against a server scripted byte by byte.
// ---------------------------------------------------------------------------

fn client_config(registry: &Registry) -> ClientConfig {
    support::client_config(registry, Duration::from_secs(3600))
}

fn meter_store(registry: &Registry) -> ObjectStore {
    let mut s = ObjectStore::new(registry.clone());
    s.set(Path::resource(1, 0, 0), Value::Integer(1));
    s.set(Path::resource(1, 0, 1), Value::Integer(3600));
    s.set(Path::resource(1, 0, 7), Value::String("U".into()));
    for r in device_records() {
        s.set(r.path, r.value);
    }
    s.set(Path::resource(3, 0, 9), Value::Integer(87));
    s.set(Path::resource(3, 0, 15), Value::String("UTC".into()));
    s.set(Path::resource(3, 0, 16), Value::String("U".into()));
    s
}

/// The client role answering a server whose every datagram the test writes.
struct Device {
    client: Client,
    now: Instant,
    server: SocketAddr,
}

impl Device {
    fn new() -> Self {
        let registry = registry();
        Device {
            client: Client::new(client_config(&registry), meter_store(&registry)),
            now: Instant::now(),
            server: SERVER.parse().unwrap(),
        }
    }

    fn send(&mut self, datagram: &[u8]) -> Vec<Vec<u8>> {
        self.client.handle_datagram(self.now, self.server, datagram);
        std::iter::from_fn(|| self.client.poll_transmit())
            .map(|t| t.payload)
            .collect()
    }

    fn events(&mut self) -> Vec<ClientEvent> {
        std::iter::from_fn(|| self.client.poll_event()).collect()
    }

    fn value(&self, path: Path) -> Option<Value> {
        self.client.store().get(&path).cloned()
    }
}

/// RFC 7959 §2.5 and Figure 4: a Write (PUT /3/0/15, text) in three Block1
/// blocks of 16 bytes. Blocks 0 and 1 get 2.31 Continue with their Block1
/// echoed (§2.3) and change nothing; block 2 (M=0) gets 2.04 Changed with
/// Block1 2/0/16 and the resource holds all 40 bytes — not the 16 of block 0.
#[test]
fn client_reassembles_a_write_sent_in_block1_blocks() {
    let mut d = Device::new();
    let value = b"Europe/Amsterdam;Europe/Berlin;Etc/UTC-1"; // 40 bytes
    let path: &[(u16, &[u8])] = &[(URI_PATH, b"3"), (URI_PATH, b"0"), (URI_PATH, b"15")];
    let put = |mid: u16, block1: &[u8], size1: Option<&[u8]>, body: &[u8]| {
        let mut options = path.to_vec();
        options.push((CONTENT_FORMAT, &[]));
        options.push((BLOCK1, block1));
        if let Some(s) = size1 {
            options.push((SIZE1, s));
        }
        coap(CON, PUT, mid, &[0x51, mid as u8], &options, body)
    };
    let out = d.send(&put(0x0010, &[0x08], Some(&[40]), &value[..16]));
    assert_eq!(
        out,
        vec![coap(
            ACK,
            CONTINUE,
            0x0010,
            &[0x51, 0x10],
            &[(BLOCK1, &[0x08])],
            b""
        )]
    );
    assert_eq!(
        d.value(Path::resource(3, 0, 15)),
        Some(Value::String("UTC".into()))
    );
    let out = d.send(&put(0x0011, &[0x18], None, &value[16..32]));
    assert_eq!(
        out,
        vec![coap(
            ACK,
            CONTINUE,
            0x0011,
            &[0x51, 0x11],
            &[(BLOCK1, &[0x18])],
            b""
        )]
    );
    let out = d.send(&put(0x0012, &[0x20], None, &value[32..]));
    assert_eq!(
        out,
        vec![coap(
            ACK,
            CHANGED,
            0x0012,
            &[0x51, 0x12],
            &[(BLOCK1, &[0x20])],
            b""
        )]
    );
    assert_eq!(
        d.value(Path::resource(3, 0, 15)),
        Some(Value::String(String::from_utf8(value.to_vec()).unwrap()))
    );
    let written: Vec<_> = d
        .events()
        .into_iter()
        .filter(|e| matches!(e, ClientEvent::Written { .. }))
        .collect();
    assert_eq!(
        written,
        vec![ClientEvent::Written {
            path: Path::resource(3, 0, 15)
        }]
    );
}

/// RFC 7959 §2.5: Execute arguments (LwM2M 1.1 Core §5.4.5) in two Block1
/// blocks reach the device whole, once.
#[test]
fn client_reassembles_execute_arguments_sent_in_block1_blocks() {
    let mut d = Device::new();
    let args = b"0='reason: scheduled maintenance'"; // 33 bytes: 32 + 1
    let post = |mid: u16, block1: &[u8], body: &[u8]| {
        coap(
            CON,
            POST,
            mid,
            &[0x52],
            &[
                (URI_PATH, b"3"),
                (URI_PATH, b"0"),
                (URI_PATH, b"4"),
                (BLOCK1, block1),
            ],
            body,
        )
    };
    // Block1 0/1/32 = 0x09, then 1/0/32 = 0x11.
    let out = d.send(&post(0x0020, &[0x09], &args[..32]));
    assert_eq!(
        out,
        vec![coap(
            ACK,
            CONTINUE,
            0x0020,
            &[0x52],
            &[(BLOCK1, &[0x09])],
            b""
        )]
    );
    assert!(
        d.events().is_empty(),
        "nothing executed before the last block"
    );
    let out = d.send(&post(0x0021, &[0x11], &args[32..]));
    assert_eq!(
        out,
        vec![coap(
            ACK,
            CHANGED,
            0x0021,
            &[0x52],
            &[(BLOCK1, &[0x11])],
            b""
        )]
    );
    assert_eq!(
        d.events(),
        vec![ClientEvent::Executed {
            path: Path::resource(3, 0, 4),
            arguments: Some(String::from_utf8(args.to_vec()).unwrap()),
        }]
    );
}

/// RFC 7959 §2.9.2: a block that does not start where the body received so
/// far ends is 4.08 Request Entity Incomplete; nothing is written.
#[test]
fn client_refuses_an_out_of_order_block_with_4_08() {
    let mut d = Device::new();
    let path: Vec<(u16, &[u8])> = vec![(URI_PATH, b"3"), (URI_PATH, b"0"), (URI_PATH, b"15")];
    let put = |mid: u16, block1: &'static [u8], body: &[u8]| {
        let mut options = path.clone();
        options.push((CONTENT_FORMAT, &[]));
        options.push((BLOCK1, block1));
        coap(CON, PUT, mid, &[0x53], &options, body)
    };
    d.send(&put(0x0030, &[0x08], &[b'x'; 16]));
    let out = d.send(&put(0x0031, &[0x28], &[b'y'; 16])); // block 2, block 1 missing
    let answer = decode(&out[0]);
    assert_eq!(
        answer.header.code,
        coap_lite::MessageClass::from(INCOMPLETE)
    );
    assert_eq!(answer.header.message_id, 0x0031);
    assert_eq!(option(&answer, BLOCK1), None);
    assert_eq!(
        d.value(Path::resource(3, 0, 15)),
        Some(Value::String("UTC".into()))
    );
}

/// RFC 7252 §5.4.1: a critical option the client does not implement —
/// If-None-Match (5), Q-Block2... here If-None-Match and Q-Block1 (19) — is
/// 4.02 Bad Option in a CON and a Reset in a NON; Proxy-Uri is 5.05 (§5.10.2);
/// an unknown elective option is ignored and the Read answered.
#[test]
fn client_refuses_unknown_critical_options() {
    let mut d = Device::new();
    let read = |mid: u16, extra: &[(u16, &[u8])]| {
        let mut options: Vec<(u16, &[u8])> = extra.to_vec();
        options.extend([(URI_PATH, &b"3"[..]), (URI_PATH, b"0"), (URI_PATH, b"0")]);
        options.sort_by_key(|(n, _)| *n);
        coap(CON, GET, mid, &[0x54], &options, b"")
    };
    for (mid, extra, code) in [
        (0x0040u16, (IF_NONE_MATCH, &[][..]), BAD_OPTION),
        (0x0041, (Q_BLOCK1, &[0x08][..]), BAD_OPTION),
        (
            0x0042,
            (PROXY_URI, &b"coap://x/3/0/0"[..]),
            PROXYING_NOT_SUPPORTED,
        ),
        (0x0043, (2048, &[7][..]), CONTENT),
    ] {
        let out = d.send(&read(mid, &[extra]));
        let answer = decode(&out[0]);
        assert_eq!(
            answer.header.code,
            coap_lite::MessageClass::from(code),
            "option {}",
            extra.0
        );
        assert_eq!(answer.header.message_id, mid);
    }
    // NON with Q-Block1: Reset, nothing else.
    let mut non = read(0x0044, &[(Q_BLOCK1, &[0x08])]);
    non[0] = 0x51;
    assert_eq!(d.send(&non), vec![vec![0x70, 0x00, 0x00, 0x44]]);
}

/// RFC 7959 §2.4: a Read carrying Block2 gets the block it asks for, with
/// the representation's ETag; a block starting past the end of the body is
/// 4.02 Bad Option (§2.2), not a panic or an empty 2.05.
#[test]
fn client_serves_the_block2_asked_for_and_refuses_one_past_the_end() {
    let mut d = Device::new();
    let get = |mid: u16, block2: &[u8]| {
        coap(
            CON,
            GET,
            mid,
            &[0x55],
            &[
                (URI_PATH, b"3"),
                (URI_PATH, b"0"),
                (ACCEPT, TLV),
                (BLOCK2, block2),
            ],
            b"",
        )
    };
    let whole = d.send(&coap(
        CON,
        GET,
        0x0050,
        &[0x55],
        &[(URI_PATH, b"3"), (URI_PATH, b"0"), (ACCEPT, TLV)],
        b"",
    ));
    let whole = decode(&whole[0]).payload;
    assert!(whole.len() > 64 && whole.len() < 256);
    let etag = representation_etag(11542, &whole);
    // Block2 1/0/32 = 0x11: bytes 32..64, M set (0x19).
    let out = d.send(&get(0x0051, &[0x11]));
    assert_eq!(
        out,
        vec![coap(
            ACK,
            CONTENT,
            0x0051,
            &[0x55],
            &[(ETAG, &etag), (CONTENT_FORMAT, TLV), (BLOCK2, &[0x19])],
            &whole[32..64]
        )]
    );
    // Block2 0/0/64 = 0x02: block 0 with Size2.
    let out = d.send(&get(0x0052, &[0x02]));
    assert_eq!(
        out,
        vec![coap(
            ACK,
            CONTENT,
            0x0052,
            &[0x55],
            &[
                (ETAG, &etag),
                (CONTENT_FORMAT, TLV),
                (BLOCK2, &[0x0a]),
                (SIZE2, &[whole.len() as u8])
            ],
            &whole[..64]
        )]
    );
    // Block2 50/0/16 = 0x0320: byte 800, past the end.
    let out = d.send(&get(0x0053, &[0x03, 0x20]));
    let answer = decode(&out[0]);
    assert_eq!(
        answer.header.code,
        coap_lite::MessageClass::from(BAD_OPTION)
    );
    assert_eq!(option(&answer, BLOCK2), None);
}

// ---------------------------------------------------------------------------
// Server and client roles over a lossy link with a fake clock.
// ---------------------------------------------------------------------------

const LATENCY: Duration = Duration::from_millis(20);

type DropFilter = Box<dyn FnMut(Dir, &str) -> bool>;

struct Pair {
    now: Instant,
    server: Server,
    client: Client,
    queue: Vec<(Instant, Dir, Vec<u8>)>,
    drop: DropFilter,
    log: Vec<(Dir, bool, String)>,
    server_events: Vec<ServerEvent>,
    client_events: Vec<ClientEvent>,
}

impl Pair {
    /// A registered pair whose client answers in 64-byte blocks.
    fn new() -> Self {
        let registry = registry();
        let mut client = Client::new(client_config(&registry), meter_store(&registry));
        client.set_block2_size(Some(2));
        let mut pair = Pair {
            now: Instant::now(),
            server: support::server(&registry),
            client,
            queue: Vec::new(),
            drop: Box::new(|_, _| false),
            log: Vec::new(),
            server_events: Vec::new(),
            client_events: Vec::new(),
        };
        pair.client.start(pair.now);
        pair.run_until(Duration::from_secs(10), |p| {
            support::both_registered(&p.server, &p.client)
        });
        pair.server_events.clear();
        pair.client_events.clear();
        pair.log.clear();
        pair
    }

    fn drive(&mut self) {
        assert!(support::settle(self), "the pair did not settle");
    }

    fn run_until(&mut self, limit: Duration, done: impl FnMut(&Pair) -> bool) {
        let until = self.now + limit;
        if !support::advance(self, until, Pair::drive, done) {
            panic!("condition not met; log:\n{}", self.log_text());
        }
    }

    fn log_text(&self) -> String {
        self.log
            .iter()
            .map(|(dir, dropped, s)| {
                format!("{dir:?}{} {s}", if *dropped { " DROPPED" } else { "" })
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn response(&self, id: RequestId) -> Option<Result<Response, RequestError>> {
        support::response_to(&self.server_events, id)
    }

    fn request(&mut self, request: DmRequest) -> Result<Response, RequestError> {
        let id = self.server.request(self.now, "meter-1", request).unwrap();
        self.run_until(Duration::from_secs(300), |p| p.response(id).is_some());
        self.response(id).unwrap()
    }

    fn sent(&self, dir: Dir, needle: &str) -> usize {
        self.log
            .iter()
            .filter(|(d, _, s)| *d == dir && s.contains(needle))
            .count()
    }
}

impl support::Link for Pair {
    support::link_fields!();

    fn next_arrival(&self) -> Option<Instant> {
        self.queue.iter().map(|q| q.0).min()
    }

    fn send(&mut self, dir: Dir, bytes: Vec<u8>) {
        let summary = summarize(&bytes);
        let dropped = (self.drop)(dir, &summary);
        self.log.push((dir, dropped, summary));
        if !dropped {
            self.queue.push((self.now + LATENCY, dir, bytes));
        }
    }

    fn take_due(&mut self) -> Option<(Dir, Vec<u8>)> {
        let due = support::pop_due(&mut self.queue, self.now, |q| q.0);
        due.map(|(_, dir, bytes)| (dir, bytes))
    }
}

fn read_device(p: &mut Pair) -> Vec<Record> {
    match p.request(read_3_0()) {
        Ok(Response {
            code: 205,
            content: Content::Records(r),
            ..
        }) => r,
        other => panic!("{other:?}\n{}", p.log_text()),
    }
}

/// RFC 7959 §2.4 over a lossy link: the client answers Read /3/0 in 64-byte
/// blocks; the first request for block 1 and the first answer carrying
/// block 2 are lost and retransmitted (RFC 7252 §4.2); the server still
/// delivers exactly the records a single-message Read gives.
#[test]
fn pair_read_in_block2_blocks_survives_loss_and_matches_a_whole_read() {
    let mut p = Pair::new();
    let mut lost = [false, false];
    p.drop = Box::new(move |dir, s| {
        let i = match (dir, s) {
            (Dir::ToClient, s) if s.contains("block2=1/64") => 0,
            (Dir::ToServer, s) if s.contains("block2=2/64") => 1,
            _ => return false,
        };
        !std::mem::replace(&mut lost[i], true)
    });
    let blockwise = read_device(&mut p);
    assert_eq!(p.sent(Dir::ToServer, "block2=0+/64"), 1, "{}", p.log_text());
    assert_eq!(p.sent(Dir::ToClient, "block2=1/64"), 2, "retransmitted");
    assert_eq!(p.sent(Dir::ToServer, "block2=2/64"), 2, "answered again");
    p.client.set_block2_size(None);
    p.log.clear();
    let whole = read_device(&mut p);
    assert_eq!(p.sent(Dir::ToServer, "block2"), 0);
    assert_eq!(blockwise, whole);
    assert_eq!(whole.len(), 7, "{whole:?}");
}

/// RFC 7959 §2.6: the Observe response and each notification come as a
/// first block; the server fetches the rest without Observe and delivers
/// whole values, and the observation stays established.
#[test]
fn pair_observe_with_block2_delivers_whole_notifications() {
    let mut p = Pair::new();
    let first = p
        .request(DmRequest::Observe {
            path: Path::instance(3, 0),
            format: Some(ContentFormat::Tlv),
        })
        .expect("observe");
    let Content::Records(records) = first.content else {
        panic!("{first:?}")
    };
    assert_eq!(
        records
            .iter()
            .find(|r| r.path == Path::resource(3, 0, 9))
            .map(|r| &r.value),
        Some(&Value::Integer(87))
    );
    p.client
        .set_value(p.now, Path::resource(3, 0, 9), Value::Integer(42))
        .unwrap();
    p.run_until(Duration::from_secs(10), |p| {
        p.server_events
            .iter()
            .any(|e| matches!(e, ServerEvent::Notification { .. }))
    });
    let note = p
        .server_events
        .iter()
        .find_map(|e| match e {
            ServerEvent::Notification { records, .. } => Some(records.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(note, p.client.store().read(&Path::instance(3, 0)));
    assert!(
        p.log.iter().any(|(d, _, s)| *d == Dir::ToClient
            && s.contains("block2=1/64")
            && !s.contains("obs=")),
        "{}",
        p.log_text()
    );
    assert_eq!(p.server.observations("meter-1").len(), 1);
}

/// RFC 7959 §2.4: a value that changes on the device between two blocks
/// changes the ETag (the client derives it from the representation); the
/// server starts over at block 0 and delivers the new value, never a mix.
#[test]
fn pair_a_value_changing_mid_transfer_restarts_the_read() {
    let mut p = Pair::new();
    let id = p.server.request(p.now, "meter-1", read_3_0()).unwrap();
    // Until the request for block 1 is on the wire, not yet at the client.
    p.run_until(Duration::from_secs(5), |p| {
        p.sent(Dir::ToClient, "block2=1/64") > 0
    });
    p.client
        .set_value(p.now, Path::resource(3, 0, 9), Value::Integer(12))
        .unwrap();
    p.run_until(Duration::from_secs(60), |p| p.response(id).is_some());
    let Some(Ok(Response {
        content: Content::Records(records),
        ..
    })) = p.response(id)
    else {
        panic!("{:?}\n{}", p.response(id), p.log_text())
    };
    assert_eq!(
        records
            .iter()
            .find(|r| r.path == Path::resource(3, 0, 9))
            .map(|r| &r.value),
        Some(&Value::Integer(12))
    );
    assert_eq!(records, p.client.store().read(&Path::instance(3, 0)));
    assert_eq!(
        p.sent(Dir::ToClient, "block2=0/64"),
        1,
        "one restart at block 0:\n{}",
        p.log_text()
    );
}
