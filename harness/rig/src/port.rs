//! Which serial port a rig's modem is on. A USB modem's `/dev/ttyACMn` number
//! changes with plug order and with every power-on re-enumeration, so a rig
//! names the port by something stable: a `/dev/serial/by-id/…` or
//! `/dev/serial/by-path/…` link (udev keeps those), or the USB serial number
//! of the device (`usb:<serial>`, `usb:<serial>:<interface>` for a modem
//! with several AT ports), looked up among the system's ports each time the
//! port is opened.

use std::fmt;
use std::path::{Path, PathBuf};

use serialport::{SerialPortInfo, SerialPortType};

use crate::error::RigError;

/// A rig's choice of serial port, resolved to a device path at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSelector {
    /// A device path or a stable link to one.
    Path(PathBuf),
    /// The port of the USB device with this serial number (iSerial) and,
    /// for composite modems, this interface number (bInterfaceNumber).
    UsbSerial {
        serial: String,
        interface: Option<u8>,
    },
}

impl PortSelector {
    /// `usb:<serial>[:<interface>]` selects by USB serial number; anything
    /// else is a path.
    pub fn parse(text: &Path) -> PortSelector {
        let Some(rest) = text.to_str().and_then(|t| t.strip_prefix("usb:")) else {
            return PortSelector::Path(text.to_path_buf());
        };
        if let Some((serial, iface)) = rest.rsplit_once(':') {
            if let Ok(interface) = iface.parse::<u8>() {
                return PortSelector::UsbSerial {
                    serial: serial.into(),
                    interface: Some(interface),
                };
            }
        }
        PortSelector::UsbSerial {
            serial: rest.into(),
            interface: None,
        }
    }

    /// The device path to open now, looking USB serial numbers up among
    /// the system's serial ports.
    pub fn resolve(&self) -> Result<PathBuf, RigError> {
        match self {
            PortSelector::Path(p) => Ok(p.clone()),
            PortSelector::UsbSerial { .. } => {
                let ports = serialport::available_ports().map_err(|e| RigError::Open {
                    port: self.to_string(),
                    message: format!("cannot list serial ports: {e}"),
                })?;
                self.resolve_in(&ports)
            }
        }
    }

    /// [`PortSelector::resolve`] among `ports`. No match, or several
    /// interfaces of one device without an interface chosen, is an error
    /// listing every port seen, with its USB serial number and interface.
    pub fn resolve_in(&self, ports: &[SerialPortInfo]) -> Result<PathBuf, RigError> {
        let PortSelector::UsbSerial { serial, interface } = self else {
            return self.resolve();
        };
        let matches: Vec<&SerialPortInfo> = ports
            .iter()
            .filter(|p| match &p.port_type {
                SerialPortType::UsbPort(u) => {
                    u.serial_number.as_deref() == Some(serial.as_str())
                        && interface.is_none_or(|i| u.interface == Some(i))
                }
                _ => false,
            })
            .collect();
        match matches.as_slice() {
            [one] => Ok(PathBuf::from(&one.port_name)),
            [] => Err(RigError::PortNotFound {
                wanted: self.to_string(),
                seen: ports.iter().map(describe).collect(),
            }),
            several => Err(RigError::PortNotFound {
                wanted: format!(
                    "{self} (exactly one port: {} match, so add the interface, `usb:{serial}:<n>`)",
                    several.len()
                ),
                seen: ports.iter().map(describe).collect(),
            }),
        }
    }
}

impl fmt::Display for PortSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortSelector::Path(p) => write!(f, "{}", p.display()),
            PortSelector::UsbSerial {
                serial,
                interface: None,
            } => write!(f, "USB serial number {serial:?}"),
            PortSelector::UsbSerial {
                serial,
                interface: Some(i),
            } => write!(f, "USB serial number {serial:?}, interface {i}"),
        }
    }
}

/// One port as a lab engineer needs to see it to fix a rig file.
fn describe(p: &SerialPortInfo) -> String {
    match &p.port_type {
        SerialPortType::UsbPort(u) => format!(
            "{} (USB {:04x}:{:04x}, serial {}, interface {}{})",
            p.port_name,
            u.vid,
            u.pid,
            u.serial_number
                .as_deref()
                .map(|s| format!("{s:?}"))
                .unwrap_or_else(|| "none".into()),
            u.interface
                .map(|i| i.to_string())
                .unwrap_or_else(|| "?".into()),
            u.product
                .as_deref()
                .map(|s| format!(", {s}"))
                .unwrap_or_default(),
        ),
        SerialPortType::PciPort => format!("{} (PCI)", p.port_name),
        SerialPortType::BluetoothPort => format!("{} (Bluetooth)", p.port_name),
        SerialPortType::Unknown => p.port_name.clone(),
    }
}
