//! A [`Capture`](crate::Capture) as pcap files that Wireshark and tshark
//! decode as CoAP with no preference set by hand.
//!
//! Our servers listen on ephemeral ports, so a plain IP/UDP capture shows
//! bare UDP: Wireshark picks CoAP by port (5683) and has no CoAP heuristic.
//! Instead every datagram is written as an *exported PDU*
//! (LINKTYPE_WIRESHARK_UPPER_PDU, 252; Wireshark's `epan/exported_pdu.h`):
//! a few tags before the payload name the dissector to run (`coap` or
//! `dtls`) and carry the real IP addresses and UDP ports, which Wireshark
//! shows as the packet's source and destination. Wireshark has read this
//! link type since 1.12; tshark 4.0 (Debian bookworm) decodes it as is.
//!
//! Two views of one capture ([`PcapView`]): the wire (plain CoAP, and DTLS
//! records as they went) and the decrypted (plain CoAP, and the CoAP inside
//! the DTLS records, Security object secrets redacted). Classic pcap
//! (draft-ietf-opsawg-pcap), little-endian, microsecond timestamps, written with pcap-file.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, Endianness, PcapError};

use crate::capture::{CapturedDatagram, Carried};

/// The wire view's file name in a case folder.
pub const WIRE_CAPTURE: &str = "lwm2m.pcap";
/// The decrypted view's file name, written when some traffic was DTLS.
pub const DECRYPTED_CAPTURE: &str = "lwm2m-decrypted.pcap";

const SNAPLEN: u32 = 262_144;

/// Which datagrams of a capture a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcapView {
    /// What went over the network: plain CoAP and DTLS records.
    Wire,
    /// The CoAP the servers handled: plain, and decrypted from DTLS.
    Decrypted,
}

impl PcapView {
    fn holds(self, carried: Carried) -> bool {
        matches!(
            (self, carried),
            (_, Carried::Coap)
                | (PcapView::Wire, Carried::Dtls)
                | (PcapView::Decrypted, Carried::DecryptedCoap)
        )
    }
}

/// Writes the datagrams of `view` in the order given; returns how many.
pub fn write_pcap(
    datagrams: &[CapturedDatagram],
    view: PcapView,
    out: impl Write,
) -> io::Result<usize> {
    let header = PcapHeader {
        snaplen: SNAPLEN,
        datalink: DataLink::WIRESHARK_UPPER_PDU,
        endianness: Endianness::Little,
        ..PcapHeader::default()
    };
    let mut writer = PcapWriter::with_header(out, header).map_err(io_error)?;
    let mut written = 0;
    for d in datagrams.iter().filter(|d| view.holds(d.carried)) {
        let packet = exported_pdu(d);
        let since_epoch = d.time.timestamp_micros().max(0) as u64;
        let record = PcapPacket::new(
            Duration::from_micros(since_epoch),
            packet.len() as u32,
            &packet,
        );
        writer.write_packet(&record).map_err(io_error)?;
        written += 1;
    }
    writer.into_writer().flush()?;
    Ok(written)
}

/// Writes a case's captures into `dir`, ordered by time across the servers
/// that recorded them: [`WIRE_CAPTURE`] always, [`DECRYPTED_CAPTURE`] when
/// some datagram was decrypted DTLS. Returns the files written.
pub fn write_case_captures(
    dir: &Path,
    mut datagrams: Vec<CapturedDatagram>,
) -> io::Result<Vec<PathBuf>> {
    datagrams.sort_by_key(|d| d.time);
    let mut files = vec![dir.join(WIRE_CAPTURE)];
    if datagrams
        .iter()
        .any(|d| d.carried == Carried::DecryptedCoap)
    {
        files.push(dir.join(DECRYPTED_CAPTURE));
    }
    for (file, view) in files.iter().zip([PcapView::Wire, PcapView::Decrypted]) {
        let out = std::fs::File::create(file)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", file.display())))?;
        write_pcap(&datagrams, view, io::BufWriter::new(out))
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", file.display())))?;
    }
    Ok(files)
}

