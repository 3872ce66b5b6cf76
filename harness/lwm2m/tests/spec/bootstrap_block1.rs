//! A Bootstrap-Write larger than a block, sent in Block1 blocks (RFC 7959
//! §2.5) by the Bootstrap-Server role and reassembled by the client role:
//! the certificate-mode Security instance of ETS LightweightM2M-1.1-int-2
//! (two certificates and a private key, Core §E.1 /0/x/3, /0/x/4, /0/x/5),
//! run between the two roles datagram by datagram, each block's Block1
//! option (§2.2: NUM, M, SZX in `NUM << 4 | M << 3 | SZX`) and Size1 (§4)
//! checked byte for byte, and the client's 2.31 Continue (§2.3) and final
//! 2.04 echoing the last block's Block1.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, Packet, RequestType, ResponseType};
use lwm2m::bootstrap::{
    BootstrapEvent, BootstrapScript, BootstrapServer, BootstrapServerConfig, SecurityMode,
    ServerAccount,
};
use lwm2m::client::{BootstrapConfig, Client, ClientConfig, ObjectStore, RegistrationState};
use lwm2m::format::{self, ContentFormat};
use lwm2m::{Path, Registry, Value};

const BS: &str = "127.0.0.1:5783";
const SERVER: &str = "127.0.0.1:5684";
const CLIENT: &str = "127.0.0.1:56830";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The account int-2 provisions: stand-in DER of realistic sizes (an ECDSA
/// P-256 certificate is 400-500 bytes, a PKCS#8 P-256 key 138).
fn certificate_account() -> ServerAccount {
    ServerAccount::certificate(
        101,
        format!("coaps://{SERVER}"),
        (0..400u32).map(|i| i as u8).collect::<Vec<_>>(),
        (0..380u32).map(|i| (i * 7) as u8).collect::<Vec<_>>(),
        (0..138u32).map(|i| (i * 3) as u8).collect::<Vec<_>>(),
    )
}

fn client() -> Client {
    let mut bootstrap = BootstrapConfig::new(addr(BS));
    bootstrap.supported_modes = vec![
        SecurityMode::NoSec,
        SecurityMode::Psk,
        SecurityMode::Certificate,
    ];
    Client::new(
        ClientConfig {
            endpoint: "meter-1".into(),
            server: addr(SERVER),
            lifetime: Duration::from_secs(300),
            lwm2m_version: "1.1".into(),
            binding: "U".into(),
            registry: Registry::core(),
            preferred_format: ContentFormat::Tlv,
            seed: 9,
            bootstrap: Some(bootstrap),
            retry: Default::default(),
        },
        ObjectStore::new(Registry::core()),
    )
}

fn bootstrap_server(szx: Option<u8>) -> BootstrapServer {
    let mut s = BootstrapServer::new(BootstrapServerConfig {
        registry: Registry::core(),
        default_format: ContentFormat::Tlv,
        seed: 4,
    });
    if let Some(szx) = szx {
        s.set_block1_size(szx);
    }
    s.set_script("meter-1", BootstrapScript::standard(&certificate_account()));
    s
}

/// Runs the session between the roles until neither has anything to send;
/// returns every datagram from the Bootstrap-Server and every answer of the
/// client to it, in order, and what the client sent elsewhere (its Register).
fn run(
    bs: &mut BootstrapServer,
    c: &mut Client,
    now: Instant,
) -> (Vec<Packet>, Vec<Packet>, Vec<SocketAddr>) {
    let (mut from_bs, mut to_bs, mut elsewhere) = (Vec::new(), Vec::new(), Vec::new());
    c.start(now);
    for _ in 0..100 {
        let mut moved = false;
        while let Some(t) = c.poll_transmit() {
            moved = true;
            if t.destination == addr(BS) {
                to_bs.push(Packet::from_bytes(&t.payload).unwrap());
                bs.handle_datagram(now, addr(CLIENT), &t.payload);
            } else {
                elsewhere.push(t.destination);
            }
        }
        while let Some(t) = bs.poll_transmit() {
            moved = true;
            assert_eq!(t.destination, addr(CLIENT));
            from_bs.push(Packet::from_bytes(&t.payload).unwrap());
            c.handle_datagram(now, addr(BS), &t.payload);
        }
        if !moved {
            break;
        }
    }
    (from_bs, to_bs, elsewhere)
}

fn uri_path(p: &Packet) -> String {
    p.get_option(CoapOption::UriPath)
        .map(|v| {
            v.iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>()
                .join("/")
        })
        .unwrap_or_default()
}

fn option(p: &Packet, o: CoapOption) -> Option<Vec<u8>> {
    p.get_option(o).and_then(|v| v.front().cloned())
}

#[test]
fn a_security_instance_larger_than_a_block_goes_in_block1_blocks_and_is_written_whole() {
    let now = Instant::now();
    let account = certificate_account();
    // The whole Bootstrap-Write payload, as one datagram would carry it.
    let whole = format::encode(
        ContentFormat::Tlv,
        &account.security_path(),
        &account.security_records(),
        &Registry::core(),
    )
    .unwrap();
    assert!(
        (512..=1024).contains(&whole.len()),
        "{} bytes: two blocks of 512",
        whole.len()
    );
    let mut bs = bootstrap_server(Some(5));
    let mut c = client();
    let (from_bs, to_bs, elsewhere) = run(&mut bs, &mut c, now);

    let writes: Vec<&Packet> = from_bs
        .iter()
        .filter(|p| {
            p.header.code == MessageClass::Request(RequestType::Put) && uri_path(p) == "0/1"
        })
        .collect();
    assert_eq!(writes.len(), 2, "two blocks of PUT /0/1");
    // Block 0: Block1 NUM 0, M 1, SZX 5 (512 bytes) = 0x0d; Size1 the
    // whole size (§4); the first 512 bytes.
    assert_eq!(option(writes[0], CoapOption::Block1), Some(vec![0x0d]));
    let size1 = u16::try_from(whole.len()).unwrap().to_be_bytes().to_vec();
    assert_eq!(option(writes[0], CoapOption::Size1), Some(size1));
    assert_eq!(writes[0].payload, whole[..512]);
    // Block 1, the last: NUM 1, M 0, SZX 5 = 0x15; no Size1; the rest.
    assert_eq!(option(writes[1], CoapOption::Block1), Some(vec![0x15]));
    assert_eq!(option(writes[1], CoapOption::Size1), None);
    assert_eq!(writes[1].payload, whole[512..]);
    // Both carry Content-Format TLV (11542 = 0x2d16).
    for w in &writes {
        assert_eq!(option(w, CoapOption::ContentFormat), Some(vec![0x2d, 0x16]));
    }

    // The client's answers to them: 2.31 Continue echoing 0x0d, then 2.04
    // Changed echoing the last block's 0x15 (§2.3).
    let answer_to = |w: &Packet| {
        to_bs
            .iter()
            .find(|a| a.header.message_id == w.header.message_id && a.get_token() == w.get_token())
            .cloned()
            .expect("an answer")
    };
    let first = answer_to(writes[0]);
    assert_eq!(
        first.header.code,
        MessageClass::Response(ResponseType::Continue)
    );
    assert_eq!(option(&first, CoapOption::Block1), Some(vec![0x0d]));
    let last = answer_to(writes[1]);
    assert_eq!(
        last.header.code,
        MessageClass::Response(ResponseType::Changed)
    );
    assert_eq!(option(&last, CoapOption::Block1), Some(vec![0x15]));

    // The Server instance (a few bytes) goes whole, without Block1.
    let server_write = from_bs
        .iter()
        .find(|p| uri_path(p) == "1/0")
        .expect("Bootstrap-Write /1/0");
    assert_eq!(option(server_write, CoapOption::Block1), None);

    // The session finished, and the client holds the certificates whole and
    // registers with the new account.
    let events: Vec<BootstrapEvent> = std::iter::from_fn(|| bs.poll_event()).collect();
    assert!(
        events.iter().any(
            |e| matches!(e, BootstrapEvent::Finished { endpoint, .. } if endpoint == "meter-1")
        ),
        "{events:?}"
    );
    assert_eq!(
        c.store().get(&Path::resource(0, 1, 3)),
        Some(&Value::Opaque(account.psk_identity.clone()))
    );
    assert_eq!(
        c.store().get(&Path::resource(0, 1, 4)),
        Some(&Value::Opaque(account.server_public_key.clone()))
    );
    assert!(matches!(c.state(), RegistrationState::Registering));
    assert_eq!(elsewhere, vec![addr(SERVER)], "the Register");
}

#[test]
fn with_the_default_block_size_a_payload_up_to_1024_bytes_goes_whole() {
    // DEFAULT: SZX 6, 1024 bytes (RFC 7252 §4.6's payload size for an
    // unknown path MTU): the same ~1 KB instance in one datagram.
    let now = Instant::now();
    let mut bs = bootstrap_server(None);
    let mut c = client();
    let (from_bs, _, _) = run(&mut bs, &mut c, now);
    let writes: Vec<&Packet> = from_bs.iter().filter(|p| uri_path(p) == "0/1").collect();
    assert_eq!(writes.len(), 1);
    assert_eq!(option(writes[0], CoapOption::Block1), None);
}
