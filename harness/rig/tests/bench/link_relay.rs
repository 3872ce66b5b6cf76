//! The emulated link's relay over real loopback sockets, and the rig
//! file's `link:`. Fates are counted from the relay's record, never timed.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

use rig::link::{
    DirectionParams, DropReason, Fate, LinkParams, LinkProfile, Probability, Rate, Relay,
};
use rig::RigFile;

fn link(d: DirectionParams) -> LinkParams {
    LinkParams {
        name: "test".into(),
        up: d.clone(),
        down: d,
    }
}

fn socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn relay(upstream: SocketAddr, params: &LinkParams, seed: u64) -> Relay {
    Relay::start(
        "test",
        upstream,
        "127.0.0.1".parse().unwrap(),
        params,
        seed,
        0,
    )
    .unwrap()
}

/// Waits (bounded) until the relay has recorded `n` datagrams.
fn recorded(r: &Relay, n: usize) -> Vec<rig::link::RecordEntry> {
    for _ in 0..500 {
        let rec = r.record_since(0);
        if rec.len() >= n {
            return rec;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!(
        "the relay recorded {} of {n} datagrams",
        r.record_since(0).len()
    );
}

#[test]
fn a_perfect_link_relays_every_byte_both_ways_and_keeps_peers_apart() {
    let server = socket();
    let r = relay(
        server.local_addr().unwrap(),
        &link(DirectionParams::perfect()),
        1,
    );
    let (a, b) = (socket(), socket());
    // Every byte value, and an empty datagram.
    let all: Vec<u8> = (0..=255).collect();
    a.send_to(&all, r.local_addr()).unwrap();
    let mut buf = [0u8; 2048];
    let (n, from_a) = server.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &all[..]);
    b.send_to(b"", r.local_addr()).unwrap();
    let (n, from_b) = server.recv_from(&mut buf).unwrap();
    assert_eq!(n, 0);
    // The server sees one peer per device socket, neither of them the relay's front.
    assert_ne!(from_a, from_b);
    assert_ne!(from_a, r.local_addr());
    // Its answers reach the device that asked.
    server.send_to(b"to b", from_b).unwrap();
    server.send_to(&all[128..], from_a).unwrap();
    let (n, from) = b.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"to b"[..], r.local_addr()));
    let (n, _) = a.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &all[128..]);
    let rec = recorded(&r, 4);
    assert!(rec
        .iter()
        .all(|e| matches!(e.fate, Fate::Deliver(ref t) if t.len() == 1)));
    assert_eq!(rec[0].head, vec![0, 1, 2, 3]);
}

/// Sends `n` numbered datagrams up through a relay with `seed` and gives
/// back what became of each, as the record says.
fn fates_through_relay(params: &LinkParams, seed: u64, n: usize) -> Vec<String> {
    let server = socket();
    let r = relay(server.local_addr().unwrap(), params, seed);
    let device = socket();
    for i in 0..n as u32 {
        device.send_to(&i.to_be_bytes(), r.local_addr()).unwrap();
        // One at a time, so the relay sees them in order.
        recorded(&r, i as usize + 1);
    }
    recorded(&r, n)
        .into_iter()
        .map(|e| match e.fate {
            Fate::Drop(reason) => reason.as_str().to_string(),
            Fate::Deliver(t) if t.len() == 2 => "twice".into(),
            Fate::Deliver(t) if t[0] - e.at >= Duration::from_millis(20) => "held".into(),
            Fate::Deliver(_) => "once".into(),
        })
        .collect()
}

#[test]
fn the_run_seed_replays_loss_duplication_and_reordering() {
    let params = link(DirectionParams {
        loss: Probability::from_ppm(300_000),
        duplicate: Probability::from_ppm(200_000),
        reorder: Probability::from_ppm(200_000),
        ..DirectionParams::perfect()
    });
    let first = fates_through_relay(&params, 2024, 60);
    let again = fates_through_relay(&params, 2024, 60);
    let other = fates_through_relay(&params, 2025, 60);
    assert_eq!(first, again);
    assert_ne!(first, other);
    for kind in ["lost", "twice", "held", "once"] {
        assert!(first.iter().any(|f| f == kind), "no `{kind}` in {first:?}");
    }
}

#[test]
fn a_datagram_over_the_mtu_is_dropped_and_recorded_so() {
    let server = socket();
    let params = link(DirectionParams {
        mtu: Some(100),
        ..DirectionParams::perfect()
    });
    let r = relay(server.local_addr().unwrap(), &params, 1);
    let device = socket();
    device.send_to(&[7u8; 101], r.local_addr()).unwrap();
    device.send_to(&[8u8; 100], r.local_addr()).unwrap();
    let mut buf = [0u8; 256];
    // Only the one that fits arrives.
    let (n, _) = server.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &[8u8; 100][..]);
    let rec = recorded(&r, 2);
    assert_eq!(rec[0].fate, Fate::Drop(DropReason::Mtu));
    assert!(rec[0].line("test").ends_with("dropped over-mtu"));
    assert_eq!(r.counts()[0].over_mtu, 1);
}

