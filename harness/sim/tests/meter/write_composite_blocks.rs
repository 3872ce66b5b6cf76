//! A Write-Composite larger than one block (LwM2M 1.1 Core §6.3.9, iPATCH
//! on `/`) sent to the virtual meter in Block1 blocks (RFC 7959 §2.5; RFC
//! 8132 §3.2 allows Block1 on iPATCH): each block but the last answered
//! 2.31 Continue echoing its Block1 (§2.3), the last 2.04 Changed echoing
//! the last block's Block1, and the values set only once the body is
//! whole. The server is played by hand over loopback UDP so that every
//! block and answer is the test's own.

use coap_lite::{CoapOption, MessageClass, Packet, RequestType, ResponseType};

use crate::bench::{bring_up, power_on, Server};

/// SenML JSON (RFC 8428 §6; LwM2M 1.1 Core §7.4.4), Content-Format 110.
const SENML_JSON: u8 = 110;

/// SZX 4: 256-byte blocks (RFC 7959 §2.2, size 2^(SZX+4)).
const SZX: u8 = 4;
const BLOCK: usize = 256;

/// iPATCH / (no Uri-Path: the root) carrying `payload`, Content-Format
/// SenML JSON, with the Block1 option `block1` (one byte: NUM << 4 | M << 3
/// | SZX, RFC 7959 §2.2) and, on the first block, Size1 (§4).
fn ipatch_block(payload: &[u8], block1: u8, size1: Option<usize>) -> Packet {
    let mut p = Packet::new();
    p.header.code = MessageClass::Request(RequestType::IPatch);
    p.add_option(CoapOption::ContentFormat, vec![SENML_JSON]);
    p.add_option(CoapOption::Block1, vec![block1]);
    if let Some(size) = size1 {
        let size = u16::try_from(size).unwrap();
        p.add_option(CoapOption::Size1, size.to_be_bytes().to_vec());
    }
    p.payload = payload.to_vec();
    p
}

fn block1_of(p: &Packet) -> Option<Vec<u8>> {
    p.get_option(CoapOption::Block1)
        .and_then(|v| v.front().cloned())
}

#[test]
fn a_write_composite_in_block1_blocks_is_applied_once_whole_after_the_last_block() {
    let server = Server::new();
    let (_dir, _power, mut port) = power_on(51);
    let (_, peer) = bring_up(&mut port, &server, "wc");
    let offset_before = server.read_text(peer, "/3/0/14", 0x500);
    let zone_before = server.read_text(peer, "/3/0/15", 0x501);

    // Two records, the body three 256-byte blocks long.
    let zone = format!("Europe/{}", "Z".repeat(500));
    let body = format!(r#"[{{"n":"/3/0/14","vs":"+02:00"}},{{"n":"/3/0/15","vs":"{zone}"}}]"#)
        .into_bytes();
    assert!(
        body.len() > 2 * BLOCK && body.len() <= 3 * BLOCK,
        "{}",
        body.len()
    );
    assert_ne!(offset_before, "+02:00");
    assert_ne!(zone_before, zone);

    let blocks: Vec<&[u8]> = body.chunks(BLOCK).collect();
    for (num, chunk) in blocks.iter().enumerate() {
        let more = num + 1 < blocks.len();
        let block1 = (num as u8) << 4 | u8::from(more) << 3 | SZX;
        let size1 = (num == 0).then_some(body.len());
        let mid = 0x510 + num as u16;
        let answer = server.exchange(peer, ipatch_block(chunk, block1, size1), mid);
        if more {
            // 2.31 Continue, Block1 echoed as sent: NUM, M 1, SZX 4
            // (0x0C for block 0, 0x1C for block 1).
            assert_eq!(
                answer.header.code,
                MessageClass::Response(ResponseType::Continue),
                "block {num}: {:?}",
                String::from_utf8_lossy(&answer.payload)
            );
            assert_eq!(block1_of(&answer), Some(vec![block1]), "block {num}");
            // Nothing is set while the body is incomplete.
            let mid = 0x520 + num as u16;
            assert_eq!(server.read_text(peer, "/3/0/14", mid), offset_before);
        } else {
            // 2.04 Changed, echoing the last block's Block1: NUM 2, M 0,
            // SZX 4 = 0x24.
            assert_eq!(block1, 0x24);
            assert_eq!(
                answer.header.code,
                MessageClass::Response(ResponseType::Changed),
                "last block: {:?}",
                String::from_utf8_lossy(&answer.payload)
            );
            assert_eq!(block1_of(&answer), Some(vec![0x24]));
        }
    }
    assert_eq!(server.read_text(peer, "/3/0/14", 0x530), "+02:00");
    assert_eq!(server.read_text(peer, "/3/0/15", 0x531), zone);
}

#[test]
fn a_write_composite_whose_blocks_hold_a_bad_record_sets_nothing() {
    // All or nothing holds for a body in blocks too: one record that is not
    // writable (/3/0/0 Manufacturer is read-only) refuses the whole body at
    // the last block, 4.05, and the other record stays as it was.
    let server = Server::new();
    let (_dir, _power, mut port) = power_on(52);
    let (_, peer) = bring_up(&mut port, &server, "wc");
    let zone_before = server.read_text(peer, "/3/0/15", 0x600);
    let zone = format!("Europe/{}", "Y".repeat(300));
    let body = format!(r#"[{{"n":"/3/0/15","vs":"{zone}"}},{{"n":"/3/0/0","vs":"Nobody Inc"}}]"#)
        .into_bytes();
    let blocks: Vec<&[u8]> = body.chunks(BLOCK).collect();
    assert_eq!(blocks.len(), 2, "{}", body.len());
    let first = server.exchange(peer, ipatch_block(blocks[0], 0x0C, Some(body.len())), 0x610);
    assert_eq!(
        first.header.code,
        MessageClass::Response(ResponseType::Continue)
    );
    let last = server.exchange(peer, ipatch_block(blocks[1], 0x14, None), 0x611);
    assert_eq!(
        last.header.code,
        MessageClass::Response(ResponseType::MethodNotAllowed),
        "{:?}",
        String::from_utf8_lossy(&last.payload)
    );
    assert_eq!(server.read_text(peer, "/3/0/15", 0x612), zone_before);
}
