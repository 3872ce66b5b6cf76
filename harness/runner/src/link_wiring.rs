//! The rig's emulated link ([`rig::link`]) wired in front of the servers:
//! a relay per server the device reaches over UDP (the LwM2M server, the
//! bootstrap server, the CoAP and CoAPS file servers) and a TCP relay in
//! front of the HTTP file server ([`rig::link::TcpRelay`]: the link's delay
//! and bandwidth cap, not its loss, which is TCP's business), started when the
//! device is first given that server's address, so the URIs the device
//! learns (bring-up, the bootstrap server's account, Package URIs) name
//! the relays. The servers and the device are unchanged.
//!
//! Each device of a rig has its own link ([`rig::link::rng::device_seed`]:
//! the run's seed mixed with the device's name), so the devices of a
//! `devices:` rig do not lose, delay and duplicate the same datagrams in
//! lockstep; a rig of one device draws from the run's seed itself.
//!
//! Each case's `link.log` holds what the link did to each of its
//! datagrams (arrival time, direction, CoAP header, fate); a wait that
//! runs out on a link that loses everything says so ([`LinkWiring::cause`]).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rig::link::{Direction, Fate, LinkParams, Relay, TcpRelay};
use rig::RigFile;

use crate::session::Session;

/// The relays of one rig's link.
pub struct LinkWiring {
    params: LinkParams,
    /// The run's seed, which `--seed` replays.
    seed: u64,
    /// This device's draws: [`rig::link::rng::device_seed`] of `seed`.
    device_seed: u64,
    /// The device of a `devices:` rig this link serves.
    device: Option<String>,
    /// What `link.log` times count from: when the link was set up.
    epoch: std::time::Instant,
    /// Where the relays bind: the servers' address (the device reaches the
    /// harness there, or by the rig's `advertise` host).
    bind_ip: IpAddr,
    relays: Mutex<Relays>,
}

#[derive(Default)]
struct Relays {
    running: Vec<Relay>,
    /// Per relay, where the running case's record starts.
    case_marks: Vec<usize>,
    /// In front of HTTP file servers.
    tcp: Vec<TcpRelay>,
}

impl std::fmt::Debug for LinkWiring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LinkWiring({})", self.params)
    }
}

impl LinkWiring {
    /// The rig's link, if its file gives one; its draws come from the run's
    /// `seed` and the device's name (`rig` is one device's rig).
    pub fn for_rig(rig: &RigFile, seed: u64) -> Option<LinkWiring> {
        let spec = rig.link.as_ref()?;
        let params = spec.params();
        let device = rig.device_name.clone();
        let device_seed = rig::link::rng::device_seed(seed, device.as_deref());
        tracing::info!(rig = %rig.name, device = device.as_deref().unwrap_or("-"), seed, device_seed, link = %params, "emulated link between device and servers");
        Some(LinkWiring {
            params,
            seed,
            device_seed,
            device,
            epoch: std::time::Instant::now(),
            bind_ip: rig.server.bind.ip(),
            relays: Mutex::new(Relays::default()),
        })
    }

    fn relays(&self) -> MutexGuard<'_, Relays> {
        self.relays.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The address the device is given for `upstream`: its relay's,
    /// started on first use. A relay that cannot start leaves the device
    /// on the server itself, logged as an error (a loopback bind on an
    /// ephemeral port does not fail in practice).
    pub fn front(&self, upstream: SocketAddr, label: &str) -> SocketAddr {
        let mut relays = self.relays();
        if let Some(r) = relays.running.iter().find(|r| r.upstream() == upstream) {
            return r.local_addr();
        }
        let stream = relays.running.len() as u64;
        match Relay::start(
            label,
            upstream,
            self.bind_ip,
            &self.params,
            self.device_seed,
            stream,
        ) {
            Ok(r) => {
                let addr = r.local_addr();
                relays.running.push(r);
                // A relay started mid-case records that case from its start.
                relays.case_marks.push(0);
                addr
            }
            Err(e) => {
                tracing::error!(%upstream, error = %e, "the link relay could not start: the device reaches {label} directly");
                upstream
            }
        }
    }

    /// The address the device is given for the TCP server at `upstream`:
    /// its TCP relay's, started on first use (or the server itself, logged,
    /// if the relay cannot start).
    pub fn front_tcp(&self, upstream: SocketAddr, label: &str) -> SocketAddr {
        let mut relays = self.relays();
        if let Some(r) = relays.tcp.iter().find(|r| r.upstream() == upstream) {
            return r.local_addr();
        }
        match TcpRelay::start(label, upstream, self.bind_ip, &self.params) {
            Ok(r) => {
                let addr = r.local_addr();
                relays.tcp.push(r);
                addr
            }
            Err(e) => {
                tracing::error!(%upstream, error = %e, "the link TCP relay could not start: the device reaches {label} directly");
                upstream
            }
        }
    }

