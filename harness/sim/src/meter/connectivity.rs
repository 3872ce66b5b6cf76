//! The meter's connectivity: the eUICC's enabled profile, the network model's
//! attach state, and the objects that show them over LwM2M — Connectivity
//! Monitoring (/4/0 APN, cell, operator codes), LTE-MTC Band Config (/501/0)
//! and Remote SIM Provisioning (/504/0).
//!
//! A profile switch, whether the server asks for it (Execute /504/0/5 with the
//! enable action, on the ICCID in /504/0/26) or the lab does (`AT+MBPROF=<n>`):
//! the new profile is enabled and the switch recorded in NV, the modem
//! detaches (`+CEREG: 0`; the LwM2M session ends without De-register, there
//! is no radio), attaches on the new profile (`+CEREG: 1`) and the client
//! registers again. If the new profile does not attach within
//! [`ATTACH_TIMEOUT`](crate::network::ATTACH_TIMEOUT) the previous one is
//! enabled again, and /504/0/7 and the `+MBSWITCH` URC report the failure.
//! A power cut during a switch resumes it at boot from NV.

use std::time::Instant;

use lwm2m::client::ObjectStore;
use lwm2m::{Path, Value};

use super::Meter;
use crate::band;
use crate::euicc::{self, result, PendingSwitch, RspAction};
use crate::network::{stat, NetEvent, Network};
use crate::nv::NvData;

/// Connectivity state the meter holds besides NV.
#[derive(Debug, Default)]
pub(super) struct Connectivity {
    pub network: Network,
    /// A switch the server asked for, started once its Execute has been answered.
    pub switch_requested: Option<usize>,
    /// A band Reset the server asked for: re-attach once its Reset Timeout
    /// (/501/0/5) has passed and its Execute has been answered.
    pub band_reset: band::PendingReset,
    /// The EARFCN the radio attached on (the current frequencies of /501/0).
    pub earfcn_in_use: Option<u16>,
}

/// Copies the settings the modem edits (`AT+MBNETFAIL`, `AT+MBCHAN`) into NV content.
pub(super) fn save_modem_settings(d: &mut NvData, modem: &crate::modem::ModemState) {
    d.euicc.attach_fails = modem.attach_fails.clone();
    d.band = modem.band.clone();
    d.power_saving = modem.power_saving;
}

impl Meter {
    /// At boot: the modem learns the eUICC and band state from NV; the network
    /// attaches the enabled profile (at once when the network accepts it), or
    /// resumes a switch a power cut interrupted.
    pub(super) fn connectivity_boot(&mut self, now: Instant) {
        let d = self.nv.data().clone();
        self.modem.enabled_profile = d.euicc.enabled.min(self.modem.profiles.len() - 1);
        self.modem.switching = d.euicc.switching.is_some();
        self.modem.attach_fails = d.euicc.attach_fails.clone();
        self.modem.band = d.band.clone();
        // A Reset waiting out its timeout was RAM state: a reboot resets anyway.
        self.conn.band_reset.cancel();
        self.attach_enabled(now);
    }

    /// `AT+CFUN=1`.
    pub(super) fn connectivity_radio_on(&mut self, now: Instant) {
        self.attach_enabled(now);
    }

    /// `AT+CFUN=0`: the network detaches (the meter drops its sessions).
    pub(super) fn connectivity_radio_off(&mut self) {
        if self.conn.band_reset.cancel() {
            tracing::info!("radio off: pending band configuration reset dropped");
        }
        self.conn.network.detach();
        self.modem.cereg = stat::NOT_REGISTERED;
    }

    fn can_attach(&self, profile: usize) -> bool {
        self.modem
            .profiles
            .get(profile)
            .is_some_and(|p| !self.modem.attach_fails.contains(&p.iccid))
            && !self.lab_network.refuses(profile)
    }

