//! The message log as a pcap file Wireshark opens (and dissects as CoAP on
//! port 5683, or with "Decode As" on others). For a coaps server the log
//! holds the decrypted CoAP, so the pcap shows plaintext CoAP on the DTLS
//! port; transport notes (handshakes) are left out.
//!
//! The log holds UDP payloads only, so each datagram is wrapped in a
//! synthesized IPv4 or IPv6 + UDP header (LINKTYPE_RAW, 101) between the
//! server's address and the peer. Format: the classic libpcap file format
//! (draft-ietf-opsawg-pcap §4, §5), microsecond timestamps, little-endian.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::message_log::{Direction, LogEntry};

/// LINKTYPE_RAW: the packet begins with an IPv4 or IPv6 header.
const LINKTYPE_RAW: u32 = 101;
const SNAPLEN: u32 = 262_144;
const UDP: u8 = 17;

/// Writes `entries` as a pcap file. `server` is the address the server was
/// bound to (an unspecified address is written as loopback).
pub fn write_pcap(entries: &[LogEntry], server: SocketAddr, mut out: impl Write) -> io::Result<()> {
    let mut header = Vec::with_capacity(24);
    header.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    header.extend_from_slice(&2u16.to_le_bytes());
    header.extend_from_slice(&4u16.to_le_bytes());
    header.extend_from_slice(&0i32.to_le_bytes()); // thiszone
    header.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    header.extend_from_slice(&SNAPLEN.to_le_bytes());
    header.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
    out.write_all(&header)?;
    for entry in entries {
        let (src, dst) = match entry.direction {
            Direction::In => (entry.peer, server),
            Direction::Out => (server, entry.peer),
            // Transport notes are not datagrams.
            Direction::Note => continue,
        };
        let packet = ip_udp_packet(src, dst, &entry.bytes);
        let micros = entry.time.timestamp_micros();
        let mut record = Vec::with_capacity(16 + packet.len());
        record.extend_from_slice(&((micros.div_euclid(1_000_000)) as u32).to_le_bytes());
        record.extend_from_slice(&((micros.rem_euclid(1_000_000)) as u32).to_le_bytes());
        record.extend_from_slice(&(packet.len() as u32).to_le_bytes());
        record.extend_from_slice(&(packet.len() as u32).to_le_bytes());
        record.extend_from_slice(&packet);
        out.write_all(&record)?;
    }
    out.flush()
}

/// Both ends in the peer's address family (a v4 server address seen by a v6
/// peer is written v4-mapped), unspecified addresses as loopback.
fn normalize(src: SocketAddr, dst: SocketAddr) -> (IpAddr, IpAddr) {
    let fix = |ip: IpAddr| match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    };
    let (s, d) = (fix(src.ip()), fix(dst.ip()));
    match (s, d) {
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => (s, d),
        (IpAddr::V4(a), IpAddr::V6(b)) => (IpAddr::V6(a.to_ipv6_mapped()), IpAddr::V6(b)),
        (IpAddr::V6(a), IpAddr::V4(b)) => (IpAddr::V6(a), IpAddr::V6(b.to_ipv6_mapped())),
    }
}

fn ip_udp_packet(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    // Truncate absurd sizes rather than write a length that wraps.
    let payload = &payload[..payload.len().min(65_507)];
    let udp_len = (8 + payload.len()) as u16;
    let mut udp = Vec::with_capacity(udp_len as usize);
    udp.extend_from_slice(&src.port().to_be_bytes());
    udp.extend_from_slice(&dst.port().to_be_bytes());
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    match normalize(src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut pseudo = Vec::with_capacity(12);
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&[0, UDP]);
            pseudo.extend_from_slice(&udp_len.to_be_bytes());
            set_udp_checksum(&mut udp, &pseudo);
            let total = 20 + udp.len() as u16;
            let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, UDP, 0, 0];
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            ip.extend_from_slice(&s.octets());
            ip.extend_from_slice(&d.octets());
            let sum = checksum(&[&ip]);
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            ip.extend_from_slice(&udp);
            ip
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut pseudo = Vec::with_capacity(40);
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&u32::from(udp_len).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, UDP]);
            set_udp_checksum(&mut udp, &pseudo);
            let mut ip = vec![0x60, 0, 0, 0];
            ip.extend_from_slice(&udp_len.to_be_bytes());
            ip.extend_from_slice(&[UDP, 64]);
            ip.extend_from_slice(&s.octets());
            ip.extend_from_slice(&d.octets());
            ip.extend_from_slice(&udp);
            ip
        }
        _ => unreachable!("normalize returns one family"),
    }
}

