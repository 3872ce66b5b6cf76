//! What one case knows while it runs: how far it has read the servers'
//! events, the observations it started, values it saved, how its device came
//! back from cuts. Made fresh for every case and dropped when it ends, so
//! nothing one case did can leak into the next; what outlives a case (the
//! bench, the servers, the credentials) lives in [`crate::session::Session`].

use std::collections::HashMap;

use lwm2m::server::RequestId;
use lwm2m::Path;
use server::EventSeq;

use crate::session::Session;
use crate::steps::firmware::FirmwareWatch;
use crate::steps::kinds::classify::Recovery;

/// Why the device is restarting: the rig gives each its own wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Power-on, a power cut, Execute Reboot: `device.reboot_within`.
    Reboot,
    /// Execute Update (/5/x/2): `firmware.update_within`, else `device.reboot_within`.
    FirmwareUpdate,
}

/// Which step of a `repeat` runs: a case timeout that cuts it off names it.
#[derive(Debug, Clone)]
pub struct RepeatPosition {
    pub line: u32,
    pub step: String,
    pub round: u32,
    pub times: u32,
}

/// Where the servers' histories stood at a moment: a step's evidence and
/// "since the previous step began" are read from such marks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Marks {
    pub seq: EventSeq,
    pub bootstrap_seq: EventSeq,
    pub log: usize,
    pub bootstrap_log: usize,
}

impl Marks {
    pub fn now(rig: &Session) -> Marks {
        Marks {
            seq: rig.server.current_seq(),
            bootstrap_seq: rig
                .bootstrap
                .as_ref()
                .map(|b| b.current_seq())
                .unwrap_or_default(),
            log: rig.server.log_len(),
            bootstrap_log: rig.bootstrap.as_ref().map(|b| b.log_len()).unwrap_or(0),
        }
    }
}

pub struct CaseContext {
    /// The case's id: part of each random cut's seed.
    pub case_id: String,
    /// Server events up to here have been consumed by earlier steps.
    pub cursor: EventSeq,
    /// Bootstrap server events up to here have been consumed by earlier steps.
    pub bootstrap_cursor: EventSeq,
    /// Where the servers stood when the previous step began: a bootstrap
    /// started by one step ends in a registration the next awaits, a
    /// datagram a step provoked may pass before the next starts watching.
    pub previous_step: Marks,
    /// Where the servers stood when the case began: what a step looks for
    /// among "this case's" events starts here, never at an earlier case's.
    pub case_start: Marks,
    /// Set by power and reboot steps: an existing registration no longer counts.
    pub require_new_registration: bool,
    /// Set when a bootstrap finished: a Register the server took before then
    /// was made with the old configuration (a device may be registering just
    /// as the case starts its bootstrap), so it does not count.
    pub registered_not_before: Option<std::time::Instant>,
    /// What the device was last made to restart by, until it registers
    /// again: which of the rig's waits an `await: registered` takes.
    pub restart: Option<Restart>,
    /// Set by a `network` step: the case end puts the network back to accept-all.
    pub network_changed: bool,
    /// Observations started by `observe` steps.
    pub observations: HashMap<Path, RequestId>,
    /// The Observe-Composite an `observe_composite` step with `keep` left
    /// open; the case end cancels it if no step did.
    pub composite_observation: Option<crate::steps::kinds::observe_composite::OpenComposite>,
    /// Values `debug: {save: NAME}` steps remembered.
    pub saved: HashMap<String, String>,
    /// How the device came back from each cut `classify` judged.
    pub recoveries: Vec<Recovery>,
    /// The server PSK a `credentials` step replaced: it must stay refused.
    pub replaced_server_psk: Option<dtls::Psk>,
    /// The object 5 transition watch, started by the first `firmware` step.
    pub firmware_watch: Option<FirmwareWatch>,
    /// Progress bars of the case's transfers (aborted when the case ends).
    pub progress_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Images the case delivered (their transfer figures go to the JUnit).
    pub firmware_images: Vec<String>,
    /// Which round of a `repeat` runs (0 outside one): part of each cut's seed.
    pub round: u32,
    /// The step of a `repeat` that runs (none outside one).
    pub repeat_position: Option<RepeatPosition>,
    /// The step log.
    pub log: String,
    /// Facts for the JUnit testcase, e.g. the seed of each random power cut.
    pub properties: Vec<(String, String)>,
    /// Where the case's events go (events.jsonl, the progress display).
    pub events: crate::events::CaseEvents,
    /// Every power cut of the case (events.jsonl, `power-cuts.csv`).
    pub power_cuts: crate::events::PowerCuts,
}

impl CaseContext {
    /// A context for a case about to start on `rig`: nothing an earlier case
    /// left on the servers counts for it, nor shows in its failures.
    pub fn new(rig: &Session, case_id: &str) -> CaseContext {
        let marks = Marks::now(rig);
        CaseContext {
            case_id: case_id.to_string(),
            cursor: marks.seq,
            bootstrap_cursor: marks.bootstrap_seq,
            previous_step: marks,
            case_start: marks,
            require_new_registration: false,
            registered_not_before: None,
            restart: None,
            network_changed: false,
            observations: HashMap::new(),
            composite_observation: None,
            saved: HashMap::new(),
            recoveries: Vec::new(),
            replaced_server_psk: None,
            firmware_watch: None,
            progress_tasks: Vec::new(),
            firmware_images: Vec::new(),
            round: 0,
            repeat_position: None,
            log: String::new(),
            properties: Vec::new(),
            events: Default::default(),
            power_cuts: Default::default(),
        }
    }

    /// Marks every server event so far as seen: a later wait wants news.
    pub fn skip_to_now(&mut self, rig: &Session) {
        self.cursor = rig.server.current_seq();
    }

    /// After power was switched or cut: the device starts over, and only a
    /// registration from now on proves it came back.
    pub fn device_restarting(&mut self, rig: &Session, why: Restart) {
        self.skip_to_now(rig);
        self.require_new_registration = true;
        self.restart = Some(why);
    }

    /// The device registered again: the restart is over.
    pub fn registered(&mut self, seq: EventSeq) {
        self.cursor = seq;
        self.require_new_registration = false;
        self.registered_not_before = None;
        self.restart = None;
    }
}

impl Drop for CaseContext {
    fn drop(&mut self) {
        for task in self.progress_tasks.drain(..) {
            task.abort();
        }
    }
}
