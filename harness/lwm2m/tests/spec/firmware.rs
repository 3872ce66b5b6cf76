//! Object 5 and object 9 models: values from the OMA registry, the state
//! diagrams of LwM2M 1.1 Core Appendix E.6.1 as the registry text of each
//! object 5 version refines them, and the notification recorder.
//!
//! Sources cited below:
//! - 5.xml v1.1 is the OMA LwM2M registry `5.xml`,
//!   OMA-SUP-XML_5-V1_1-20201019-A (urn:oma:lwm2m:oma:5:1.1), resources
//!   0-3 and 5-13.
//! - 5.xml v1.0 is OMA-SUP-XML_LWM2M_Firmware_Update-V1_0_3
//!   (urn:oma:lwm2m:oma:5), resources 0-3 and 5-9, Update Result 0..9.
//! - Fig. E.6.1-1 is the LwM2M 1.1 Core TS, Appendix E.6.1, "Firmware Update
//!   State Diagram", and the text under it (errors are reported only through
//!   Update Result; an invalid Package URI is answered with Update Result 7).

use std::time::{Duration, Instant};

use lwm2m::firmware::{
    check_transition, check_transition_for, execute_update_response, is_consistent_for, resource,
    software, DeliveryMethod, FirmwareRecorder, FirmwareState as S, FirmwareStatus, ObjectVersion,
    PackageUri, ProtocolSupport, SoftwareRecorder, SoftwareResult as SR, SoftwareState as SS,
    SoftwareStatus, UpdateResult as R, MODEL_VERSION,
};
use lwm2m::format::link::parse_links;
use lwm2m::format::ObjectLinks;
use lwm2m::Registry;
use proptest::prelude::*;

const V1_0: ObjectVersion = ObjectVersion::V1_0;
const V1_1: ObjectVersion = ObjectVersion::V1_1;
const BOTH: &[ObjectVersion] = &[V1_0, V1_1];
const ONLY_1_1: &[ObjectVersion] = &[V1_1];
const ONLY_1_0: &[ObjectVersion] = &[V1_0];

fn st(s: S, r: R) -> FirmwareStatus {
    FirmwareStatus::new(s, r)
}