#[test]
fn a_bandwidth_cap_queues_a_burst_and_drops_what_overflows() {
    let server = socket();
    // 8 kbit/s: a 1000-byte datagram takes 1 s to clock out (the burst
    // below is sent in far less); the queue holds what 3 datagrams still
    // have to clock out.
    let params = link(DirectionParams {
        rate: Some(Rate::bits_per_second(8_000)),
        queue: 2_500,
        ..DirectionParams::perfect()
    });
    let r = relay(server.local_addr().unwrap(), &params, 1);
    let device = socket();
    for i in 0..8u8 {
        device.send_to(&[i; 1000], r.local_addr()).unwrap();
    }
    let rec = recorded(&r, 8);
    // Three are taken
    // (0, 1000 and 2000 bytes ahead of them), the rest find the queue full.
    let delivered: Vec<usize> = rec
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e.fate, Fate::Deliver(_)))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(delivered, [0, 1, 2], "{rec:?}");
    assert_eq!(r.counts()[0].queue_full, 5);
    // Each delivered one leaves a serialisation time after the one before.
    let times: Vec<Duration> = rec[..3]
        .iter()
        .map(|e| match &e.fate {
            Fate::Deliver(t) => t[0],
            _ => unreachable!(),
        })
        .collect();
    assert!(times[1] - times[0] >= Duration::from_millis(999));
    assert!(times[2] - times[1] >= Duration::from_millis(999));
}

fn rig_with(link: &str) -> Result<RigFile, rig::RigError> {
    let text = format!("name: l\ndevice: {{ endpoint: ep, lifetime: 1m }}\nlink: {link}\n");
    RigFile::parse(&text, Path::new("rigs/l.yaml"))
}

#[test]
fn a_rig_names_a_profile_or_changes_its_figures() {
    let nb = rig_with("nb-iot").unwrap().link.unwrap().params();
    assert_eq!(nb, LinkProfile::NbIot.params());
    assert_eq!(nb.down.rate, Some(Rate::bits_per_second(26_000)));
    let custom = rig_with("{ profile: lossy, loss: 20%, up: { delay: 1s }, down: { duplicate: 0.5, mtu: 500, rate: 1Mbit/s, queue: 4KiB } }")
        .unwrap()
        .link
        .unwrap()
        .params();
    assert_eq!(custom.name, "lossy (customised)");
    assert_eq!(custom.up.loss, Probability::from_ppm(200_000));
    assert_eq!(custom.down.loss, Probability::from_ppm(200_000));
    assert_eq!(custom.up.delay, Duration::from_secs(1));
    assert_eq!(custom.down.delay, Duration::from_millis(50));
    assert_eq!(custom.down.duplicate, Probability::from_ppm(500_000));
    assert_eq!(custom.down.mtu, Some(500));
    assert_eq!(custom.down.queue, 4096);
    let plain = rig_with("{ delay: 10ms }").unwrap().link.unwrap().params();
    assert_eq!(plain.name, "custom");
    assert_eq!(plain.up.loss, Probability::ZERO);
}

#[test]
fn a_wrong_link_names_the_field_and_what_it_expects() {
    let e = rig_with("5g").unwrap_err().to_string();
    assert!(e.contains("unknown link profile `5g`"), "{e}");
    assert!(e.contains("rigs/l.yaml"), "{e}");
    let e = rig_with("{ profile: lossy, loss: 150% }")
        .unwrap_err()
        .to_string();
    assert!(e.contains("between 0 and 1"), "{e}");
    let e = rig_with("{ latency: 1s }").unwrap_err().to_string();
    assert!(e.contains("latency"), "{e}");
    let e = rig_with("{ mtu: 0 }").unwrap_err().to_string();
    assert!(e.contains("link.mtu"), "{e}");
}

#[test]
fn a_device_rebooting_again_and_again_never_runs_the_relay_out_of_peers() {
    let server = socket();
    let r = relay(
        server.local_addr().unwrap(),
        &link(DirectionParams::perfect()),
        1,
    );
    let mut buf = [0u8; 64];
    let mut froms = Vec::new();
    // Each boot a new source port, as the virtual meter's sockets are.
    for boot in 0..(rig::link::relay::MAX_PEERS as u8 + 4) {
        let device = socket();
        device.send_to(&[boot], r.local_addr()).unwrap();
        let (n, from) = server.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[boot]);
        froms.push(from);
        // And the newest device still gets its answers.
        server.send_to(&[boot, boot], from).unwrap();
        let (n, _) = device.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[boot, boot]);
    }
    // One server-side peer per boot: the peers the relay still holds (the
    // last MAX_PEERS boots) all have sockets of their own. An evicted peer's
    // port may be handed out again by the kernel, so earlier ones may repeat.
    let live: std::collections::BTreeSet<_> = froms
        .iter()
        .rev()
        .take(rig::link::relay::MAX_PEERS)
        .collect();
    assert_eq!(
        live.len(),
        rig::link::relay::MAX_PEERS,
        "one server-side peer per boot: {froms:?}"
    );
    assert!(froms.windows(2).all(|w| w[0] != w[1]), "{froms:?}");
    let last = recorded(&r, 2 * (rig::link::relay::MAX_PEERS + 4))
        .pop()
        .unwrap();
    assert_eq!(
        last.peer,
        rig::link::relay::MAX_PEERS + 3,
        "peer numbers are never reused"
    );
}