    fn attach_enabled(&mut self, now: Instant) {
        let enabled = self.modem.enabled_profile;
        if let Some(sw) = self.nv.data().euicc.switching {
            tracing::info!(
                to = sw.to,
                from = sw.from,
                "resuming an interrupted profile switch"
            );
            self.conn.network.attach(now, sw.to, Some(sw.from));
            self.modem.cereg = stat::SEARCHING;
            self.urc("+CEREG: 2");
        } else if self.can_attach(enabled) {
            self.conn.network.attach_now(enabled);
            self.on_attached(now, enabled);
        } else {
            tracing::warn!(
                profile = enabled,
                "the network refuses the enabled profile; searching"
            );
            self.conn.network.attach(now, enabled, None);
            self.modem.cereg = stat::SEARCHING;
            self.urc("+CEREG: 2");
        }
    }

    fn on_attached(&mut self, now: Instant, profile: usize) {
        self.modem.cereg = stat::REGISTERED_HOME;
        self.conn.earfcn_in_use = Some(self.modem.band.earfcn);
        self.urc("+CEREG: 1");
        tracing::info!(profile, iccid = %self.modem.profiles[profile].iccid, "attached");
        if self.modem.settings.enabled && self.active.is_none() {
            self.start_session(now);
        }
    }

    /// Whether the client may run: only with the network attached.
    pub(super) fn attached(&self) -> bool {
        self.conn.network.attached().is_some()
    }

    /// Once a second: advance the network model.
    pub(super) fn connectivity_tick(&mut self, now: Instant) {
        let fails = self.modem.attach_fails.clone();
        let profiles = self.modem.profiles.clone();
        let lab = self.lab_network.clone();
        let event = self.conn.network.poll(now, |p| {
            profiles.get(p).is_some_and(|x| !fails.contains(&x.iccid)) && !lab.refuses(p)
        });
        match event {
            Some(NetEvent::Attached { profile }) => {
                let switching = self.nv.data().euicc.switching;
                let done = switching.is_some_and(|s| s.to == profile);
                let r = self.nv.update(|d| {
                    d.euicc.enabled = profile;
                    d.euicc.switching = None;
                    if done {
                        d.euicc.last_result = result::SUCCESS;
                    }
                });
                if let Err(e) = r {
                    tracing::error!(error = %e, "cannot write the profile switch to NV");
                }
                self.modem.enabled_profile = profile;
                self.modem.switching = false;
                self.on_attached(now, profile);
                if done {
                    let iccid = profiles[profile].iccid.clone();
                    tracing::info!(%iccid, "profile switch done");
                    self.urc(&format!("+MBSWITCH: {},\"{iccid}\"", result::SUCCESS));
                }
            }
            Some(NetEvent::SwitchFailed { failed, back_to }) => {
                let r = self.nv.update(|d| {
                    d.euicc.enabled = back_to;
                    d.euicc.switching = None;
                    d.euicc.last_result = result::ENABLE_FAILED;
                });
                if let Err(e) = r {
                    tracing::error!(error = %e, "cannot write the switch fallback to NV");
                }
                self.modem.enabled_profile = back_to;
                self.modem.switching = false;
                let iccid = &profiles[failed].iccid;
                tracing::warn!(%iccid, back_to, "profile did not attach; falling back");
                self.urc(&format!("+MBSWITCH: {},\"{iccid}\"", result::ENABLE_FAILED));
            }
            None => {}
        }
    }

    /// Starts a switch to profile `to` (index from 0).
    pub(super) fn begin_switch(&mut self, now: Instant, to: usize) {
        let from = self.modem.enabled_profile;
        if to == from && !self.modem.switching {
            tracing::info!(profile = to, "profile already enabled");
            if let Err(e) = self.nv.update(|d| d.euicc.last_result = result::SUCCESS) {
                tracing::error!(error = %e, "cannot write RSP result to NV");
            }
            let iccid = self.modem.profiles[to].iccid.clone();
            self.urc(&format!("+MBSWITCH: {},\"{iccid}\"", result::SUCCESS));
            self.refresh_rsp_object(now);
            return;
        }
        tracing::info!(from, to, "profile switch: detach, enable, attach");
        let r = self.nv.update(|d| {
            d.euicc.enabled = to;
            d.euicc.switching = Some(PendingSwitch { to, from });
        });
        if let Err(e) = r {
            tracing::error!(error = %e, "cannot write the profile switch to NV");
        }
        self.modem.enabled_profile = to;
        self.modem.switching = true;
        self.detach_for_reattach();
        self.conn.network.attach(now, to, Some(from));
        self.modem.cereg = stat::SEARCHING;
    }