/// Resource 3 and 5 values, 5.xml v1.1: State 0..3; Update Result 0..11,
/// 10 "Firmware update cancelled", 11 "Firmware update deferred". 5.xml
/// v1.0: Update Result 0..9. Resources 8 and 9 as in both.
#[test]
fn values_match_the_registry() {
    assert_eq!(
        S::ALL.iter().map(|s| s.code()).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    assert_eq!(
        R::ALL.iter().map(|r| r.code()).collect::<Vec<_>>(),
        (0..=11).collect::<Vec<_>>()
    );
    assert_eq!(R::UpdateFailed.code(), 8);
    assert_eq!(R::UnsupportedProtocol.code(), 9);
    assert_eq!(R::from_code(10).unwrap(), R::Cancelled);
    assert_eq!(R::from_code(11).unwrap(), R::Deferred);
    assert_eq!(R::from_code(5).unwrap(), R::IntegrityCheckFailure);
    assert!(R::from_code(12).is_err());
    assert!(S::from_code(-1).is_err());
    // Defined per version: v1.0 stops at 9.
    for r in R::ALL {
        assert_eq!(r.defined_in(V1_0), r.code() <= 9, "{r}");
        assert!(r.defined_in(V1_1), "{r}");
    }
    assert_eq!(DeliveryMethod::from_code(2).unwrap(), DeliveryMethod::Both);
    assert_eq!(ProtocolSupport::CoapTls.code(), 5);
    assert_eq!(S::Downloaded.to_string(), "Downloaded(2)");
    assert_eq!(R::Deferred.to_string(), "Deferred(11)");
    // Object 9: 55 is undefined, 4-49 reserved.
    assert_eq!(SR::from_code(56).unwrap(), SR::InvalidUri);
    assert!(SR::from_code(55).is_err());
    assert!(SR::from_code(4).is_err());
    assert_eq!(SS::from_code(3).unwrap(), SS::Delivered);
}

/// The fixture is object 5 v1.1 as the OMA registry defines it: 5.xml
/// v1.1 has resources 0-3 and 5-13 with these operations, multiplicity,
/// mandatory flags, types, ranges and units, and no resource 4 or 14.
#[test]
fn fixture_matches_the_oma_object_5_v1_1_resource_list() {
    // id, [name, operations, multiple, mandatory, type, range, units], 5.xml v1.1.
    #[rustfmt::skip]
    let oma: &[(u16, [&str; 7])] = &[
        (0, ["Package", "W", "Single", "Mandatory", "Opaque", "", ""]),
        (1, ["Package URI", "RW", "Single", "Mandatory", "String", "0..255", ""]),
        (2, ["Update", "E", "Single", "Mandatory", "", "", ""]),
        (3, ["State", "R", "Single", "Mandatory", "Integer", "0..3", ""]),
        (5, ["Update Result", "R", "Single", "Mandatory", "Integer", "0..11", ""]),
        (6, ["PkgName", "R", "Single", "Optional", "String", "0..255", ""]),
        (7, ["PkgVersion", "R", "Single", "Optional", "String", "0..255", ""]),
        (8, ["Firmware Update Protocol Support", "R", "Multiple", "Optional", "Integer", "0..5", ""]),
        (9, ["Firmware Update Delivery Method", "R", "Single", "Mandatory", "Integer", "0..2", ""]),
        (10, ["Cancel", "E", "Single", "Optional", "", "", ""]),
        (11, ["Severity", "RW", "Single", "Optional", "Integer", "0..2", ""]),
        (12, ["Last State Change Time", "R", "Single", "Optional", "Time", "", ""]),
        (13, ["Maximum Defer Period", "RW", "Single", "Optional", "Unsigned Integer", "", "s"]),
    ];
    let xml = include_str!("../../../../fixtures/objects/5-firmware-update.xml");
    let doc = roxmltree::Document::parse(xml).unwrap();
    let text = |node: roxmltree::Node, tag: &str| -> String {
        node.children()
            .find(|c| c.has_tag_name(tag))
            .and_then(|c| c.text())
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let object = doc
        .descendants()
        .find(|n| n.has_tag_name("Object"))
        .unwrap();
    assert_eq!(text(object, "ObjectID"), "5");
    assert_eq!(text(object, "ObjectURN"), "urn:oma:lwm2m:oma:5:1.1");
    assert_eq!(text(object, "ObjectVersion"), "1.1");
    assert_eq!(text(object, "LWM2MVersion"), "1.1");
    assert_eq!(text(object, "MultipleInstances"), "Single");
    assert_eq!(text(object, "Mandatory"), "Optional");
    let items: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("Item"))
        .collect();
    let tags = [
        "Name",
        "Operations",
        "MultipleInstances",
        "Mandatory",
        "Type",
        "RangeEnumeration",
        "Units",
    ];
    let ours: Vec<(u16, Vec<String>)> = items
        .iter()
        .map(|i| {
            let id = i.attribute("ID").unwrap().parse().unwrap();
            (id, tags.iter().map(|t| text(*i, t)).collect())
        })
        .collect();
    let expected: Vec<(u16, Vec<String>)> = oma
        .iter()
        .map(|(id, facts)| (*id, facts.iter().map(|f| f.to_string()).collect()))
        .collect();
    assert_eq!(ours, expected);

    // The model built from it, and the crate's resource ids.
    let registry = Registry::core();
    let def = registry.object(5).unwrap();
    assert_eq!(def.version, MODEL_VERSION.to_string());
    assert_eq!(
        def.resources.keys().copied().collect::<Vec<_>>(),
        oma.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    let ids = [
        resource::PACKAGE,
        resource::PACKAGE_URI,
        resource::UPDATE,
        resource::STATE,
        resource::UPDATE_RESULT,
        resource::PKG_NAME,
        resource::PKG_VERSION,
        resource::PROTOCOL_SUPPORT,
        resource::DELIVERY_METHOD,
        resource::CANCEL,
        resource::SEVERITY,
        resource::LAST_STATE_CHANGE_TIME,
        resource::MAXIMUM_DEFER_PERIOD,
    ];
    assert_eq!(ids.to_vec(), oma.iter().map(|r| r.0).collect::<Vec<_>>());
    // The highest Update Result the enum knows is the top of the fixture's range.
    assert_eq!(R::ALL.last().unwrap().code(), 11);
}

/// One step of object 5's state machine, named by the behaviour it is.
struct Step {
    name: &'static str,
    versions: &'static [ObjectVersion],
    from: FirmwareStatus,
    to: FirmwareStatus,
}

const fn step(
    name: &'static str,
    versions: &'static [ObjectVersion],
    from: (S, R),
    to: (S, R),
) -> Step {
    Step {
        name,
        versions,
        from: FirmwareStatus {
            state: from.0,
            result: from.1,
        },
        to: FirmwareStatus {
            state: to.0,
            result: to.1,
        },
    }
}

use R::*;
use S::{Downloaded, Downloading, Idle, Updating};

/// Every arrow the state diagram and the resource texts allow, per version:
/// - Fig. E.6.1-1: Idle → Downloading (Package URI written / Package
///   written), Downloading → Downloaded, Downloading → Idle on a download
///   error (resource 5 values 2-7, 9), Downloaded → Updating (Execute
///   Update), Updating → Idle with 1, Updating → Downloaded on failure.
/// - resource 3 (both versions): an empty Package URI or Package "resets
///   the Firmware Update State Machine": Idle with Update Result 0; v1.0 "If
///   the Update Resource failed, the state returns at Downloaded"; v1.1 "may
///   return to either Downloaded or Idle", and a deferred update "stays in
///   Downloaded state and the Update Result is set to 11. Once a user
///   accepted the firmware update, the state changes to Updating".
/// - resource 5: "Once the updating process is initiated (Download /Update),
///   this Resource MUST be reset to Initial value"; 9 when "the URI
///   contained a URI scheme unsupported by the client".
/// - resource 10 (v1.1): "Upon successful Cancel operation, Update Result
///   Resource is set to 10 and State is set to 0".
/// - text under Fig. E.6.1-1: a Package URI Write is answered, then "if
///   the URI is invalid, it changes its Update Result resource value to 7"
///   (no download starts; Anjay does the same with 9 for an unknown scheme).
#[rustfmt::skip]
const ALLOWED: &[Step] = &[
    step("download_starts_when_a_package_uri_is_written", BOTH, (Idle, Initial), (Downloading, Initial)),
    step("download_starts_after_a_failed_download", BOTH, (Idle, ConnectionLost), (Downloading, Initial)),
    step("download_starts_after_a_successful_update", BOTH, (Idle, Success), (Downloading, Initial)),
    step("download_starts_after_a_refused_uri", BOTH, (Idle, UnsupportedProtocol), (Downloading, Initial)),
    step("download_starts_after_a_cancel", ONLY_1_1, (Idle, Cancelled), (Downloading, Initial)),
    step("download_starts_after_an_update_failed_into_idle", ONLY_1_1, (Idle, UpdateFailed), (Downloading, Initial)),
    step("reset_in_idle_clears_the_result", BOTH, (Idle, Success), (Idle, Initial)),
    step("invalid_uri_is_refused_at_the_write", BOTH, (Idle, Initial), (Idle, InvalidUri)),
    step("unsupported_scheme_is_refused_at_the_write", BOTH, (Idle, Initial), (Idle, UnsupportedProtocol)),
    step("second_refused_uri_replaces_the_first_result", BOTH, (Idle, InvalidUri), (Idle, UnsupportedProtocol)),
    step("download_completes", BOTH, (Downloading, Initial), (Downloaded, Initial)),
    step("download_is_reset_by_an_empty_package_uri", BOTH, (Downloading, Initial), (Idle, Initial)),
    step("download_fails_for_lack_of_flash", BOTH, (Downloading, Initial), (Idle, NotEnoughFlash)),
    step("download_fails_out_of_ram", BOTH, (Downloading, Initial), (Idle, OutOfRam)),
    step("download_fails_on_connection_loss", BOTH, (Downloading, Initial), (Idle, ConnectionLost)),
    step("download_fails_its_integrity_check", BOTH, (Downloading, Initial), (Idle, IntegrityCheckFailure)),
    step("download_fails_on_package_type", BOTH, (Downloading, Initial), (Idle, UnsupportedPackageType)),
    step("download_fails_on_an_invalid_uri", BOTH, (Downloading, Initial), (Idle, InvalidUri)),
    step("download_fails_on_an_unsupported_protocol", BOTH, (Downloading, Initial), (Idle, UnsupportedProtocol)),
    step("download_is_cancelled", ONLY_1_1, (Downloading, Initial), (Idle, Cancelled)),
    step("update_starts_on_execute", BOTH, (Downloaded, Initial), (Updating, Initial)),
    step("update_is_retried_after_a_failed_one", BOTH, (Downloaded, UpdateFailed), (Updating, Initial)),
    step("downloaded_image_is_reset", BOTH, (Downloaded, Initial), (Idle, Initial)),
    step("image_kept_after_a_failed_update_is_reset", BOTH, (Downloaded, IntegrityCheckFailure), (Idle, Initial)),
    step("downloaded_image_is_cancelled", ONLY_1_1, (Downloaded, Initial), (Idle, Cancelled)),
    step("update_is_deferred_by_the_user", ONLY_1_1, (Downloaded, Initial), (Downloaded, Deferred)),
    step("retried_update_is_deferred_by_the_user", ONLY_1_1, (Downloaded, UpdateFailed), (Downloaded, Deferred)),
    step("deferred_update_is_accepted", ONLY_1_1, (Downloaded, Deferred), (Updating, Initial)),
    step("deferred_update_is_cancelled", ONLY_1_1, (Downloaded, Deferred), (Idle, Cancelled)),
    step("deferred_update_is_reset", ONLY_1_1, (Downloaded, Deferred), (Idle, Initial)),
    step("update_succeeds", BOTH, (Updating, Initial), (Idle, Success)),
    step("failed_update_keeps_the_image_lacking_flash", BOTH, (Updating, Initial), (Downloaded, NotEnoughFlash)),
    step("failed_update_keeps_the_image_out_of_ram", BOTH, (Updating, Initial), (Downloaded, OutOfRam)),
    step("failed_update_keeps_the_image_failing_integrity", BOTH, (Updating, Initial), (Downloaded, IntegrityCheckFailure)),
    step("failed_update_keeps_the_image_of_unsupported_type", BOTH, (Updating, Initial), (Downloaded, UnsupportedPackageType)),
    step("failed_update_keeps_the_image", BOTH, (Updating, Initial), (Downloaded, UpdateFailed)),
    step("failed_update_drops_the_image_lacking_flash", ONLY_1_1, (Updating, Initial), (Idle, NotEnoughFlash)),
    step("failed_update_drops_the_image_out_of_ram", ONLY_1_1, (Updating, Initial), (Idle, OutOfRam)),
    step("failed_update_drops_the_image_failing_integrity", ONLY_1_1, (Updating, Initial), (Idle, IntegrityCheckFailure)),
    step("failed_update_drops_the_image_of_unsupported_type", ONLY_1_1, (Updating, Initial), (Idle, UnsupportedPackageType)),
    step("failed_update_drops_the_image", ONLY_1_1, (Updating, Initial), (Idle, UpdateFailed)),
];

/// Arrows the diagram does not have, results a State cannot carry, and the
/// v1.1 additions seen from a v1.0 device (5.xml v1.0: range 0..9; "the
/// state returns at Downloaded"). Each row: the versions it is refused in
/// and a word of the reason given.
#[rustfmt::skip]
const FORBIDDEN: &[(Step, &str)] = &[
    (step("skipping_downloading", BOTH, (Idle, Initial), (Downloaded, Initial)), "through Downloading"),
    (step("updating_without_a_download", BOTH, (Idle, Initial), (Updating, Initial)), "only from Downloaded"),
    (step("updating_while_downloading", BOTH, (Downloading, Initial), (Updating, Initial)), "only from Downloaded"),
    (step("downloading_again_from_downloaded", BOTH, (Downloaded, Initial), (Downloading, Initial)), "only from Idle"),
    (step("downloading_again_from_updating", BOTH, (Updating, Initial), (Downloading, Initial)), "only from Idle"),
    (step("result_changes_while_downloading", BOTH, (Downloading, Initial), (Downloading, ConnectionLost)), "cannot be reported"),
    (step("download_starts_without_resetting_the_result", BOTH, (Idle, InvalidUri), (Downloading, InvalidUri)), "cannot be reported"),
    (step("update_starts_without_resetting_the_result", BOTH, (Downloaded, UpdateFailed), (Updating, UpdateFailed)), "cannot be reported"),
    (step("success_straight_from_downloading", BOTH, (Downloading, Initial), (Idle, Success)), "only when reset"),
    (step("success_straight_from_downloaded", BOTH, (Downloaded, Initial), (Idle, Success)), "Success needs Updating"),
    (step("update_failure_from_a_download", ONLY_1_1, (Downloading, Initial), (Idle, UpdateFailed)), "only when reset"),
    (step("update_failure_from_a_download_in_v1_0", ONLY_1_0, (Downloading, Initial), (Idle, UpdateFailed)), "cannot be reported"),
    (step("download_failure_kept_in_downloaded", BOTH, (Downloading, Initial), (Downloaded, IntegrityCheckFailure)), "failed one goes to Idle"),
    (step("downloaded_image_dropped_with_a_failure", BOTH, (Downloaded, Initial), (Idle, IntegrityCheckFailure)), "only by a reset"),
    (step("success_appears_in_idle", BOTH, (Idle, Initial), (Idle, Success)), "refused at the Write"),
    (step("download_failure_appears_in_idle", BOTH, (Idle, Initial), (Idle, ConnectionLost)), "refused at the Write"),
    (step("failure_appears_in_downloaded", BOTH, (Downloaded, Initial), (Downloaded, UpdateFailed)), "Downloaded"),
    (step("updating_is_reset", BOTH, (Updating, Initial), (Idle, Initial)), "cannot be cancelled or reset"),
    (step("updating_is_cancelled", ONLY_1_1, (Updating, Initial), (Idle, Cancelled)), "cannot be cancelled or reset"),
    (step("updating_ends_with_a_download_failure", ONLY_1_1, (Updating, Initial), (Idle, ConnectionLost)), "Success (1)"),
    (step("failed_update_reports_connection_loss", BOTH, (Updating, Initial), (Downloaded, ConnectionLost)), "cannot be reported"),
    (step("failed_update_reports_an_invalid_uri", BOTH, (Updating, Initial), (Downloaded, InvalidUri)), "cannot be reported"),
    (step("failed_update_goes_to_idle_in_v1_0", ONLY_1_0, (Updating, Initial), (Idle, UpdateFailed)), "cannot be reported"),
    (step("failed_integrity_goes_to_idle_in_v1_0", ONLY_1_0, (Updating, Initial), (Idle, IntegrityCheckFailure)), "returns to Downloaded"),
    (step("cancel_in_v1_0", ONLY_1_0, (Downloading, Initial), (Idle, Cancelled)), "not defined in object 5 v1.0"),
    (step("deferral_in_v1_0", ONLY_1_0, (Downloaded, Initial), (Downloaded, Deferred)), "not defined in object 5 v1.0"),
    (step("deferred_result_in_idle", ONLY_1_1, (Downloaded, Deferred), (Idle, Deferred)), "cannot be reported"),
    (step("deferral_dropped_without_an_update", ONLY_1_1, (Downloaded, Deferred), (Downloaded, Initial)), "only to 11"),
    (step("deferral_reported_while_updating", ONLY_1_1, (Updating, Initial), (Downloaded, Deferred)), "only when the update failed"),
    (step("deferral_while_downloading", ONLY_1_1, (Downloading, Initial), (Downloading, Deferred)), "cannot be reported"),
    (step("update_failed_left_in_idle_by_a_reset_in_v1_0", ONLY_1_0, (Downloaded, UpdateFailed), (Idle, UpdateFailed)), "cannot be reported"),
];

/// Fig. E.6.1-1 with resources 3, 5 and 10 of 5.xml v1.0 / 5.xml
/// v1.1: every allowed arrow, per version (see [`ALLOWED`]).
#[test]
fn every_allowed_transition_is_accepted() {
    let mut wrong = Vec::new();
    for row in ALLOWED {
        for v in row.versions {
            if let Err(e) = check_transition_for(*v, row.from, row.to) {
                wrong.push(format!("{} (v{v}): {e}", row.name));
            }
        }
    }
    assert!(wrong.is_empty(), "refused:\n{}", wrong.join("\n"));
}

/// Fig. E.6.1-1, 5.xml v1.0, 5.xml v1.1: every forbidden step is
/// refused with a reason naming the rule and the step (see [`FORBIDDEN`]).
#[test]
fn every_forbidden_transition_is_refused_with_its_rule() {
    let mut wrong = Vec::new();
    for (row, reason) in FORBIDDEN {
        for v in row.versions {
            match check_transition_for(*v, row.from, row.to) {
                Ok(()) => wrong.push(format!("{} (v{v}): accepted", row.name)),
                Err(e) => {
                    let text = e.to_string();
                    let named = [row.from.to_string(), row.to.to_string(), reason.to_string()];
                    if !named.iter().all(|w| text.contains(w.as_str())) {
                        wrong.push(format!("{} (v{v}): {text}", row.name));
                    }
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "not refused as expected:\n{}",
        wrong.join("\n")
    );
}

/// The v1.1-only arrows are exactly the ones a v1.0 device is failed for:
/// 5.xml v1.0 has no 10 or 11, and its failed update "returns at
/// Downloaded".
#[test]
fn v1_1_additions_are_refused_for_a_v1_0_device() {
    for row in ALLOWED.iter().filter(|r| r.versions == ONLY_1_1) {
        assert!(
            check_transition_for(V1_0, row.from, row.to).is_err(),
            "{} must be refused in v1.0",
            row.name
        );
    }
}

/// The unversioned helpers are object 5 v1.1, the version meterbench's
/// model (and so the virtual meter) declares: 5.xml v1.1.
#[test]
fn unversioned_checks_follow_the_model_version() {
    assert_eq!(MODEL_VERSION, V1_1);
    assert_eq!(
        check_transition(st(Updating, Initial), st(Idle, UpdateFailed)),
        Ok(())
    );
    assert!(lwm2m::firmware::is_consistent(Downloaded, Deferred));
    assert!(!is_consistent_for(V1_0, Downloaded, Deferred));
}

/// Registry text of resource 2 (5.xml v1.1): "This Resource is only
/// executable when the value of the State Resource is Downloaded".
#[test]
fn update_is_refused_unless_downloaded() {
    assert_eq!(execute_update_response(S::Downloaded), 204);
    for s in [S::Idle, S::Downloading, S::Updating] {
        assert_eq!(execute_update_response(s), 405);
    }
}

/// LwM2M 1.1 Core §6.2.1 (Register): an object listed with `ver` has that
/// version, one listed without it is 1.0; meterbench's client writes
/// `</5>;ver=1.1` before the instance links.
#[test]
fn object_version_comes_from_the_registration_link() {
    let rows: &[(&str, Result<ObjectVersion, ()>)] = &[
        ("</1/0>,</3/0>,</5/0>", Ok(V1_0)),
        ("</5>;ver=1.1,</5/0>", Ok(V1_1)),
        ("</5/0>;ver=1.1", Ok(V1_1)),
        ("</3>;ver=1.2,</3/0>,</5/0>", Ok(V1_0)),
        ("</50>;ver=1.1,</5/0>", Ok(V1_0)),
        ("</5>;ver=2.0,</5/0>", Ok(ObjectVersion::new(2, 0))),
        ("</5>;ver=\"1.1\",</5/0>", Ok(V1_1)),
        ("</5>;ver=one,</5/0>", Err(())),
        ("</5>;ver=1,</5/0>", Err(())),
    ];
    for (text, expected) in rows {
        let links = ObjectLinks::from(parse_links(text).unwrap());
        let got = ObjectVersion::declared(&links, 5).map_err(|_| ());
        assert_eq!(&got, expected, "{text}");
    }
    assert_eq!(ObjectVersion::parse("1.1").unwrap().to_string(), "1.1");
    assert_eq!(ObjectVersion::default(), V1_0);
}

fn feed(rec: &mut FirmwareRecorder, samples: &[(u64, u16, i64)]) {
    let t0 = Instant::now();
    for (ms, res, v) in samples {
        let _ = rec.record_resource(t0 + Duration::from_millis(*ms), *res, *v);
    }
}

/// A notification sequence and what the recorder must conclude.
struct Sequence {
    name: &'static str,
    version: ObjectVersion,
    /// (ms, resource, value): 3 is State, 5 Update Result.
    samples: &'static [(u64, u16, i64)],
    /// Ok: the merged statuses; Err: words the violation must contain.
    expect: Result<&'static [(S, R)], &'static [&'static str]>,
    /// Indexes in the Ok sequence of the statuses the recorder inferred.
    inferred: &'static [usize],
}

/// Whole sequences through the recorder, each named by behaviour:
/// half-steps (State and Update Result notified separately, either order)
/// merge; one unseen Downloading or Updating is inferred where the diagram
/// leaves no other status (a notification coalesced by pmin, LwM2M 1.1
/// Core §5.1.2, or by a restart; RFC 7641 §1.3: eventual consistency), and
/// nothing else; the diagram of the declared version applies (Fig.
/// E.6.1-1, 5.xml v1.0, 5.xml v1.1).
#[rustfmt::skip]
const SEQUENCES: &[Sequence] = &[
    Sequence {
        name: "pull_update_with_separate_notifications",
        version: V1_0,
        samples: &[(0, 3, 0), (0, 5, 0), (10, 3, 1), (500, 3, 2), (600, 3, 3), (9000, 5, 1), (9001, 3, 0)],
        expect: Ok(&[(Idle, Initial), (Downloading, Initial), (Downloaded, Initial), (Updating, Initial), (Idle, Success)]),
        inferred: &[],
    },
    Sequence {
        name: "state_first_download_failure_is_merged",
        version: V1_0,
        samples: &[(0, 3, 0), (0, 5, 0), (10, 3, 1), (500, 3, 0), (501, 5, 4)],
        expect: Ok(&[(Idle, Initial), (Downloading, Initial), (Idle, ConnectionLost)]),
        inferred: &[],
    },
    Sequence {
        name: "result_first_download_failure_is_merged",
        version: V1_0,
        samples: &[(0, 3, 0), (0, 5, 0), (10, 3, 1), (500, 5, 5), (501, 3, 0)],
        expect: Ok(&[(Idle, Initial), (Downloading, Initial), (Idle, IntegrityCheckFailure)]),
        inferred: &[],
    },
    // ETS 1.0 int-774: a push the device runs out of RAM receiving, as the
    // virtual meter notifies it (State, then Update Result 3), and the other
    // order under v1.1: Downloading -> Idle with 3 (resource 5 value 3,
    // "Out of RAM during downloading process").
    Sequence {
        name: "push_out_of_ram_ends_idle_with_3",
        version: V1_0,
        samples: &[(0, 3, 0), (0, 5, 0), (10, 3, 1), (12, 3, 0), (12, 5, 3)],
        expect: Ok(&[(Idle, Initial), (Downloading, Initial), (Idle, OutOfRam)]),
        inferred: &[],
    },
    Sequence {
        name: "push_out_of_ram_result_first_v1_1",
        version: V1_1,
        samples: &[(0, 3, 0), (0, 5, 0), (10, 3, 1), (12, 5, 3), (12, 3, 0)],
        expect: Ok(&[(Idle, Initial), (Downloading, Initial), (Idle, OutOfRam)]),
        inferred: &[],
    },
    Sequence {
        name: "unsupported_scheme_refused_at_once_stays_idle",
        version: V1_0,
        samples: &[(0, 3, 0), (0, 5, 0), (20, 5, 9)],
        expect: Ok(&[(Idle, Initial), (Idle, UnsupportedProtocol)]),
        inferred: &[],
    },
    Sequence {
        name: "failed_update_returns_to_downloaded_with_unsupported_package_type",
        version: V1_0,
        samples: &[(0, 3, 2), (0, 5, 0), (10, 3, 3), (900, 3, 2), (901, 5, 6)],
        expect: Ok(&[(Downloaded, Initial), (Updating, Initial), (Downloaded, UnsupportedPackageType)]),
        inferred: &[],
    },
    Sequence {
        name: "failed_update_returns_to_idle_in_v1_1",
        version: V1_1,
        samples: &[(0, 3, 2), (0, 5, 0), (10, 3, 3), (900, 5, 5), (901, 3, 0)],
        expect: Ok(&[(Downloaded, Initial), (Updating, Initial), (Idle, IntegrityCheckFailure)]),
        inferred: &[],
    },
    Sequence {
        name: "failed_update_returning_to_idle_fails_a_v1_0_device",
        version: V1_0,
        samples: &[(0, 3, 2), (0, 5, 0), (10, 3, 3), (900, 5, 8), (901, 3, 0)],
        expect: Err(&["object 5 v1.0", "Updating(3)/Initial(0) -> Idle(0)/UpdateFailed(8)", "Downloaded(2)/Initial(0) (+0.000s) -> Updating(3)/Initial(0) (+0.010s)"]),
        inferred: &[],
    },
    Sequence {
        name: "deferred_update_stays_downloaded_then_updates",
        version: V1_1,
        samples: &[(0, 3, 2), (0, 5, 0), (10, 5, 11), (5000, 5, 0), (5000, 3, 3), (9000, 3, 0), (9000, 5, 1)],
        expect: Ok(&[(Downloaded, Initial), (Downloaded, Deferred), (Updating, Initial), (Idle, Success)]),
        inferred: &[],
    },
    Sequence {
        name: "deferred_update_fails_a_v1_0_device",
        version: V1_0,
        samples: &[(0, 3, 2), (0, 5, 0), (10, 5, 11)],
        expect: Err(&["not defined in object 5 v1.0", "Downloaded(2)/Deferred(11) (+0.010s) ✗"]),
        inferred: &[],
    },
    Sequence {
        name: "cancelled_download_in_v1_1",
        version: V1_1,
        samples: &[(0, 3, 0), (0, 5, 0), (10, 3, 1), (300, 3, 0), (300, 5, 10)],
        expect: Ok(&[(Idle, Initial), (Downloading, Initial), (Idle, Cancelled)]),
        inferred: &[],
    },
    // pmin=2 over a short push (ETS int-760): Downloading never notified.
    Sequence {
        name: "downloading_coalesced_by_pmin_is_inferred",
        version: V1_1,
        samples: &[(0, 3, 0), (0, 5, 0), (2000, 3, 2)],
        expect: Ok(&[(Idle, Initial), (Downloading, Initial), (Downloaded, Initial)]),
        inferred: &[1],
    },
    // The restart ends the observation before Updating is notified; the
    // re-observation reads Idle/1, Result first.
    Sequence {
        name: "updating_coalesced_by_the_restart_is_inferred",
        version: V1_1,
        samples: &[(0, 3, 2), (0, 5, 0), (4000, 5, 1), (4000, 3, 0)],
        expect: Ok(&[(Downloaded, Initial), (Updating, Initial), (Idle, Success)]),
        inferred: &[1],
    },
    Sequence {
        name: "updating_coalesced_state_first_is_inferred",
        version: V1_0,
        samples: &[(0, 3, 2), (0, 5, 0), (4000, 3, 0), (4001, 5, 1)],
        expect: Ok(&[(Downloaded, Initial), (Updating, Initial), (Idle, Success)]),
        inferred: &[1],
    },
    Sequence {
        name: "download_failure_coalesced_by_pmin_is_inferred",
        version: V1_0,
        samples: &[(0, 3, 0), (0, 5, 0), (2000, 5, 4)],
        expect: Ok(&[(Idle, Initial), (Downloading, Initial), (Idle, ConnectionLost)]),
        inferred: &[1],
    },
    Sequence {
        name: "failed_update_kept_in_downloaded_coalesced_is_inferred",
        version: V1_0,
        samples: &[(0, 3, 2), (0, 5, 0), (6000, 5, 8)],
        expect: Ok(&[(Downloaded, Initial), (Updating, Initial), (Downloaded, UpdateFailed)]),
        inferred: &[1],
    },
    Sequence {
        name: "failed_update_into_idle_coalesced_is_inferred_in_v1_1",
        version: V1_1,
        samples: &[(0, 3, 2), (0, 5, 0), (5000, 5, 5), (5000, 3, 0)],
        expect: Ok(&[(Downloaded, Initial), (Updating, Initial), (Idle, IntegrityCheckFailure)]),
        inferred: &[1],
    },
    Sequence {
        name: "failed_update_into_idle_is_not_inferred_in_v1_0",
        version: V1_0,
        samples: &[(0, 3, 2), (0, 5, 0), (5000, 5, 5), (5000, 3, 0)],
        expect: Err(&["object 5 v1.0", "-> Idle(0)/IntegrityCheckFailure(5) is not allowed", "Idle(0)/IntegrityCheckFailure(5) (+5.000s) ✗"]),
        inferred: &[],
    },
    Sequence {
        name: "whole_download_before_updating_is_not_inferred",
        version: V1_1,
        samples: &[(0, 3, 0), (0, 5, 0), (3000, 3, 3)],
        expect: Err(&["Updating is entered only from Downloaded", "Idle(0)/Initial(0) (+0.000s) -> Updating(3)/Initial(0) (+3.000s) ✗"]),
        inferred: &[],
    },
    Sequence {
        name: "whole_update_in_idle_is_not_inferred",
        version: V1_1,
        samples: &[(0, 3, 0), (0, 5, 0), (9000, 5, 1)],
        expect: Err(&["Idle(0)/Initial(0) -> Idle(0)/Success(1)"]),
        inferred: &[],
    },
    Sequence {
        name: "downloaded_waiting_for_the_server_is_not_inferred",
        version: V1_1,
        samples: &[(0, 3, 1), (0, 5, 0), (3000, 3, 3)],
        expect: Err(&["Downloading(1)/Initial(0) -> Updating(3)/Initial(0)", "Downloaded(2)/Initial(0) is not inferred between them: the device stays in it until the server acts"]),
        inferred: &[],
    },
    Sequence {
        name: "gap_several_statuses_could_fill_is_not_inferred",
        version: V1_1,
        samples: &[(0, 3, 3), (0, 5, 0), (5000, 3, 0)],
        expect: Err(&["Updating(3)/Initial(0) -> Idle(0)/Initial(0)", "cannot be cancelled or reset", "could each fill the gap", "Downloaded(2)/UpdateFailed(8)"]),
        inferred: &[],
    },
    Sequence {
        name: "first_status_must_be_one_the_version_allows",
        version: V1_1,
        samples: &[(0, 3, 1), (0, 5, 4)],
        expect: Err(&["(first observed)", "Downloading(1)/ConnectionLost(4) (+0.000s) ✗"]),
        inferred: &[],
    },
    Sequence {
        name: "out_of_range_result_fails_and_is_listed",
        version: V1_1,
        samples: &[(0, 3, 0), (0, 5, 0), (100, 3, 1), (200, 5, 12), (300, 3, 2)],
        expect: Err(&["12 is not a defined Update Result value", "Downloading(1)/Initial(0) (+0.100s) -> Update Result=12 (+0.200s) ✗ -> Downloaded(2)/Initial(0) (+0.300s)"]),
        inferred: &[],
    },
];

#[test]
fn recorder_checks_whole_sequences_strictly() {
    for seq in SEQUENCES {
        let mut rec = FirmwareRecorder::new().with_version(seq.version);
        feed(&mut rec, seq.samples);
        match (rec.check(), seq.expect) {
            (Ok(got), Ok(want)) => {
                let inferred: Vec<usize> = (0..got.len()).filter(|i| got[*i].inferred).collect();
                let got: Vec<_> = got.iter().map(|o| o.status).collect();
                let want: Vec<_> = want.iter().map(|(s, r)| st(*s, *r)).collect();
                assert_eq!(got, want, "{}", seq.name);
                assert_eq!(inferred, seq.inferred, "{}: inferred statuses", seq.name);
            }
            (Err(e), Err(words)) => {
                let text = e.to_string();
                assert_eq!(e.version, seq.version, "{}", seq.name);
                assert!(text.contains("observed: "), "{}: {text}", seq.name);
                for w in words {
                    assert!(text.contains(w), "{}: {w:?} missing from\n{text}", seq.name);
                }
            }
            (got, _) => panic!("{}: unexpected {got:?}", seq.name),
        }
    }
}

/// The forbidden steps of [`FORBIDDEN`] that the recorder explains by one
/// unseen status (recorder module doc): the step's versions, and the status
/// inferred between. Each is Downloading or Updating, left by the device
/// itself, and the only status the diagram allows in between (Fig.
/// E.6.1-1; resource 3 of 5.xml v1.0 / v1.1 for where a failed update goes).
#[rustfmt::skip]
const INFERRED_EDGES: &[(&str, &[ObjectVersion], (S, R))] = &[
    ("skipping_downloading", BOTH, (Downloading, Initial)),
    ("success_straight_from_downloaded", BOTH, (Updating, Initial)),
    ("downloaded_image_dropped_with_a_failure", ONLY_1_1, (Updating, Initial)),
    ("download_failure_appears_in_idle", BOTH, (Downloading, Initial)),
    ("failure_appears_in_downloaded", BOTH, (Updating, Initial)),
];

/// Every arrow of [`ALLOWED`], notified as one status then the other
/// (`record_both`, e.g. an instance observation): accepted exactly as
/// notified, nothing inferred.
#[test]
fn recorder_accepts_every_allowed_edge_as_notified() {
    let t0 = Instant::now();
    for row in ALLOWED {
        for v in row.versions {
            let mut rec = FirmwareRecorder::new().with_version(*v);
            rec.record_both(t0, row.from.state, row.from.result);
            rec.record_both(t0 + Duration::from_secs(1), row.to.state, row.to.result);
            let got = rec
                .check()
                .unwrap_or_else(|e| panic!("{} (v{v}): {e}", row.name));
            let got: Vec<_> = got.iter().map(|o| (o.status, o.inferred)).collect();
            assert_eq!(
                got,
                vec![(row.from, false), (row.to, false)],
                "{} (v{v})",
                row.name
            );
        }
    }
}

/// Every arrow of [`ALLOWED`], with State and Update Result notified
/// separately in either order (two observations, as the object 5 watch
/// makes them): accepted, from `from` to `to`, nothing inferred. The point
/// between the two notifications is merged away, or kept where it is a step
/// the diagram allows by itself (Idle/4, Result=0, State=1: a reset, then
/// the download).
#[test]
fn recorder_accepts_every_allowed_edge_notified_resource_by_resource() {
    let t0 = Instant::now();
    for row in ALLOWED {
        for v in row.versions {
            for state_first in [true, false] {
                let mut rec = FirmwareRecorder::new().with_version(*v);
                rec.record_both(t0, row.from.state, row.from.result);
                let (s, r) = (row.to.state.code().into(), row.to.result.code().into());
                let order = if state_first {
                    [(3, s), (5, r)]
                } else {
                    [(5, r), (3, s)]
                };
                for (k, (res, value)) in order.into_iter().enumerate() {
                    let at = t0 + Duration::from_millis(1000 + k as u64);
                    rec.record_resource(at, res, value).unwrap();
                }
                let what = format!("{} (v{v}, State first: {state_first})", row.name);
                let got = rec.check().unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(got.first().map(|o| o.status), Some(row.from), "{what}");
                assert_eq!(got.last().map(|o| o.status), Some(row.to), "{what}");
                assert!(got.iter().all(|o| !o.inferred), "{what}: {got:?}");
            }
        }
    }
}

/// Every step of [`FORBIDDEN`], notified as one status then the other: a
/// violation naming the step, except the gaps of [`INFERRED_EDGES`], which
/// are accepted with the one status between them marked inferred. The
/// strict recorder refuses those too.
#[test]
fn recorder_refuses_every_forbidden_edge_unless_one_transient_status_fills_it() {
    let t0 = Instant::now();
    let mut wrong = Vec::new();
    for (row, _) in FORBIDDEN {
        for v in row.versions {
            let feed_pair = |rec: &mut FirmwareRecorder| {
                rec.record_both(t0, row.from.state, row.from.result);
                rec.record_both(t0 + Duration::from_secs(2), row.to.state, row.to.result);
            };
            let mut rec = FirmwareRecorder::new().with_version(*v);
            feed_pair(&mut rec);
            let via = INFERRED_EDGES
                .iter()
                .find(|(name, versions, _)| *name == row.name && versions.contains(v))
                .map(|(_, _, (s, r))| st(*s, *r));
            match (rec.check(), via) {
                (Ok(got), Some(via)) => {
                    let got: Vec<_> = got.iter().map(|o| (o.status, o.inferred)).collect();
                    if got != vec![(row.from, false), (via, true), (row.to, false)] {
                        wrong.push(format!("{} (v{v}): {got:?}", row.name));
                    }
                    let mut strict = FirmwareRecorder::new().with_version(*v).strict();
                    feed_pair(&mut strict);
                    if strict.check().is_ok() {
                        wrong.push(format!(
                            "{} (v{v}): accepted by the strict recorder",
                            row.name
                        ));
                    }
                }
                (Err(e), None) => {
                    let text = e.to_string();
                    if !text.contains(&row.to.to_string()) || !text.contains(" ✗") {
                        wrong.push(format!("{} (v{v}): {text}", row.name));
                    }
                }
                (got, via) => wrong.push(format!(
                    "{} (v{v}): {got:?}, expected via {via:?}",
                    row.name
                )),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "not concluded as expected:\n{}",
        wrong.join("\n")
    );
}

/// The verdict text shows an inferred status in brackets, apart from the
/// notified ones (`describe_sequence`), and the raw notifications without it.
#[test]
fn recorder_shows_inferred_statuses_in_brackets() {
    let mut rec = FirmwareRecorder::new().with_version(V1_1);
    feed(&mut rec, &[(0, 3, 0), (0, 5, 0), (2000, 3, 2)]);
    let seq = rec.check().unwrap();
    assert_eq!(
        rec.describe_sequence(&seq),
        "Idle(0)/Initial(0) (+0.000s) -> [Downloading(1)/Initial(0)] (inferred) -> Downloaded(2)/Initial(0) (+2.000s)"
    );
    assert_eq!(
        rec.describe(None),
        "Idle(0)/Initial(0) (+0.000s) -> Downloaded(2)/Initial(0) (+2.000s)"
    );
}

/// A merged step says so: State=0 and Result=1 arrived separately.
#[test]
fn recorder_marks_merged_half_steps() {
    let mut rec = FirmwareRecorder::new();
    feed(
        &mut rec,
        &[(0, 3, 3), (0, 5, 0), (9000, 5, 1), (9001, 3, 0)],
    );
    let seq = rec.check().unwrap();
    assert_eq!(seq.len(), 2);
    assert!(!seq[0].merged);
    assert!(seq[1].merged);
}

#[test]
fn recorder_reports_the_first_violation_with_the_whole_sequence() {
    let mut rec = FirmwareRecorder::new();
    // Success straight out of Downloading.
    feed(
        &mut rec,
        &[
            (0, 3, 0),
            (0, 5, 0),
            (100, 3, 1),
            (1200, 3, 0),
            (1300, 5, 1),
            (1400, 3, 1),
        ],
    );
    let e = rec.check().unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("Downloading(1)/Initial(0) -> Idle(0)/Success(1)"),
        "{text}"
    );
    assert!(
        text.contains("Idle(0)/Initial(0) (+0.000s) -> Downloading(1)/Initial(0) (+0.100s)"),
        "{text}"
    );
    assert!(text.contains("Idle(0)/Success(1) (+1.300s) ✗"), "{text}");
    assert!(
        text.contains("(+1.400s)"),
        "the sequence after the violation is shown: {text}"
    );
    assert!((e.at_secs - 1.3).abs() < 1e-9);
    let rec2 = rec.recording();
    assert_eq!(rec2.sequence.len(), 3);
}

#[test]
fn recorder_ignores_repeats_and_other_resources() {
    let mut rec = FirmwareRecorder::new();
    feed(
        &mut rec,
        &[(0, 3, 0), (0, 5, 0), (1, 3, 0), (2, 7, 99), (3, 5, 0)],
    );
    assert_eq!(rec.check().unwrap().len(), 1);
    assert!(rec.record_resource(Instant::now(), 3, 9).is_err());
    assert_eq!(rec.current(), Some(st(S::Idle, R::Initial)));
    // The refused value stays a violation.
    assert!(rec.check().unwrap_err().to_string().contains("State=9"));
}

// Object 9's Package Installation State Machine.
#[test]
fn software_install_and_uninstall_path_is_allowed() {
    let path = [
        SoftwareStatus::new(SS::Initial, SR::Initial),
        SoftwareStatus::new(SS::DownloadStarted, SR::Downloading),
        SoftwareStatus::new(SS::Downloaded, SR::Downloading),
        SoftwareStatus::new(SS::Delivered, SR::DownloadedVerified),
        SoftwareStatus::new(SS::Delivered, SR::InstallationFailure),
        SoftwareStatus::new(SS::Installed, SR::Installed),
        SoftwareStatus::new(SS::Initial, SR::Initial),
    ];
    for w in path.windows(2) {
        assert_eq!(
            software::check_transition(w[0], w[1]),
            Ok(()),
            "{} -> {}",
            w[0],
            w[1]
        );
    }
    let bad = [
        (
            SoftwareStatus::new(SS::Initial, SR::Initial),
            SoftwareStatus::new(SS::Installed, SR::Installed),
        ),
        (
            SoftwareStatus::new(SS::DownloadStarted, SR::Downloading),
            SoftwareStatus::new(SS::Delivered, SR::DownloadedVerified),
        ),
        (
            SoftwareStatus::new(SS::Downloaded, SR::Downloading),
            SoftwareStatus::new(SS::Delivered, SR::Installed),
        ),
        (
            SoftwareStatus::new(SS::DownloadStarted, SR::Downloading),
            SoftwareStatus::new(SS::Initial, SR::IntegrityCheckFailure),
        ),
    ];
    for (from, to) in bad {
        assert!(
            software::check_transition(from, to).is_err(),
            "{from} -> {to}"
        );
    }
    let t0 = Instant::now();
    let mut rec = SoftwareRecorder::new();
    for (i, (res, v)) in [
        (7, 0),
        (9, 0),
        (7, 1),
        (9, 1),
        (7, 2),
        (7, 3),
        (9, 3),
        (9, 2),
        (7, 4),
    ]
    .iter()
    .enumerate()
    {
        rec.record_resource(t0 + Duration::from_secs(i as u64), *res, *v)
            .unwrap();
    }
    let seq = rec.check().unwrap();
    assert_eq!(
        seq.last().unwrap().status,
        SoftwareStatus::new(SS::Installed, SR::Installed)
    );
}

#[test]
fn package_uris_parse_or_name_their_update_result() {
    let u = PackageUri::parse("coap://127.0.0.1:5693/fw/meter-2.0.bin?v=2").unwrap();
    assert_eq!(u.protocol, ProtocolSupport::Coap);
    assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 5693));
    assert_eq!(u.path, ["fw", "meter-2.0.bin"]);
    assert_eq!(u.query, ["v=2"]);
    assert_eq!(u.to_string(), "coap://127.0.0.1:5693/fw/meter-2.0.bin?v=2");
    let u = PackageUri::parse("coaps://[::1]/a%20b").unwrap();
    assert_eq!(
        (u.host.as_str(), u.port, u.path[0].as_str()),
        ("::1", 5684, "a b")
    );
    assert_eq!(PackageUri::parse("https://h/x").unwrap().port, 443);
    assert_eq!(
        PackageUri::parse("coap+tcp://h/x").unwrap().protocol,
        ProtocolSupport::CoapTcp
    );
    assert_eq!(
        PackageUri::parse("ftp://h/x").unwrap_err().result,
        R::UnsupportedProtocol
    );
    for bad in [
        "",
        "no-scheme",
        "coap://",
        "coap://h:99999/x",
        "coap://h/x#f",
        "coap://h/%zz",
        "coap://[::1/x",
    ] {
        assert_eq!(
            PackageUri::parse(bad).unwrap_err().result,
            R::InvalidUri,
            "{bad:?}"
        );
    }
}

proptest! {
    #[test]
    fn package_uri_parse_never_panics(s in ".{0,40}") {
        let _ = PackageUri::parse(&s);
    }

    // Every allowed step leads to a status a device of that version may report.
    #[test]
    fn allowed_steps_end_in_consistent_statuses(v in 0u16..2, a in 0i64..4, b in 0i64..12, c in 0i64..4, d in 0i64..12) {
        let version = ObjectVersion::new(1, v);
        let from = st(S::from_code(a).unwrap(), R::from_code(b).unwrap());
        let to = st(S::from_code(c).unwrap(), R::from_code(d).unwrap());
        if from != to && check_transition_for(version, from, to).is_ok() {
            prop_assert!(is_consistent_for(version, to.state, to.result));
            prop_assert!(is_consistent_for(version, from.state, from.result));
        }
    }

    // What v1.0 allows, v1.1 allows too (v1.1 only adds arrows).
    #[test]
    fn v1_1_allows_everything_v1_0_allows(a in 0i64..4, b in 0i64..12, c in 0i64..4, d in 0i64..12) {
        let from = st(S::from_code(a).unwrap(), R::from_code(b).unwrap());
        let to = st(S::from_code(c).unwrap(), R::from_code(d).unwrap());
        if check_transition_for(V1_0, from, to).is_ok() {
            prop_assert!(check_transition_for(V1_1, from, to).is_ok());
        }
    }

    // The recorder never panics on any sample stream.
    #[test]
    fn recorder_never_panics(v in 0u16..2, samples in proptest::collection::vec((prop_oneof![Just(3u16), Just(5u16)], -1i64..13), 0..30)) {
        let mut rec = FirmwareRecorder::new().with_version(ObjectVersion::new(1, v));
        let t0 = Instant::now();
        for (i, (res, v)) in samples.iter().enumerate() {
            let _ = rec.record_resource(t0 + Duration::from_millis(i as u64), *res, *v);
        }
        let _ = rec.recording();
    }
}
