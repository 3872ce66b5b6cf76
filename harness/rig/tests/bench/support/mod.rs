//! What the SCPI supply tests share: the spec of a supply reached over
//! loopback TCP (the simulated supply), set to a meter's 3.6 V and 500 mA.

use std::net::SocketAddr;
use std::time::Duration;

use rig::model::{ScpiAddress, ScpiCommands, ScpiPowerSpec};
use rig::power::{Amps, Volts};

/// A supply at `addr` over TCP with the default command set, answering
/// within `timeout`, checking its error queue after each setting.
pub fn scpi_spec(addr: SocketAddr, timeout: Duration) -> ScpiPowerSpec {
    ScpiPowerSpec {
        address: ScpiAddress::Tcp {
            host: addr.ip().to_string(),
            port: addr.port(),
        },
        channel: None,
        voltage: Volts::from_milli(3600),
        current_limit: Amps::from_milli(500),
        timeout,
        check_errors: true,
        commands: ScpiCommands::default(),
    }
}