    /// `uri` (`coap://`, `coaps://` or `http://host:port/...`) with its
    /// port replaced by the port of the relay in front of `host:port` (a
    /// TCP relay for HTTP); other schemes (HTTPS, whose certificate names
    /// the server) and URIs without a port are left as they are.
    pub fn via(&self, uri: &str) -> String {
        let Some((scheme, rest)) = uri.split_once("://") else {
            return uri.to_string();
        };
        if scheme != "coap" && scheme != "coaps" && scheme != "http" {
            return uri.to_string();
        }
        let end = rest.find('/').unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        let Some((host, port)) = authority.rsplit_once(':') else {
            return uri.to_string();
        };
        let Ok(port) = port.parse::<u16>() else {
            return uri.to_string();
        };
        let label = format!("firmware-{scheme}");
        let upstream = SocketAddr::new(self.bind_ip, port);
        let front = if scheme == "http" {
            self.front_tcp(upstream, &label)
        } else {
            self.front(upstream, &label)
        };
        format!("{scheme}://{host}:{}{path}", front.port())
    }

    /// A case starts: its `link.log` begins here.
    pub fn start_case(&self) {
        let mut relays = self.relays();
        relays.case_marks = relays.running.iter().map(Relay::mark).collect();
    }

    /// A case ends: writes `link.log` into `dir` (the link's figures, the
    /// seed, and each datagram since [`LinkWiring::start_case`] on every
    /// relay, oldest first, times since the link was set up).
    pub fn finish_case(&self, dir: &Path) {
        let relays = self.relays();
        let mut text = format!(
            "# link {}\n# seed {} (replay with --seed {})\n",
            self.params, self.seed, self.seed
        );
        if let Some(device) = &self.device {
            let _ = writeln!(
                text,
                "# device {device}: its own draws, seed {} from the run's seed and its name",
                self.device_seed
            );
        }
        let mut lines: Vec<(std::time::Duration, String)> = Vec::new();
        for (i, relay) in relays.running.iter().enumerate() {
            let [up, down] = relay.counts();
            let _ = writeln!(
                text,
                "# relay {} {} -> {}: up {} datagrams ({} dropped, {} duplicated), down {} ({} dropped, {} duplicated) since the run began",
                relay.label(),
                relay.local_addr(),
                relay.upstream(),
                up.datagrams,
                up.dropped(),
                up.duplicated,
                down.datagrams,
                down.dropped(),
                down.duplicated
            );
            let mark = relays.case_marks.get(i).copied().unwrap_or(0);
            // Each relay counts from its own start: shifted to the link's.
            let shift = relay.started().saturating_duration_since(self.epoch);
            for mut e in relay.record_since(mark) {
                e.at += shift;
                if let Fate::Deliver(times) = &mut e.fate {
                    for t in times {
                        *t += shift;
                    }
                }
                lines.push((e.at, e.line(relay.label())));
            }
        }
        for relay in &relays.tcp {
            let c = relay.counts();
            let _ = writeln!(
                text,
                "# tcp relay {} {} -> {}: {} connections, up {} bytes, down {} bytes since the run began (delay and rate apply; loss, duplication, reordering and jitter are TCP's)",
                relay.label(),
                relay.local_addr(),
                relay.upstream(),
                c.connections,
                c.up_bytes,
                c.down_bytes
            );
        }
        lines.sort_by_key(|(at, _)| *at);
        for (_, line) in lines {
            text.push_str(&line);
            text.push('\n');
        }
        if let Err(e) = std::fs::write(dir.join("link.log"), text) {
            tracing::warn!(error = %e, "link.log not written");
        }
    }

    /// Why a wait ran out, when the link is the reason: it loses every
    /// datagram of a direction. Counts what it dropped so far.
    pub fn cause(&self) -> Option<String> {
        let why = self.params.impossible()?;
        let relays = self.relays();
        let dropped: u64 = relays
            .running
            .iter()
            .map(|r| {
                let [up, down] = r.counts();
                [(Direction::Up, up), (Direction::Down, down)]
                    .into_iter()
                    .filter(|(d, _)| self.params.direction(*d).loss.is_certain())
                    .map(|(_, c)| c.lost)
                    .sum::<u64>()
            })
            .sum();
        Some(format!("{why} ({dropped} datagrams dropped)"))
    }
}

impl Session {
    /// The address the device is given for the server at `addr`: the
    /// link's relay in front of it, or `addr` itself without a link.
    pub fn device_facing(&self, addr: SocketAddr, label: &str) -> SocketAddr {
        match &self.link {
            Some(link) => link.front(addr, label),
            None => addr,
        }
    }