/// RFC 768: a computed checksum of 0 is sent as 0xffff.
fn set_udp_checksum(udp: &mut [u8], pseudo: &[u8]) {
    let sum = match checksum(&[pseudo, udp]) {
        0 => 0xffff,
        s => s,
    };
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
}

/// The Internet checksum (RFC 1071) over the concatenation of `parts`, each of even length except the last.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        let mut chunks = part.chunks_exact(2);
        for c in &mut chunks {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u32::from(u16::from_be_bytes([*last, 0]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn entry(direction: Direction, peer: &str, bytes: &[u8]) -> LogEntry {
        LogEntry {
            index: 0,
            time: Utc.timestamp_opt(1_700_000_000, 123_000_000).unwrap(),
            direction,
            peer: peer.parse().unwrap(),
            summary: String::new(),
            bytes: bytes.to_vec(),
            send_error: None,
        }
    }

    #[test]
    fn rfc1071_example_checksum() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2, checksum 220d.
        assert_eq!(
            checksum(&[&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]]),
            0x220d
        );
    }

    #[test]
    fn an_inbound_ipv4_datagram_becomes_one_raw_ip_record() {
        let coap = [0x40, 0x01, 0x12, 0x34];
        let mut out = Vec::new();
        write_pcap(
            &[entry(Direction::In, "127.0.0.1:40000", &coap)],
            "0.0.0.0:5683".parse().unwrap(),
            &mut out,
        )
        .unwrap();
        // Global header: magic, 2.4, zone 0, sigfigs 0, snaplen, LINKTYPE_RAW.
        assert_eq!(&out[..8], &[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0]);
        assert_eq!(&out[20..24], &101u32.to_le_bytes());
        // Record header: ts 1700000000.123000, lengths 20 + 8 + 4.
        assert_eq!(&out[24..28], &1_700_000_000u32.to_le_bytes());
        assert_eq!(&out[28..32], &123_000u32.to_le_bytes());
        assert_eq!(&out[32..36], &32u32.to_le_bytes());
        assert_eq!(&out[36..40], &32u32.to_le_bytes());
        let ip = &out[40..];
        assert_eq!(ip.len(), 32);
        assert_eq!(&ip[..4], &[0x45, 0, 0, 32]);
        assert_eq!(ip[9], UDP);
        assert_eq!(checksum(&[&ip[..20]]), 0, "IPv4 header checksum verifies");
        assert_eq!(&ip[12..20], &[127, 0, 0, 1, 127, 0, 0, 1]);
        // UDP 40000 -> 5683, length 12.
        assert_eq!(&ip[20..26], &[0x9c, 0x40, 0x16, 0x33, 0, 12]);
        let pseudo = [127, 0, 0, 1, 127, 0, 0, 1, 0, UDP, 0, 12];
        assert_eq!(checksum(&[&pseudo, &ip[20..]]), 0, "UDP checksum verifies");
        assert_eq!(&ip[28..], &coap);
    }

    #[test]
    fn an_outbound_ipv6_datagram_goes_from_the_server_to_the_peer() {
        let mut out = Vec::new();
        write_pcap(
            &[entry(Direction::Out, "[::1]:40000", &[0x60, 0x44, 0, 1])],
            "[::1]:5683".parse().unwrap(),
            &mut out,
        )
        .unwrap();
        let ip = &out[40..];
        assert_eq!(ip.len(), 40 + 8 + 4);
        assert_eq!(ip[0] >> 4, 6);
        assert_eq!(&ip[4..7], &[0, 12, UDP]);
        assert_eq!(&ip[40..44], &[0x16, 0x33, 0x9c, 0x40]);
    }
}
