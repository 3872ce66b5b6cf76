//! A meter for the server's integration tests: the sans-IO
//! `lwm2m::client::Client` driven over a real 127.0.0.1 UDP socket, the same
//! way the server crate drives the server core.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lwm2m::client::{Client, ClientConfig, ClientEvent, ObjectStore};
use lwm2m::model::{ObjectDef, Operations, ResourceDef, ResourceType};
use lwm2m::{ContentFormat, Path, Registry, Value};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};

fn resource(id: u16, name: &str, ops: &str, kind: ResourceType) -> ResourceDef {
    ResourceDef {
        id,
        name: name.into(),
        operations: Operations {
            read: ops.contains('R'),
            write: ops.contains('W'),
            execute: ops.contains('E'),
        },
        multiple: false,
        mandatory: false,
        kind,
        units: None,
        description: String::new(),
    }
}

/// Object 3 (Device) with the resources the tests touch, as in the OMA registry's 3.xml.
pub fn registry() -> Registry {
    let resources = [
        resource(0, "Manufacturer", "R", ResourceType::String),
        resource(1, "Model Number", "R", ResourceType::String),
        resource(4, "Reboot", "E", ResourceType::None),
        resource(9, "Battery Level", "R", ResourceType::Integer),
        resource(13, "Current Time", "RW", ResourceType::Time),
        resource(14, "UTC Offset", "RW", ResourceType::String),
    ];
    let device = ObjectDef {
        id: 3,
        name: "Device".into(),
        version: "1.1".into(),
        urn: "urn:oma:lwm2m:oma:3:1.1".into(),
        multiple: false,
        mandatory: true,
        resources: resources
            .into_iter()
            .map(|r| (r.id, r))
            .collect::<BTreeMap<_, _>>(),
    };
    Registry::from_objects([device])
}

pub fn path(s: &str) -> Path {
    s.parse().expect("test path")
}

enum Command {
    SetValue(Path, Value),
    Stop,
    Quit,
}

pub struct VirtualMeter {
    pub local_addr: SocketAddr,
    commands: mpsc::UnboundedSender<Command>,
    events: Arc<Mutex<Vec<ClientEvent>>>,
    task: JoinHandle<()>,
}

impl VirtualMeter {
    /// Binds 127.0.0.1:0 and starts registering with `server`.
    pub async fn start(endpoint: &str, server: SocketAddr, lifetime: Duration) -> VirtualMeter {
        let registry = registry();
        let mut store = ObjectStore::new(registry.clone());
        store.set(path("/3/0/0"), Value::String("meterbench".into()));
        store.set(path("/3/0/1"), Value::String("vm-1".into()));
        store.set(path("/3/0/9"), Value::Integer(87));
        store.set(path("/3/0/13"), Value::Time(1_700_000_000));
        store.set(path("/3/0/14"), Value::String("+01:00".into()));
        let config = ClientConfig {
            endpoint: endpoint.into(),
            server,
            lifetime,
            lwm2m_version: "1.1".into(),
            binding: "U".into(),
            registry,
            preferred_format: ContentFormat::Tlv,
            seed: 7,
            bootstrap: None,
            retry: Default::default(),
        };
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind meter socket");
        let local_addr = socket.local_addr().unwrap();
        let (commands, rx) = mpsc::unbounded_channel();
        let events = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(run(socket, Client::new(config, store), rx, events.clone()));
        VirtualMeter {
            local_addr,
            commands,
            events,
            task,
        }
    }

    pub fn set_value(&self, path: Path, value: Value) {
        let _ = self.commands.send(Command::SetValue(path, value));
    }

    /// Sends De-register (the task keeps running to handle its ACK).
    pub fn deregister(&self) {
        let _ = self.commands.send(Command::Stop);
    }

    /// Waits (bounded) until the meter has seen an event `pred` accepts.
    pub async fn wait_for(
        &self,
        within: Duration,
        pred: impl Fn(&ClientEvent) -> bool,
    ) -> ClientEvent {
        let deadline = Instant::now() + within;
        loop {
            if let Some(e) = self.events.lock().unwrap().iter().find(|e| pred(e)) {
                return e.clone();
            }
            assert!(
                Instant::now() < deadline,
                "meter did not see the expected event; it saw {:?}",
                self.events()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn events(&self) -> Vec<ClientEvent> {
        self.events.lock().unwrap().clone()
    }

    /// Stops the task without deregistering (the meter "loses power").
    pub async fn kill(self) {
        let _ = self.commands.send(Command::Quit);
        let _ = self.task.await;
    }
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

async fn run(
    socket: UdpSocket,
    mut client: Client,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: Arc<Mutex<Vec<ClientEvent>>>,
) {
    client.start(now());
    let mut buf = vec![0u8; 65_535];
    loop {
        while let Some(t) = client.poll_transmit() {
            let _ = socket.send_to(&t.payload, t.destination).await;
        }
        while let Some(e) = client.poll_event() {
            events.lock().unwrap().push(e);
        }
        let deadline = client.poll_timeout().map(Instant::from_std);
        let wake_at = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                if let Ok((n, peer)) = r {
                    client.handle_datagram(now(), peer, &buf[..n]);
                }
            }
            () = sleep_until(wake_at), if deadline.is_some() => client.handle_timeout(now()),
            c = commands.recv() => match c {
                Some(Command::SetValue(p, v)) => client.set_value(now(), p, v).expect("set_value"),
                Some(Command::Stop) => client.stop(now()),
                Some(Command::Quit) | None => break,
            },
        }
    }
}
