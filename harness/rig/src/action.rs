//! The abstract modem actions a case names (`at: { command: lwm2m_start }`)
//! and each dialect maps to its own AT line. This list is the one place the
//! vocabulary is written down: a dialect may map any subset of it, and a case
//! whose step names an action its rig's dialect lacks is skipped as "not
//! supported by this modem" — the harness never invents a command.
//!
//! Why a closed list: the same case runs on the virtual meter, a u-blox and
//! a Quectel module, so an action must mean the same thing in every dialect;
//! a name outside the list is almost always a typo in a dialect file.

use std::fmt;

/// One action of the vocabulary: its name, what it does, and the
/// `{placeholders}` its templates may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    pub name: &'static str,
    pub meaning: &'static str,
}

const fn a(name: &'static str, meaning: &'static str) -> Action {
    Action { name, meaning }
}

/// Every action a dialect may map. Variables are `{uri}` (the LwM2M server
/// URI, from which `{server_host}` and `{server_port}` are derived),
/// `{endpoint}`, `{lifetime}` (seconds), `{bootstrap_uri}`, `{identity}`,
/// `{key}` (secret), and the per-action ones named below.
pub const ACTIONS: &[Action] = &[
    // V.250 basics.
    a("attention", "AT: does the modem answer at all"),
    a("echo_off", "ATE0: stop echoing command lines"),
    a("error_verbosity", "numeric +CME ERROR codes (AT+CMEE=1)"),
    // Identity (3GPP TS 27.007 ch. 5) and SIM.
    a("manufacturer", "manufacturer identification"),
    a("model", "model identification"),
    a("revision", "firmware revision"),
    a("imei", "IMEI (product serial number)"),
    a("imsi", "IMSI of the active SIM profile"),
    a("iccid", "ICCID of the active SIM profile"),
    // Radio and network (TS 27.007 ch. 7, 8, 10).
    a("signal", "signal quality"),
    a(
        "registration_status",
        "EPS network registration status (+CEREG)",
    ),
    a("radio_on", "full functionality (+CFUN=1)"),
    a("radio_off", "minimum functionality, radio off (+CFUN=0)"),
    a("psm_on", "request power saving mode (+CPSMS=1)"),
    a("psm_off", "disable power saving mode (+CPSMS=0)"),
    a("edrx_off", "disable eDRX (+CEDRXS=0)"),
    a(
        "psm_timers",
        "request PSM with T3412 {periodic_tau} and T3324 {active_time} (24.008 bit strings)",
    ),
    a("psm_query", "the PSM settings (+CPSMS?)"),
    a(
        "edrx_on",
        "request eDRX {edrx} (24.008 4-bit value) for access technology {act}",
    ),
    a("edrx_query", "the eDRX settings (+CEDRXS?)"),
    // The embedded LwM2M client.
    a("lwm2m_server", "point the client at the LwM2M server {uri}"),
    a("lwm2m_endpoint", "set the endpoint client name {endpoint}"),
    a("lwm2m_lifetime", "set the registration lifetime {lifetime}"),
    a(
        "lwm2m_configure",
        "server, endpoint and lifetime in one command (modems that set them together)",
    ),
    a("lwm2m_urcs_on", "enable the client's status URCs"),
    a("lwm2m_start", "enable the client / register"),
    a("lwm2m_stop", "deregister / disable the client"),
    a("lwm2m_status", "query the client's state"),
    a(
        "lwm2m_send",
        "have the client Send the values of {paths} (comma-separated LwM2M paths)",
    ),
    // Bootstrap and credentials.
    a(
        "bootstrap_server",
        "set the bootstrap server {bootstrap_uri}",
    ),
    a("bootstrap_server_query", "query the bootstrap server"),
    a("bootstrap_clear", "forget the bootstrap server"),
    a("bootstrap_psk", "bootstrap PSK {identity} / {key}"),
    a("bootstrap_psk_query", "query the bootstrap PSK identity"),
    a("bootstrap_start", "start a client-initiated bootstrap"),
    a(
        "server_psk",
        "PSK of a directly configured server {identity} / {key}",
    ),
    a("accounts", "list the provisioned server accounts"),
    // eUICC profiles.
    a("profiles", "list the eUICC profiles (list_profiles)"),
    a("enable_profile", "enable profile {profile}"),
    a("enable_first_profile", "enable the first profile"),
    a("enable_second_profile", "enable the second profile"),
    a("eid", "the eUICC's EID"),
    // Band configuration (object 501).
    a("band_channels", "EARFCN and prioritized channels"),
    a("set_band_channels", "set {earfcn} and {channels}"),
    a("band_mask", "LTE band mask"),
    // Firmware download settings.
    a("fw_block_size", "Block2 size exponent {szx}"),
    a("fw_block_size_query", "query the Block2 size exponent"),
    a("fw_slot_size", "bytes per firmware slot {bytes}"),
    a("fw_stall_timeout", "download stall timeout {seconds}"),
];

/// Events a dialect may recognise among the modem's URCs (the `events:` map of
/// a dialect file): a name the harness waits for, whatever the vendor prints.
pub const EVENTS: &[Action] = &[
    a("booted", "the modem finished booting and accepts commands"),
    a(
        "lwm2m_registered",
        "the embedded client registered with a server",
    ),
    a(
        "lwm2m_deregistered",
        "the embedded client deregistered from a server",
    ),
    a(
        "lwm2m_registration_failed",
        "the embedded client gave up registering",
    ),
    a(
        "profile_switched",
        "an eUICC profile switch ended with the new profile enabled and attached",
    ),
    a(
        "profile_switch_failed",
        "an eUICC profile switch failed and the previous profile is enabled again",
    ),
];

/// Whether `name` is in [`ACTIONS`].
pub fn is_action(name: &str) -> bool {
    ACTIONS.iter().any(|a| a.name == name)
}

/// Whether `name` is in [`EVENTS`].
pub fn is_event(name: &str) -> bool {
    EVENTS.iter().any(|a| a.name == name)
}

/// A step asked for an action the rig's modem dialect does not map. The
/// runner turns this into a *skip* of the case, never a failure: the device
/// may be correct, the bench simply cannot do that with this modem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedAction {
    pub action: String,
    /// The dialect's `name` (the modem family).
    pub modem: String,
}

impl fmt::Display for UnsupportedAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not supported by this modem: `{}` is not an action of the {} dialect",
            self.action, self.modem
        )
    }
}

impl std::error::Error for UnsupportedAction {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case() {
        for list in [ACTIONS, EVENTS] {
            for (i, x) in list.iter().enumerate() {
                assert!(
                    x.name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                    "{}",
                    x.name
                );
                assert!(
                    list[i + 1..].iter().all(|y| y.name != x.name),
                    "{} twice",
                    x.name
                );
            }
        }
    }
}
