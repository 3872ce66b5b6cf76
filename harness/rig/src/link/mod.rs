//! An emulated link between the virtual device and the servers, a wrapper
//! in the spirit of smoltcp's `FaultInjector`: the runner puts a UDP relay
//! ([`Relay`]) in front of each server and gives the device the relays'
//! addresses, so the servers and the device stay unchanged and every
//! datagram between them is delayed, jittered, lost, duplicated,
//! reordered, dropped above an MTU and clocked through a bandwidth cap
//! ([`LinkEmulator`], sans-IO), each direction on its own figures.
//! Named profiles ([`LinkProfile`]: `nb-iot`, `lte-m`, `lossy`) carry
//! published figures, each cited where it is set.
//!
//! Datagrams above the MTU are dropped, not refused back to the sender and
//! not fragmented. A cellular UE's IP stack sees a link MTU (TS 23.401
//! Annex C) and a datagram above it never arrives whole: the network
//! fragments it or drops it, and ICMP rarely makes it back to a device
//! behind a carrier's firewall. A CoAP endpoint must keep its messages
//! within the path MTU (RFC 7252 §4.6) — a device that sends too large a
//! block should be seen failing to get it through, exactly as it would in
//! the field. The record says `dropped over-mtu` so the reason is plain.
//!
//! Randomness comes from the run's seed (SplitMix64, [`rng`]), mixed with
//! the device's name on a rig of several devices ([`rng::device_seed`]) so
//! that each device draws its own fates: the same `--seed` replays the same
//! fates, device by device and datagram by datagram.
//!
//! HTTP firmware downloads run over TCP and cross a TCP relay of their own
//! ([`TcpRelay`]): the link's delay and bandwidth cap apply to them, its
//! loss, duplication, reordering, jitter and MTU do not (TCP recovers
//! those itself; see [`tcp_relay`] for why).

pub mod emulator;
pub mod params;
pub mod record;
pub mod relay;
pub mod rng;
pub mod spec;
pub mod tcp_relay;

pub use emulator::{DropReason, Fate, LinkEmulator};
pub use params::{Direction, DirectionParams, LinkParams, LinkProfile, Probability, Rate};
pub use record::{LinkCounts, RecordEntry};
pub use relay::Relay;
pub use spec::{DirectionSpec, LinkSpec};
pub use tcp_relay::{StreamCounts, TcpRelay};