    /// A Package URI as the device must be given it: through the link's
    /// relay when the rig has a link.
    pub fn via_link(&self, uri: &str) -> String {
        match &self.link {
            Some(link) => link.via(uri),
            None => uri.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wiring(link: &str) -> LinkWiring {
        let text = format!("name: l\ndevice: {{ endpoint: ep, lifetime: 1m }}\nlink: {link}\n");
        let rig = RigFile::parse(&text, Path::new("l.yaml")).unwrap();
        LinkWiring::for_rig(&rig, 5).unwrap()
    }

    #[test]
    fn coap_and_http_uris_are_pointed_at_a_relay_and_others_left_alone() {
        let w = wiring("lossy");
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let uri = format!("coap://127.0.0.1:{port}/fw/meter-2.0.bin");
        let relayed = w.via(&uri);
        assert_ne!(relayed, uri);
        assert!(relayed.starts_with("coap://127.0.0.1:") && relayed.ends_with("/fw/meter-2.0.bin"));
        // The same server gets the same relay.
        assert_eq!(w.via(&uri), relayed);
        let https = format!("https://127.0.0.1:{port}/fw/meter-2.0.bin");
        assert_eq!(w.via(&https), https);
        assert_eq!(w.via("coap://host/no-port"), "coap://host/no-port");
    }

    /// An HTTP Package URI names a TCP relay in front of the file server,
    /// and a request made to it reaches the server and is answered.
    #[test]
    fn an_http_pull_crosses_the_link() {
        use std::io::{Read, Write};
        let w = wiring("lte-m");
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let served = std::thread::spawn(move || {
            let (mut c, _) = server.accept().unwrap();
            let mut request = [0u8; 64];
            let n = c.read(&mut request).unwrap();
            c.write_all(b"HTTP/1.0 200 OK\r\n\r\nimage").unwrap();
            String::from_utf8_lossy(&request[..n]).into_owned()
        });
        let uri = format!("http://127.0.0.1:{port}/fw/meter-2.0.bin");
        let relayed = w.via(&uri);
        let front: u16 = relayed
            .strip_prefix("http://127.0.0.1:")
            .and_then(|r| r.strip_suffix("/fw/meter-2.0.bin"))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{relayed} names a relay"));
        assert_ne!(front, port);
        assert_eq!(w.via(&uri), relayed, "one relay per server");
        let mut device = std::net::TcpStream::connect(("127.0.0.1", front)).unwrap();
        device
            .set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        device
            .write_all(b"GET /fw/meter-2.0.bin HTTP/1.0\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        device.read_to_string(&mut answer).unwrap();
        assert_eq!(answer, "HTTP/1.0 200 OK\r\n\r\nimage");
        assert!(served.join().unwrap().starts_with("GET /fw/meter-2.0.bin"));
        let dir = tempfile::tempdir().unwrap();
        w.finish_case(dir.path());
        let log = std::fs::read_to_string(dir.path().join("link.log")).unwrap();
        assert!(
            log.contains("# tcp relay firmware-http")
                && log.contains("1 connections, up 34 bytes, down 24 bytes"),
            "{log}"
        );
    }

    /// The fates the first relay of `w` would give 200 datagrams.
    fn fates(w: &LinkWiring) -> Vec<Fate> {
        let mut e = rig::link::LinkEmulator::new(&w.params, w.device_seed, 0);
        (0..200u64)
            .map(|i| e.admit(Direction::Up, std::time::Duration::from_millis(i * 10), 100))
            .collect()
    }

    /// Two meters of one `devices:` rig on a lossy link lose different
    /// datagrams; the same run seed gives each the same pattern again.
    #[test]
    fn each_device_of_a_rig_draws_its_own_link_and_a_seed_replays_it() {
        let text =
            "name: l\ndevice: { endpoint: ep, lifetime: 1m }\nlink: lossy\ndevices: { count: 2 }\n";
        let rig = RigFile::parse(text, Path::new("l.yaml")).unwrap();
        let devices = rig.device_rigs();
        assert_eq!(devices.len(), 2);
        let wired = |seed| -> Vec<LinkWiring> {
            devices
                .iter()
                .map(|d| LinkWiring::for_rig(d, seed).unwrap())
                .collect()
        };
        let (first, again) = (wired(5), wired(5));
        let lost = |w: &LinkWiring| -> Vec<usize> {
            fates(w)
                .iter()
                .enumerate()
                .filter(|(_, f)| matches!(f, Fate::Drop(_)))
                .map(|(i, _)| i)
                .collect()
        };
        assert!(
            !lost(&first[0]).is_empty(),
            "a lossy link loses some of 200"
        );
        assert_ne!(lost(&first[0]), lost(&first[1]));
        assert_eq!(fates(&first[0]), fates(&again[0]));
        assert_eq!(fates(&first[1]), fates(&again[1]));
        assert_ne!(fates(&first[0]), fates(&wired(6)[0]));
    }

    #[test]
    fn only_total_loss_is_given_as_the_cause() {
        assert_eq!(wiring("lossy").cause(), None);
        let w = wiring("{ profile: nb-iot, up: { loss: 100% } }");
        assert_eq!(
            w.cause().unwrap(),
            "loss 100 % on the link `nb-iot (customised)` (device -> servers): no datagram gets through (0 datagrams dropped)"
        );
    }
}
