//! The smartcard's EF LwM2M_Bootstrap file decoder (LwM2M 1.1 Core
//! Appendix G.3.3), which the virtual meter runs on the card it finds at
//! boot: a card provisioned by someone else is input the meter did not
//! write. Decoded cards are typed by the object model, read as server
//! accounts, and must come back the same through encode and decode.

use lwm2m::bootstrap::account::SecurityMode;
use lwm2m::bootstrap::smartcard::SmartcardBootstrap;

use super::format::registry;

pub fn run(input: &[u8]) {
    let Ok(card) = SmartcardBootstrap::decode(input) else {
        return;
    };
    let _ = card.records(registry());
    let _ = card.accounts(
        registry(),
        &[
            SecurityMode::Psk,
            SecurityMode::Certificate,
            SecurityMode::NoSec,
        ],
    );
    if let Ok(bytes) = card.encode() {
        let again = SmartcardBootstrap::decode(&bytes).expect("an encoded card decodes");
        assert_eq!(again, card, "a card's objects survive encode and decode");
    }
}

pub const DICTIONARY: &[&[u8]] = &[
    // Header: object count and size (Appendix G.3.3).
    b"\x00\x01",
    b"\x00\x02",
    b"\xff\xff",
    // Object ids 0 (Security) and 1 (Server), the implicit version.
    b"\x00\x00\x00\x00",
    b"\x00\x01\x00\x00",
    // An explicit version 1.1.
    b"\x01\x01",
    // TLV: an object instance, a 1-byte and a 2-byte resource (Core §7.4.3).
    b"\x08\x00",
    b"\xc1\x0a\x01",
    b"\xc8\x00",
    b"coap://",
    b"coaps://",
];
