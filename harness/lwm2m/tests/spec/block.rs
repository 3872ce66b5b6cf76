//! Block-wise transfer (RFC 7959): option vectors from the RFC's figures,
//! the four roles against each other, and proptest round trips.

use coap_lite::{CoapOption, MessageClass, Packet, RequestType};
use lwm2m::coap::block::{
    respond_block2, serve_block2, Block1Assembler, Block1Step, Block1Upload, Block2Download,
    BlockError, BlockKind, BlockOption, DownloadStatus, UploadStatus,
};
use lwm2m::coap::{code, options};
use proptest::prelude::*;

fn b(num: u32, more: bool, szx: u8) -> BlockOption {
    BlockOption::new(num, more, szx).unwrap()
}

fn code_of(p: &Packet) -> u16 {
    code::to_number(p.header.code.into())
}

fn response(number: u16) -> Packet {
    let mut p = Packet::new();
    p.header.code = MessageClass::from(code::from_number(number).unwrap());
    p
}

fn block_of(p: &Packet, kind: BlockKind) -> Option<BlockOption> {
    BlockOption::from_packet(p, kind).unwrap()
}

fn image(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

// RFC 7959 §2.2: value = NUM << 4 | M << 3 | SZX, minimal uint, 0-3 bytes.
// The NUM/M/size triples are the ones printed in the RFC's figures.
#[test]
fn option_values_match_rfc7959_figures() {
    let vectors: &[(BlockOption, &[u8])] = &[
        // Figure 2, simple Block2 GET: 0/1/128, 1/1/128, 2/0/128.
        (b(0, true, 3), &[0x0b]),
        (b(1, true, 3), &[0x1b]),
        (b(2, false, 3), &[0x23]),
        // Figure 3, early negotiation: request 0/0/64, answers 0/1/64 ... 4/0/64.
        (b(0, false, 2), &[0x02]),
        (b(0, true, 2), &[0x0a]),
        (b(1, false, 2), &[0x12]),
        (b(4, false, 2), &[0x42]),
        // Figure 4, late negotiation: request 2/0/64, answer 2/1/64.
        (b(2, false, 2), &[0x22]),
        (b(2, true, 2), &[0x2a]),
        // Figure 7, Block1 with negotiation: 0/1/32, 4/1/32, 6/0/32.
        (b(0, true, 1), &[0x09]),
        (b(4, true, 1), &[0x49]),
        (b(6, false, 1), &[0x61]),
        // 0/0/16 is the empty value.
        (b(0, false, 0), &[]),
        // Two and three bytes (§2.2 allows NUM up to 2^20-1).
        (b(16, false, 0), &[0x01, 0x00]),
        (b(4095, true, 6), &[0xff, 0xfe]),
        (b(4096, false, 6), &[0x01, 0x00, 0x06]),
        (b(0xF_FFFF, true, 6), &[0xff, 0xff, 0xfe]),
    ];
    for (option, bytes) in vectors {
        assert_eq!(option.encode(), bytes.to_vec(), "encoding {option}");
        assert_eq!(
            BlockOption::decode(bytes).unwrap(),
            *option,
            "decoding {bytes:02x?}"
        );
    }
    assert_eq!(b(2, true, 3).to_string(), "2/1/128");
}

#[test]
fn sizes_follow_szx() {
    for szx in 0..=6u8 {
        assert_eq!(b(1, false, szx).size(), 16 << szx);
        assert_eq!(b(3, false, szx).offset(), 3 * (16 << szx));
    }
}

#[test]
fn reserved_and_oversized_values_are_errors() {
    // SZX 7 is reserved (§2.2).
    assert_eq!(
        BlockOption::decode(&[0x07]),
        Err(BlockError::ReservedSzx(7))
    );
    assert_eq!(
        BlockOption::new(0, false, 7),
        Err(BlockError::ReservedSzx(7))
    );
    assert_eq!(
        BlockOption::decode(&[1, 2, 3, 4]),
        Err(BlockError::OptionTooLong(4))
    );
    assert_eq!(
        BlockOption::new(1 << 20, false, 0),
        Err(BlockError::NumTooLarge(1 << 20))
    );
    // A leading zero byte is still a valid uint (RFC 7252 §3.2).
    assert_eq!(BlockOption::decode(&[0x00, 0x23]).unwrap(), b(2, false, 3));
    assert_eq!(BlockError::ReservedSzx(7).response_code(), 400);
}

#[test]
fn repeated_block_option_is_an_error() {
    let mut p = Packet::new();
    p.add_option(CoapOption::Block2, vec![0x0b]);
    p.add_option(CoapOption::Block2, vec![0x1b]);
    assert_eq!(
        BlockOption::from_packet(&p, BlockKind::Block2),
        Err(BlockError::Repeated("Block2"))
    );
}

// --- Block2 source -----------------------------------------------------------

#[test]
fn first_block_carries_block2_etag_and_size2() {
    let data = image(300);
    let mut get = Packet::new();
    get.header.code = MessageClass::Request(RequestType::Get);
    let p = respond_block2(&get, &data, b"tag1", 3, Some(42));
    assert_eq!(code_of(&p), 205);
    assert_eq!(block_of(&p, BlockKind::Block2), Some(b(0, true, 3)));
    assert_eq!(
        p.get_first_option(CoapOption::ETag),
        Some(&b"tag1".to_vec())
    );
    assert_eq!(options::uint(&p, CoapOption::Size2), Some(300));
    assert_eq!(options::content_format(&p), Some(42));
    assert_eq!(p.payload, data[..128]);
}

#[test]
fn later_blocks_have_no_size2_unless_asked() {
    let data = image(300);
    let mut get = Packet::new();
    get.header.code = MessageClass::Request(RequestType::Get);
    b(2, false, 3).set_on(&mut get, BlockKind::Block2);
    let p = respond_block2(&get, &data, b"t", 6, None);
    assert_eq!(block_of(&p, BlockKind::Block2), Some(b(2, false, 3)));
    assert_eq!(p.payload, data[256..]);
    assert_eq!(options::uint(&p, CoapOption::Size2), None);
    options::set_uint(&mut get, CoapOption::Size2, 0);
    let p = respond_block2(&get, &data, b"t", 6, None);
    assert_eq!(options::uint(&p, CoapOption::Size2), Some(300));
}

// Figure 4 (late negotiation): after 0/1/128 the client asks 2/0/64, i.e.
// byte 128 at the smaller size, and gets 2/1/64.
#[test]
fn block_size_may_change_between_requests() {
    let a = serve_block2(300, Some(b(0, false, 3)), 6).unwrap();
    assert_eq!((a.range.clone(), a.option), (0..128, Some(b(0, true, 3))));
    let a = serve_block2(300, Some(b(2, false, 2)), 6).unwrap();
    assert_eq!((a.range, a.option), (128..192, Some(b(2, true, 2))));
}

// §2.4: a server preferring smaller blocks answers at its size, renumbered
// so the block starts at the offset the client asked for.
#[test]
fn server_shrinks_oversized_requests_keeping_the_offset() {
    let a = serve_block2(5000, Some(b(3, false, 6)), 4).unwrap();
    assert_eq!(a.range, 3072..3328);
    assert_eq!(a.option, Some(b(12, true, 4)));
}

#[test]
fn resuming_device_may_start_mid_image() {
    let a = serve_block2(10_000, Some(b(37, false, 4)), 6).unwrap();
    assert_eq!(a.range, 37 * 256..38 * 256);
    assert_eq!(a.size2, None);
}

#[test]
fn block_past_the_end_is_bad_option() {
    let e = serve_block2(300, Some(b(3, false, 3)), 6).unwrap_err();
    assert_eq!(
        e,
        BlockError::BeyondEnd {
            offset: 384,
            len: 300
        }
    );
    assert_eq!(e.response_code(), 402);
    // Exactly at the end is past it too (the previous block had M=0).
    assert!(serve_block2(256, Some(b(2, false, 3)), 6).is_err());
    let mut get = Packet::new();
    get.header.code = MessageClass::Request(RequestType::Get);
    b(9, false, 3).set_on(&mut get, BlockKind::Block2);
    assert_eq!(
        code_of(&respond_block2(&get, &image(300), b"t", 6, None)),
        402
    );
    // SZX 7 in a request: 4.00 (§2.2).
    get.clear_option(CoapOption::Block2);
    get.add_option(CoapOption::Block2, vec![0x07]);
    assert_eq!(
        code_of(&respond_block2(&get, &image(300), b"t", 6, None)),
        400
    );
}

#[test]
fn small_and_empty_resources_fit_one_message() {
    let a = serve_block2(100, None, 6).unwrap();
    assert_eq!((a.range, a.option), (0..100, None));
    let a = serve_block2(0, Some(b(0, false, 2)), 6).unwrap();
    assert_eq!((a.range, a.option), (0..0, Some(b(0, false, 2))));
}

// --- Block2 download -----------------------------------------------------------

fn run_download(dl: &mut Block2Download, data: &[u8], etag: &[u8], server_szx: u8) -> usize {
    let mut exchanges = 0;
    while let Some(get) = dl.next_request() {
        exchanges += 1;
        assert!(exchanges < 100_000, "download does not terminate");
        let p = respond_block2(&get, data, etag, server_szx, None);
        if let DownloadStatus::Complete { .. } = dl.handle_response(&p).unwrap() {
            break;
        }
    }
    exchanges
}

#[test]
fn download_requests_carry_path_and_block2() {
    let mut dl = Block2Download::new(vec!["fw".into(), "a.bin".into()], 5).unwrap();
    let get = dl.next_request().unwrap();
    assert_eq!(options::uri_path_string(&get), "/fw/a.bin");
    assert_eq!(block_of(&get, BlockKind::Block2), Some(b(0, false, 5)));
    assert_eq!(options::uint(&get, CoapOption::Size2), Some(0));
    assert_eq!(get.header.code, MessageClass::Request(RequestType::Get));
}

#[test]
fn download_adopts_the_servers_smaller_size() {
    let data = image(3000);
    let mut dl = Block2Download::new(vec!["x".into()], 6).unwrap();
    run_download(&mut dl, &data, b"e", 4);
    assert_eq!(dl.data(), &data[..]);
    assert_eq!(dl.szx(), 4);
    assert_eq!(dl.progress().blocks, 12);
    assert_eq!(dl.progress().total, Some(3000));
    assert!(dl.is_complete());
    assert!(dl.next_request().is_none());
}

#[test]
fn image_change_mid_download_is_detected() {
    let old = image(1000);
    let new = image(1200);
    let mut dl = Block2Download::new(vec!["x".into()], 4).unwrap();
    let get = dl.next_request().unwrap();
    dl.handle_response(&respond_block2(&get, &old, b"v1", 6, None))
        .unwrap();
    let get = dl.next_request().unwrap();
    let e = dl
        .handle_response(&respond_block2(&get, &new, b"v2", 6, None))
        .unwrap_err();
    assert!(matches!(e, BlockError::ImageChanged { .. }));
    assert!(e.to_string().contains("image changed, restart"), "{e}");
}

#[test]
fn resume_with_stale_etag_fails_on_first_block() {
    let data = image(1000);
    let mut dl = Block2Download::resume(vec!["x".into()], 4, 512, Some(b"old".to_vec())).unwrap();
    let get = dl.next_request().unwrap();
    assert_eq!(block_of(&get, BlockKind::Block2), Some(b(2, false, 4)));
    assert!(matches!(
        dl.handle_response(&respond_block2(&get, &data, b"new", 6, None)),
        Err(BlockError::ImageChanged { .. })
    ));
}

#[test]
fn unaligned_resume_drops_the_bytes_before_the_offset() {
    let data = image(1000);
    let mut dl = Block2Download::resume(vec!["x".into()], 3, 300, None).unwrap();
    run_download(&mut dl, &data, b"e", 6);
    assert_eq!(dl.data(), &data[300..]);
    assert_eq!(dl.progress().offset, 1000);
}

#[test]
fn download_limit_refuses_large_images_from_size2() {
    let data = image(5000);
    let mut dl = Block2Download::new(vec!["x".into()], 4)
        .unwrap()
        .with_limit(4096);
    let get = dl.next_request().unwrap();
    let e = dl
        .handle_response(&respond_block2(&get, &data, b"e", 6, None))
        .unwrap_err();
    assert_eq!(
        e,
        BlockError::TooLarge {
            limit: 4096,
            size: 5000
        }
    );
}

#[test]
fn error_responses_end_the_download() {
    let mut dl = Block2Download::new(vec!["x".into()], 4).unwrap();
    dl.next_request();
    let mut nf = response(404);
    nf.payload = b"no such image".to_vec();
    assert_eq!(
        dl.handle_response(&nf),
        Err(BlockError::Status {
            code: 404,
            diagnostic: "no such image".into()
        })
    );
}

#[test]
fn short_middle_block_and_wrong_block_are_rejected() {
    let mut dl = Block2Download::new(vec!["x".into()], 4).unwrap();
    dl.next_request();
    let mut p = response(205);
    b(0, true, 4).set_on(&mut p, BlockKind::Block2);
    p.payload = vec![0; 100];
    assert!(matches!(
        dl.handle_response(&p),
        Err(BlockError::ShortBlock { .. })
    ));
    let mut p = response(205);
    b(3, true, 4).set_on(&mut p, BlockKind::Block2);
    p.payload = vec![0; 256];
    assert!(matches!(
        dl.handle_response(&p),
        Err(BlockError::UnexpectedBlock { .. })
    ));
}

#[test]
fn repeated_requests_count_as_retransmissions() {
    let data = image(100);
    let mut dl = Block2Download::new(vec!["x".into()], 4).unwrap();
    dl.next_request();
    let get = dl.next_request().unwrap(); // the first exchange timed out
    dl.handle_response(&respond_block2(&get, &data, b"e", 6, None))
        .unwrap();
    assert_eq!(dl.progress().retransmissions, 1);
}

#[test]
fn size2_mismatch_is_an_error() {
    let mut dl = Block2Download::new(vec!["x".into()], 4).unwrap();
    dl.next_request();
    let mut p = response(205);
    b(0, false, 4).set_on(&mut p, BlockKind::Block2);
    options::set_uint(&mut p, CoapOption::Size2, 200);
    p.payload = vec![1; 100];
    assert_eq!(
        dl.handle_response(&p),
        Err(BlockError::SizeMismatch {
            announced: 200,
            received: 100
        })
    );
}

// --- Block1 upload and assembler -------------------------------------------------

fn run_upload(up: &mut Block1Upload, asm: &mut Block1Assembler) -> Vec<u8> {
    for _ in 0..100_000 {
        let req = up.next_request().expect("upload ended without completing");
        let answer = match asm.handle_request(&req) {
            Block1Step::Continue(p) | Block1Step::Refuse(p) => (p, None),
            Block1Step::Complete { body, echo } => {
                let mut p = response(204);
                if let Some(e) = echo {
                    e.set_on(&mut p, BlockKind::Block1);
                }
                (p, Some(body))
            }
        };
        match up.handle_response(&answer.0).unwrap() {
            UploadStatus::Complete { code } => {
                assert_eq!(code, 204);
                return answer.1.unwrap();
            }
            UploadStatus::Continue { .. } | UploadStatus::Renegotiated { .. } => {}
        }
    }
    panic!("upload does not terminate");
}

#[test]
fn upload_requests_carry_block1_size1_and_format() {
    let mut up = Block1Upload::new(
        RequestType::Put,
        vec!["5".into(), "0".into(), "0".into()],
        Some(42),
        image(300),
        3,
    )
    .unwrap();
    let req = up.next_request().unwrap();
    assert_eq!(req.header.code, MessageClass::Request(RequestType::Put));
    assert_eq!(options::uri_path_string(&req), "/5/0/0");
    assert_eq!(block_of(&req, BlockKind::Block1), Some(b(0, true, 3)));
    assert_eq!(options::uint(&req, CoapOption::Size1), Some(300));
    assert_eq!(options::content_format(&req), Some(42));
    assert_eq!(req.payload.len(), 128);
}

// RFC 7959 Figure 7: the server answers the first 128-byte block with
// 2.31 Block1 0/1/32; the client continues with 4/1/32 (byte 128).
#[test]
fn continue_with_smaller_szx_renegotiates_like_figure_7() {
    let body = image(128 + 32 * 2 + 10);
    let mut up =
        Block1Upload::new(RequestType::Put, vec!["options".into()], None, body, 3).unwrap();
    up.next_request().unwrap();
    let mut r = response(231);
    b(0, true, 1).set_on(&mut r, BlockKind::Block1);
    assert_eq!(
        up.handle_response(&r),
        Ok(UploadStatus::Renegotiated {
            szx: 1,
            offset: 128
        })
    );
    let req = up.next_request().unwrap();
    assert_eq!(block_of(&req, BlockKind::Block1), Some(b(4, true, 1)));
    for num in [4u32, 5] {
        let mut r = response(231);
        b(num, true, 1).set_on(&mut r, BlockKind::Block1);
        up.handle_response(&r).unwrap();
        if num == 4 {
            up.next_request().unwrap();
        }
    }
    let req = up.next_request().unwrap();
    assert_eq!(block_of(&req, BlockKind::Block1), Some(b(6, false, 1)));
    assert_eq!(req.payload.len(), 10);
    let mut r = response(204);
    b(6, false, 1).set_on(&mut r, BlockKind::Block1);
    assert_eq!(
        up.handle_response(&r),
        Ok(UploadStatus::Complete { code: 204 })
    );
}

// §2.9.3: 4.13 with a Block1 option naming a smaller size; the client
// retries the same bytes at that size.
#[test]
fn entity_too_large_with_block1_renegotiates_down() {
    let body = image(1000);
    let mut up = Block1Upload::new(
        RequestType::Put,
        vec!["5".into(), "0".into(), "0".into()],
        None,
        body.clone(),
        6,
    )
    .unwrap();
    let mut asm = Block1Assembler::new(4096, 4);
    let req = up.next_request().unwrap();
    let Block1Step::Refuse(p) = asm.handle_request(&req) else {
        panic!("1024-byte block accepted by a 256-byte assembler");
    };
    assert_eq!(code_of(&p), 413);
    assert_eq!(block_of(&p, BlockKind::Block1), Some(b(0, false, 4)));
    assert_eq!(
        up.handle_response(&p),
        Ok(UploadStatus::Renegotiated { szx: 4, offset: 0 })
    );
    assert_eq!(run_upload(&mut up, &mut asm), body);
    assert_eq!(up.renegotiations(), 1);
}

#[test]
fn entity_too_large_without_smaller_size_is_fatal_with_size1() {
    let mut up =
        Block1Upload::new(RequestType::Put, vec!["p".into()], None, image(5000), 4).unwrap();
    let mut asm = Block1Assembler::new(4096, 6);
    let req = up.next_request().unwrap();
    let Block1Step::Refuse(p) = asm.handle_request(&req) else {
        panic!("Size1 over the limit accepted");
    };
    assert_eq!(code_of(&p), 413);
    assert_eq!(options::uint(&p, CoapOption::Size1), Some(4096));
    assert_eq!(
        up.handle_response(&p),
        Err(BlockError::EntityTooLarge { size1: Some(4096) })
    );
}

#[test]
fn assembler_rejects_out_of_order_blocks_with_4_08() {
    let mut asm = Block1Assembler::new(10_000, 6);
    let mut req = Packet::new();
    req.header.code = MessageClass::Request(RequestType::Put);
    b(0, true, 0).set_on(&mut req, BlockKind::Block1);
    req.payload = vec![1; 16];
    let Block1Step::Continue(p) = asm.handle_request(&req) else {
        panic!()
    };
    assert_eq!(code_of(&p), 231);
    assert_eq!(block_of(&p, BlockKind::Block1), Some(b(0, true, 0)));
    // Block 2 before block 1.
    b(2, true, 0).set_on(&mut req, BlockKind::Block1);
    let Block1Step::Refuse(p) = asm.handle_request(&req) else {
        panic!()
    };
    assert_eq!(code_of(&p), 408);
    assert!(!asm.in_progress());
    // A block without block 0.
    b(1, true, 0).set_on(&mut req, BlockKind::Block1);
    let Block1Step::Refuse(p) = asm.handle_request(&req) else {
        panic!()
    };
    assert_eq!(code_of(&p), 408);
}

#[test]
fn assembler_answers_a_repeated_block_again_without_appending() {
    let mut asm = Block1Assembler::new(10_000, 6);
    let mut req = Packet::new();
    req.header.code = MessageClass::Request(RequestType::Put);
    b(0, true, 0).set_on(&mut req, BlockKind::Block1);
    req.payload = vec![1; 16];
    assert!(matches!(asm.handle_request(&req), Block1Step::Continue(_)));
    b(1, true, 0).set_on(&mut req, BlockKind::Block1);
    req.payload = vec![2; 16];
    assert!(matches!(asm.handle_request(&req), Block1Step::Continue(_)));
    assert!(matches!(asm.handle_request(&req), Block1Step::Continue(_)));
    assert_eq!(asm.received(), 32);
    b(2, false, 0).set_on(&mut req, BlockKind::Block1);
    req.payload = vec![3; 5];
    let Block1Step::Complete { body, echo } = asm.handle_request(&req) else {
        panic!()
    };
    assert_eq!(body.len(), 37);
    assert_eq!(echo, Some(b(2, false, 0)));
}

#[test]
fn assembler_rejects_short_middle_blocks_and_reserved_szx() {
    let mut asm = Block1Assembler::new(10_000, 6);
    let mut req = Packet::new();
    req.header.code = MessageClass::Request(RequestType::Put);
    b(0, true, 2).set_on(&mut req, BlockKind::Block1);
    req.payload = vec![1; 10];
    let Block1Step::Refuse(p) = asm.handle_request(&req) else {
        panic!()
    };
    assert_eq!(code_of(&p), 400);
    req.clear_option(CoapOption::Block1);
    req.add_option(CoapOption::Block1, vec![0x0f]);
    let Block1Step::Refuse(p) = asm.handle_request(&req) else {
        panic!()
    };
    assert_eq!(code_of(&p), 400);
}

#[test]
fn whole_body_without_block1_completes_or_is_too_large() {
    let mut asm = Block1Assembler::new(50, 6);
    let mut req = Packet::new();
    req.header.code = MessageClass::Request(RequestType::Put);
    req.payload = vec![9; 40];
    assert_eq!(
        asm.handle_request(&req),
        Block1Step::Complete {
            body: vec![9; 40],
            echo: None
        }
    );
    req.payload = vec![9; 60];
    let Block1Step::Refuse(p) = asm.handle_request(&req) else {
        panic!()
    };
    assert_eq!(code_of(&p), 413);
    assert_eq!(options::uint(&p, CoapOption::Size1), Some(50));
}

#[test]
fn peer_ignoring_block1_is_detected() {
    let mut up =
        Block1Upload::new(RequestType::Put, vec!["p".into()], None, image(100), 0).unwrap();
    up.next_request();
    assert_eq!(
        up.handle_response(&response(204)),
        Err(BlockError::IgnoredBlock1 { code: 204 })
    );
}

#[test]
fn upload_4_08_can_restart() {
    let body = image(100);
    let mut up =
        Block1Upload::new(RequestType::Put, vec!["p".into()], None, body.clone(), 0).unwrap();
    let mut asm = Block1Assembler::new(1000, 6);
    for _ in 0..3 {
        let req = up.next_request().unwrap();
        let Block1Step::Continue(p) = asm.handle_request(&req) else {
            panic!()
        };
        up.handle_response(&p).unwrap();
    }
    asm.reset(); // the device rebooted and lost the partial image
    let req = up.next_request().unwrap();
    let Block1Step::Refuse(p) = asm.handle_request(&req) else {
        panic!()
    };
    assert!(matches!(
        up.handle_response(&p),
        Err(BlockError::Incomplete { .. })
    ));
    up.restart();
    assert_eq!(run_upload(&mut up, &mut asm), body);
}

#[test]
fn upload_counts_retransmissions() {
    let mut up =
        Block1Upload::new(RequestType::Put, vec!["p".into()], None, image(100), 0).unwrap();
    up.next_request();
    up.next_request();
    up.next_request();
    assert_eq!(up.progress().retransmissions, 2);
    assert_eq!(up.progress().total, Some(100));
}

proptest! {
    #[test]
    fn option_round_trips(num in 0u32..=0xF_FFFF, more: bool, szx in 0u8..=6) {
        let o = b(num, more, szx);
        let bytes = o.encode();
        prop_assert!(bytes.len() <= 3);
        prop_assert_eq!(BlockOption::decode(&bytes).unwrap(), o);
    }

    #[test]
    fn option_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..6)) {
        let _ = BlockOption::decode(&bytes);
    }

    // Any blob, any client and server SZX, any resume offset: the download
    // gets exactly the bytes from the offset on.
    #[test]
    fn download_and_source_round_trip(
        data in proptest::collection::vec(any::<u8>(), 0..4000),
        client_szx in 0u8..=6,
        server_szx in 0u8..=6,
        resume in any::<proptest::sample::Index>(),
    ) {
        let offset = if data.is_empty() { 0 } else { resume.index(data.len()) };
        let mut dl = Block2Download::resume(vec!["fw".into()], client_szx, offset, None).unwrap();
        let exchanges = run_download(&mut dl, &data, b"etag", server_szx);
        prop_assert!(dl.is_complete());
        prop_assert_eq!(dl.data(), &data[offset..]);
        prop_assert_eq!(dl.etag(), Some(&b"etag"[..]));
        // One exchange per block of the size in use, plus at most one
        // wasted block when the server shrank the size below a resume offset.
        let size = 16usize << client_szx.min(server_szx);
        let first_block = offset / size * size;
        let blocks = data.len().saturating_sub(first_block).div_ceil(size).max(1);
        prop_assert!(exchanges == blocks || (server_szx < client_szx && exchanges == blocks + 1),
            "{} exchanges for {} blocks", exchanges, blocks);
    }

    // Any body, any sender SZX, an assembler that may force a 4.13
    // renegotiation: the assembler gets the body exactly.
    #[test]
    fn upload_and_assembler_round_trip(
        body in proptest::collection::vec(any::<u8>(), 0..4000),
        szx in 0u8..=6,
        assembler_szx in 0u8..=6,
    ) {
        let mut up = Block1Upload::new(RequestType::Put, vec!["5".into(), "0".into(), "0".into()], None, body.clone(), szx).unwrap();
        let mut asm = Block1Assembler::new(4000, assembler_szx);
        prop_assert_eq!(run_upload(&mut up, &mut asm), body.clone());
        let forced = assembler_szx < szx && body.len() > (16usize << assembler_szx);
        prop_assert_eq!(up.renegotiations() >= 1, forced);
        prop_assert_eq!(up.szx(), if forced { assembler_szx } else { szx });
    }
}