    /// No radio: sessions end without De-register.
    fn detach_for_reattach(&mut self) {
        self.active = None;
        self.retiring.clear();
        self.conn.network.detach();
        self.urc("+CEREG: 0");
    }

    /// After the sessions' datagrams went out: act on an Execute that asked for a
    /// detach (its 2.04 must leave before the radio goes).
    pub(super) fn connectivity_after_pump(&mut self, now: Instant) {
        if let Some(to) = self.conn.switch_requested.take() {
            self.begin_switch(now, to);
        }
        if self.conn.band_reset.take_due(now) {
            tracing::info!("band configuration reset: re-attaching");
            let profile = self.modem.enabled_profile;
            self.detach_for_reattach();
            self.conn.network.attach(now, profile, None);
            self.modem.cereg = stat::SEARCHING;
        }
    }

    /// When a band Reset waiting out its Reset Timeout is due.
    pub(super) fn connectivity_deadline(&self) -> Option<Instant> {
        self.conn.band_reset.deadline()
    }

    /// Puts the connectivity objects into a session's store as of now.
    pub(super) fn add_connectivity_objects(&self, store: &mut ObjectStore) {
        for (path, value) in self.connectivity_values() {
            store.set(path, value);
        }
    }

    fn connectivity_values(&self) -> Vec<(Path, Value)> {
        let d = self.nv.data();
        let profile = &self.modem.profiles[self.modem.enabled_profile];
        let mut v = vec![
            (
                Path::resource_instance(4, 0, 7, 0),
                Value::String(profile.apn.clone()),
            ),
            (Path::resource(4, 0, 8), Value::Integer(profile.cell_id)),
            (
                Path::resource(4, 0, 9),
                Value::Integer(i64::from(profile.mnc)),
            ),
            (
                Path::resource(4, 0, 10),
                Value::Integer(i64::from(profile.mcc)),
            ),
        ];
        let mask = band::supported_mask() as i64;
        v.extend(euicc::rsp_values(
            &self.identity,
            &self.modem.profiles,
            &d.euicc,
            mask,
        ));
        let in_use = self.conn.earfcn_in_use.unwrap_or(d.band.earfcn);
        let reset_timeout_s = d
            .written_values()
            .into_iter()
            .find(|(p, _)| *p == band::reset_timeout_path())
            .and_then(|(_, v)| v.as_f64())
            .unwrap_or(band::DEFAULT_RESET_TIMEOUT_S);
        v.extend(band::band_values(&d.band, in_use, reset_timeout_s));
        v
    }

    /// Re-sets /504/0 in the running session (observers are notified of changes).
    fn refresh_rsp_object(&mut self, now: Instant) {
        let d = self.nv.data().clone();
        let values = euicc::rsp_values(
            &self.identity,
            &self.modem.profiles,
            &d.euicc,
            band::supported_mask() as i64,
        );
        for (path, value) in values {
            // The server's own selection stays as written.
            if path != euicc::selected_iccid() {
                self.set_value(now, path, value);
            }
        }
    }

    /// Whether an Execute is one of the connectivity objects'.
    pub(super) fn is_connectivity_execute(path: &Path) -> bool {
        *path == euicc::rsp_update() || *path == band::reset_path()
    }