fn io_error(e: PcapError) -> io::Error {
    match e {
        PcapError::IoError(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

// Exported PDU tags (Wireshark epan/exported_pdu.h): type and length are
// 16-bit big-endian, values padded to 4 bytes, the list ends with tag 0.
const TAG_END_OF_OPT: u16 = 0;
const TAG_PROTO_NAME: u16 = 12;
const TAG_IPV4_SRC: u16 = 20;
const TAG_IPV4_DST: u16 = 21;
const TAG_IPV6_SRC: u16 = 22;
const TAG_IPV6_DST: u16 = 23;
const TAG_PORT_TYPE: u16 = 24;
const TAG_SRC_PORT: u16 = 25;
const TAG_DST_PORT: u16 = 26;
/// EXP_PDU_PT_UDP.
const PORT_TYPE_UDP: u32 = 3;

/// The datagram behind its exported-PDU tags.
fn exported_pdu(d: &CapturedDatagram) -> Vec<u8> {
    let dissector = match d.carried {
        Carried::Coap | Carried::DecryptedCoap => "coap",
        Carried::Dtls => "dtls",
    };
    let mut out = Vec::with_capacity(64 + d.bytes.len());
    push_tag(&mut out, TAG_PROTO_NAME, dissector.as_bytes());
    match normalize(d.from.ip(), d.to.ip()) {
        (IpAddr::V4(s), IpAddr::V4(t)) => {
            push_tag(&mut out, TAG_IPV4_SRC, &s.octets());
            push_tag(&mut out, TAG_IPV4_DST, &t.octets());
        }
        (s, t) => {
            push_tag(&mut out, TAG_IPV6_SRC, &v6(s).octets());
            push_tag(&mut out, TAG_IPV6_DST, &v6(t).octets());
        }
    }
    push_tag(&mut out, TAG_PORT_TYPE, &PORT_TYPE_UDP.to_be_bytes());
    push_tag(
        &mut out,
        TAG_SRC_PORT,
        &u32::from(d.from.port()).to_be_bytes(),
    );
    push_tag(
        &mut out,
        TAG_DST_PORT,
        &u32::from(d.to.port()).to_be_bytes(),
    );
    push_tag(&mut out, TAG_END_OF_OPT, &[]);
    out.extend_from_slice(&d.bytes);
    out
}

fn push_tag(out: &mut Vec<u8>, tag: u16, value: &[u8]) {
    let padded = value.len().next_multiple_of(4);
    out.extend_from_slice(&tag.to_be_bytes());
    out.extend_from_slice(&(padded as u16).to_be_bytes());
    out.extend_from_slice(value);
    out.resize(out.len() + padded - value.len(), 0);
}

/// Unspecified addresses (a server bound to 0.0.0.0) as loopback, what a
/// client on this machine reached; both ends in one family (v4-mapped when
/// they differ).
fn normalize(src: IpAddr, dst: IpAddr) -> (IpAddr, IpAddr) {
    let fix = |ip: IpAddr| match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    };
    let (s, d) = (fix(src), fix(dst));
    match (s, d) {
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => (s, d),
        _ => (IpAddr::V6(v6(s)), IpAddr::V6(v6(d))),
    }
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn datagram(carried: Carried, from: &str, to: &str, bytes: &[u8]) -> CapturedDatagram {
        CapturedDatagram {
            index: 0,
            time: Utc.timestamp_opt(1_700_000_000, 123_000_000).unwrap(),
            from: from.parse().unwrap(),
            to: to.parse().unwrap(),
            carried,
            bytes: bytes.to_vec(),
        }
    }

    #[test]
    fn a_coap_datagram_becomes_an_exported_pdu_naming_the_coap_dissector() {
        let coap = [0x40, 0x01, 0x12, 0x34];
        let mut out = Vec::new();
        let n = write_pcap(
            &[datagram(
                Carried::Coap,
                "127.0.0.1:40000",
                "0.0.0.0:5683",
                &coap,
            )],
            PcapView::Wire,
            &mut out,
        )
        .unwrap();
        assert_eq!(n, 1);
        // Global header: magic (microseconds), link type 252.
        assert_eq!(&out[..4], &0xa1b2_c3d4u32.to_le_bytes());
        assert_eq!(&out[20..24], &252u32.to_le_bytes());
        // Record header: ts 1700000000.123000.
        assert_eq!(&out[24..28], &1_700_000_000u32.to_le_bytes());
        assert_eq!(&out[28..32], &123_000u32.to_le_bytes());
        let pdu = &out[40..];
        let expected: Vec<u8> = [
            &[0, 12, 0, 4][..],
            b"coap",
            &[0, 20, 0, 4, 127, 0, 0, 1],
            // The unspecified server address written as loopback.
            &[0, 21, 0, 4, 127, 0, 0, 1],
            &[0, 24, 0, 4, 0, 0, 0, 3],
            &[0, 25, 0, 4, 0, 0, 0x9c, 0x40],
            &[0, 26, 0, 4, 0, 0, 0x16, 0x33],
            &[0, 0, 0, 0],
            &coap,
        ]
        .concat();
        assert_eq!(pdu, expected);
        assert_eq!(&out[32..36], &(expected.len() as u32).to_le_bytes());
    }

    #[test]
    fn each_view_holds_its_own_datagrams() {
        let all = [
            datagram(Carried::Coap, "[::1]:1", "[::1]:2", b"plain"),
            datagram(Carried::Dtls, "[::1]:1", "[::1]:3", b"record"),
            datagram(Carried::DecryptedCoap, "[::1]:1", "[::1]:3", b"inside"),
        ];
        let mut wire = Vec::new();
        assert_eq!(write_pcap(&all, PcapView::Wire, &mut wire).unwrap(), 2);
        let mut decrypted = Vec::new();
        assert_eq!(
            write_pcap(&all, PcapView::Decrypted, &mut decrypted).unwrap(),
            2
        );
        let has = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
        assert!(has(&wire, b"dtls") && has(&wire, b"record") && !has(&wire, b"inside"));
        assert!(has(&decrypted, b"inside") && !has(&decrypted, b"record"));
        assert!(has(&wire, b"plain") && has(&decrypted, b"plain"));
    }

    #[test]
    fn an_ipv4_peer_of_an_ipv6_server_is_written_v4_mapped() {
        let pdu = exported_pdu(&datagram(Carried::Coap, "127.0.0.1:1", "[::]:5683", b""));
        // PROTO_NAME (8 bytes), then IPV6_SRC with ::ffff:127.0.0.1.
        assert_eq!(&pdu[8..12], &[0, 22, 0, 16]);
        assert_eq!(&pdu[22..28], &[0xff, 0xff, 127, 0, 0, 1]);
        assert_eq!(&pdu[28..32], &[0, 23, 0, 16]);
        assert_eq!(&pdu[32..48], &Ipv6Addr::LOCALHOST.octets());
    }

    #[test]
    fn case_captures_are_ordered_by_time_and_the_decrypted_file_only_with_dtls() {
        let dir = tempfile::tempdir().unwrap();
        let mut later = datagram(Carried::Coap, "127.0.0.1:1", "127.0.0.1:2", b"second");
        later.time += chrono::Duration::milliseconds(5);
        let earlier = datagram(Carried::Coap, "127.0.0.1:3", "127.0.0.1:2", b"first");
        let files = write_case_captures(dir.path(), vec![later.clone(), earlier]).unwrap();
        assert_eq!(files, [dir.path().join(WIRE_CAPTURE)]);
        let wire = std::fs::read(&files[0]).unwrap();
        let at = |needle: &[u8]| wire.windows(needle.len()).position(|w| w == needle);
        assert!(at(b"first").unwrap() < at(b"second").unwrap());

        let inside = datagram(Carried::DecryptedCoap, "127.0.0.1:4", "127.0.0.1:2", b"x");
        let files = write_case_captures(dir.path(), vec![later, inside]).unwrap();
        assert_eq!(files[1], dir.path().join(DECRYPTED_CAPTURE));
        assert!(files[1].is_file());
    }
}
