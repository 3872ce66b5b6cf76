//! One module per step kind: its YAML payload, what it needs from the rig,
//! and how it runs (see [`crate::steps::Step`]). The list below is the one
//! place that names every kind: it declares the kind's module, its variant of
//! [`StepKind`] under the key a case file writes, and the dispatch to it.

use serde::Deserialize;

use crate::steps::Step;

/// Declares each kind's module, [`StepKind`] tagged by the kinds' YAML keys,
/// and its dispatch.
macro_rules! step_kinds {
    ($($variant:ident($module:ident::$ty:ident) = $key:literal,)*) => {
        $(pub mod $module;)*

        /// Every step kind, by the key a case file writes it with.
        #[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
        pub enum StepKind {
            $(#[serde(rename = $key)] $variant($module::$ty),)*
        }

        impl StepKind {
            /// The action keys, for the message of a step that has none.
            pub const NAMES: &'static [&'static str] = &[$($key),*];

            /// The key this step is written with (events.jsonl's `kind`).
            pub fn key(&self) -> &'static str {
                match self {
                    $(StepKind::$variant(_) => $key,)*
                }
            }

            /// The kind behind the [`Step`] trait: the one place that dispatches.
            pub fn step(&self) -> &dyn Step {
                match self {
                    $(StepKind::$variant(s) => s,)*
                }
            }
        }
    };
}

step_kinds! {
    Power(power::PowerStep) = "power",
    PowerCut(power_cut::PowerCut) = "power_cut",
    At(at::AtStep) = "at",
    Await(awaiting::Await) = "await",
    Read(read::Read) = "read",
    Write(write::Write) = "write",
    Execute(execute::Execute) = "execute",
    Discover(discover::Discover) = "discover",
    Observe(observe::Observe) = "observe",
    CancelObserve(cancel_observe::CancelObserve) = "cancel_observe",
    Notified(notified::Notified) = "notified",
    WriteAttributes(write_attributes::WriteAttributes) = "write_attributes",
    Expect(expect::Expect) = "expect",
    Sleep(sleep::Sleep) = "sleep",
    Bootstrap(bootstrap::Bootstrap) = "bootstrap",
    BootstrapRequested(bootstrap_requested::BootstrapRequested) = "bootstrap_requested",
    BootstrapOffers(bootstrap_offers::BootstrapOffers) = "bootstrap_offers",
    Credentials(credentials::Credentials) = "credentials",
    Debug(debug::DebugRead) = "debug",
    Classify(classify::Classify) = "classify",
    FirmwareServer(file_servers::FileServers) = "firmware_server",
    Firmware(firmware::Firmware) = "firmware",
    Repeat(repeat::Repeat) = "repeat",
    Network(network::NetworkStep) = "network",
    Flash(flash::Flash) = "flash",
    Reset(reset::Reset) = "reset",
    ReadSymbol(symbol::ReadSymbol) = "read_symbol",
    ExpectSymbol(expect_symbol::ExpectSymbol) = "expect_symbol",
    Queue(queue::Queue) = "queue",
    ReadComposite(read_composite::ReadComposite) = "read_composite",
    WriteComposite(write_composite::WriteComposite) = "write_composite",
    ObserveComposite(observe_composite::ObserveComposite) = "observe_composite",
    CompositeNotified(composite_notified::CompositeNotified) = "composite_notified",
    CancelObserveComposite(cancel_observe_composite::CancelObserveComposite) = "cancel_observe_composite",
    ObserveCompositeInstance(observe_composite_instance::ObserveCompositeInstance) = "observe_composite_instance",
    Sent(sent::Sent) = "sent",
    Group(group::GroupStep) = "group",
    Campaign(campaign::Campaign) = "campaign",
    DiscardRegistration(discard_registration::DiscardRegistration) = "discard_registration",
}

// The three checks `expect` dispatches to.
pub mod expect_registration;
pub mod expect_value;
pub mod old_credential;
// Blocking SWD calls for flash, reset and the symbol steps.
pub mod target;
// `{saved:NAME}` in the values of read and write steps.
pub mod saved;
// `in_range` and `one_of` in a read step.
pub mod allowed_values;
// What the composite steps and `sent` share (LwM2M 1.1 composite operations).
pub mod composite;
// Running a group case: its members, and steps on every member.
pub mod group_case;