    /// Execute on /504/0/5 (RSP Update) or /501/0/6 (Reset).
    pub(super) fn on_connectivity_execute(
        &mut self,
        now: Instant,
        path: Path,
        arguments: Option<String>,
    ) {
        if path == band::reset_path() {
            // 501.xml: the device waits the Reset Timeout, then resets the radio.
            let timeout = self
                .active
                .as_mut()
                .and_then(|s| s.client().store().get(&band::reset_timeout_path()).cloned());
            let delay = band::reset_delay(timeout.as_ref());
            match self.conn.band_reset.trigger(now, delay) {
                Some(due) => {
                    tracing::info!(
                        delay_ms = due.saturating_duration_since(now).as_millis() as u64,
                        "band Reset executed; the radio resets after the Reset Timeout"
                    )
                }
                None => tracing::warn!(
                    ?delay,
                    "band Reset executed with a Reset Timeout that never ends"
                ),
            }
            return;
        }
        let actions = match euicc::parse_rsp_actions(arguments.as_deref()) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "RSP Update refused");
                self.rsp_result(now, result::UNSUPPORTED);
                return;
            }
        };
        let selected = self.active.as_mut().and_then(|s| {
            match s.client().store().get(&euicc::selected_iccid()) {
                Some(Value::String(i)) => Some(i.clone()),
                _ => None,
            }
        });
        let Some(target) = selected.and_then(|i| euicc::find_profile(&self.modem.profiles, &i))
        else {
            tracing::warn!("RSP Update: /504/0/26 names no installed profile");
            self.rsp_result(now, result::UNKNOWN_PROFILE);
            return;
        };
        for action in actions {
            match action {
                RspAction::Enable if self.modem.switching => {
                    self.rsp_result(now, result::ENABLE_FAILED)
                }
                RspAction::Enable => {
                    self.set_value(
                        now,
                        Path::resource(504, 0, 6),
                        Value::Integer(euicc::state::ENABLING),
                    );
                    self.conn.switch_requested = Some(target);
                }
                RspAction::Disable if target == self.modem.enabled_profile => {
                    self.rsp_result(now, result::DISABLE_FAILED)
                }
                RspAction::Disable => self.rsp_result(now, result::SUCCESS),
                other => {
                    tracing::warn!(?other, "RSP action not supported by the virtual eUICC");
                    self.rsp_result(now, result::UNSUPPORTED);
                }
            }
        }
    }

    fn rsp_result(&mut self, now: Instant, code: i64) {
        if let Err(e) = self.nv.update(|d| d.euicc.last_result = code) {
            tracing::error!(error = %e, "cannot write RSP result to NV");
        }
        self.set_value(now, Path::resource(504, 0, 7), Value::Integer(code));
    }

    /// A server Write below /501: the band configuration goes to NV (and so to `AT+MBCHAN?`).
    pub(super) fn on_connectivity_write(&mut self, path: Path) {
        if path.object_id() != Some(501) {
            return;
        }
        let Some(s) = self.active.as_mut() else {
            return;
        };
        let store = s.client().store();
        let mut config = self.modem.band.clone();
        if let Some(e) = store.get(&band::earfcn_path()).and_then(Value::as_f64) {
            if (0.0..=65535.0).contains(&e) {
                config.earfcn = e as u16;
            }
        }
        let channels: Vec<u16> = store
            .read(&band::channels_path())
            .iter()
            .filter_map(|r| r.value.as_f64())
            .filter(|c| (0.0..=65535.0).contains(c))
            .map(|c| c as u16)
            .collect();
        if !channels.is_empty() {
            config.channels = channels;
        }
        if let Err(e) = config.validate() {
            tracing::warn!(error = %e, "band configuration written by the server not applied");
            return;
        }
        if config != self.modem.band {
            tracing::info!(earfcn = config.earfcn, channels = %config.channels_text(), "band configuration changed");
            self.modem.band = config.clone();
            if let Err(e) = self.nv.update(|d| d.band = config) {
                tracing::error!(error = %e, "cannot write band configuration to NV");
            }
        }
    }
}
