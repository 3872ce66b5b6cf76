//! Object 5 and object 9 models: values from the OMA registry, the state
//! diagram of LwM2M 1.1 Core Appendix E.6.1, and the notification recorder.

use std::time::{Duration, Instant};

use lwm2m::firmware::{
    check_transition, execute_update_response, resource, software, DeliveryMethod,
    FirmwareRecorder, FirmwareState as S, FirmwareStatus, PackageUri, ProtocolSupport,
    SoftwareRecorder, SoftwareResult as SR, SoftwareState as SS, SoftwareStatus, UpdateResult as R,
};
use proptest::prelude::*;

fn st(s: S, r: R) -> FirmwareStatus {
    FirmwareStatus::new(s, r)
}

#[test]
fn values_match_the_registry() {
    // Object 5 v1.1, resources 3, 5, 8, 9.
    assert_eq!(
        S::ALL.iter().map(|s| s.code()).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    assert_eq!(R::UpdateFailed.code(), 8);
    assert_eq!(R::UnsupportedProtocol.code(), 9);
    assert_eq!(R::from_code(5).unwrap(), R::IntegrityCheckFailure);
    assert!(R::from_code(11).is_err());
    assert!(S::from_code(-1).is_err());
    assert_eq!(DeliveryMethod::from_code(2).unwrap(), DeliveryMethod::Both);
    assert_eq!(ProtocolSupport::CoapTls.code(), 5);
    assert_eq!(S::Downloaded.to_string(), "Downloaded(2)");
    // No resource 4 in object 5 v1.1.
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
        resource::AUTOMATIC_UPGRADE,
    ];
    assert!(!ids.contains(&4));
    // Object 9: 55 is undefined, 4-49 reserved.
    assert_eq!(SR::from_code(56).unwrap(), SR::InvalidUri);
    assert!(SR::from_code(55).is_err());
    assert!(SR::from_code(4).is_err());
    assert_eq!(SS::from_code(3).unwrap(), SS::Delivered);
}

// Figure E.6.1-1, every arrow.
#[test]
fn the_state_diagrams_arrows_are_allowed() {
    let ok = [
        (st(S::Idle, R::Initial), st(S::Downloading, R::Initial)),
        (
            st(S::Idle, R::ConnectionLost),
            st(S::Downloading, R::Initial),
        ),
        (st(S::Idle, R::Success), st(S::Downloading, R::Initial)),
        (
            st(S::Downloading, R::Initial),
            st(S::Downloaded, R::Initial),
        ),
        (st(S::Downloading, R::Initial), st(S::Idle, R::Initial)),
        (
            st(S::Downloading, R::Initial),
            st(S::Idle, R::NotEnoughFlash),
        ),
        (st(S::Downloading, R::Initial), st(S::Idle, R::OutOfRam)),
        (
            st(S::Downloading, R::Initial),
            st(S::Idle, R::ConnectionLost),
        ),
        (
            st(S::Downloading, R::Initial),
            st(S::Idle, R::IntegrityCheckFailure),
        ),
        (
            st(S::Downloading, R::Initial),
            st(S::Idle, R::UnsupportedPackageType),
        ),
        (st(S::Downloading, R::Initial), st(S::Idle, R::InvalidUri)),
        (
            st(S::Downloading, R::Initial),
            st(S::Idle, R::UnsupportedProtocol),
        ),
        (st(S::Downloading, R::Initial), st(S::Idle, R::Cancelled)),
        (st(S::Downloaded, R::Initial), st(S::Updating, R::Initial)),
        (
            st(S::Downloaded, R::UpdateFailed),
            st(S::Updating, R::Initial),
        ),
        (st(S::Downloaded, R::Initial), st(S::Idle, R::Initial)),
        (st(S::Updating, R::Initial), st(S::Idle, R::Success)),
        (
            st(S::Updating, R::Initial),
            st(S::Downloaded, R::UpdateFailed),
        ),
        (
            st(S::Updating, R::Initial),
            st(S::Downloaded, R::IntegrityCheckFailure),
        ),
        (st(S::Updating, R::Initial), st(S::Idle, R::UpdateFailed)),
        (st(S::Idle, R::Success), st(S::Idle, R::Initial)),
    ];
    for (from, to) in ok {
        assert_eq!(check_transition(from, to), Ok(()), "{from} -> {to}");
    }
}

#[test]
fn steps_outside_the_diagram_are_refused() {
    let bad = [
        // Skipping Downloading.
        (st(S::Idle, R::Initial), st(S::Downloaded, R::Initial)),
        // Updating without Downloaded.
        (st(S::Idle, R::Initial), st(S::Updating, R::Initial)),
        (st(S::Downloading, R::Initial), st(S::Updating, R::Initial)),
        // Back to Downloading from Downloaded or Updating.
        (
            st(S::Downloaded, R::Initial),
            st(S::Downloading, R::Initial),
        ),
        (st(S::Updating, R::Initial), st(S::Downloading, R::Initial)),
        // Downloading must carry Initial.
        (
            st(S::Downloading, R::Initial),
            st(S::Downloading, R::ConnectionLost),
        ),
        (
            st(S::Idle, R::InvalidUri),
            st(S::Downloading, R::InvalidUri),
        ),
        // Success only out of Updating.
        (st(S::Downloading, R::Initial), st(S::Idle, R::Success)),
        (st(S::Downloaded, R::Initial), st(S::Idle, R::Success)),
        // Updating cannot end in Idle with a download failure, nor silently.
        (st(S::Updating, R::Initial), st(S::Idle, R::ConnectionLost)),
        (st(S::Updating, R::Initial), st(S::Idle, R::Initial)),
        // A result appearing in Idle out of nowhere.
        (st(S::Idle, R::Initial), st(S::Idle, R::Success)),
    ];
    for (from, to) in bad {
        let e = check_transition(from, to).unwrap_err();
        assert!(e.to_string().contains(&from.to_string()), "{e}");
    }
}

// Registry text of resource 2: Update executes only in Downloaded.
#[test]
fn update_is_refused_unless_downloaded() {
    assert_eq!(execute_update_response(S::Downloaded), 204);
    for s in [S::Idle, S::Downloading, S::Updating] {
        assert_eq!(execute_update_response(s), 405);
    }
}

fn feed(rec: &mut FirmwareRecorder, samples: &[(u64, u16, i64)]) {
    let t0 = Instant::now();
    for (ms, res, v) in samples {
        rec.record_resource(t0 + Duration::from_millis(*ms), *res, *v)
            .unwrap();
    }
}

#[test]
fn recorder_accepts_a_pull_update_with_separate_notifications() {
    let mut rec = FirmwareRecorder::new().strict();
    // State and Result arrive separately, the result first at the end.
    feed(
        &mut rec,
        &[
            (0, 3, 0),
            (0, 5, 0),
            (10, 3, 1),
            (500, 3, 2),
            (600, 3, 3),
            (9000, 5, 1),
            (9001, 3, 0),
        ],
    );
    let seq = rec.check().unwrap();
    let statuses: Vec<_> = seq.iter().map(|o| o.status).collect();
    assert_eq!(
        statuses,
        [
            st(S::Idle, R::Initial),
            st(S::Downloading, R::Initial),
            st(S::Downloaded, R::Initial),
            st(S::Updating, R::Initial),
            st(S::Idle, R::Success),
        ]
    );
    assert!(seq[4].merged);
}

#[test]
fn recorder_merges_state_first_failure() {
    // Downloading -> Idle/ConnectionLost as State=0 then Result=4: the
    // intermediate Idle/Initial is a cancel, which is also allowed, and the
    // following Idle/Initial -> Idle/ConnectionLost is not — so merge.
    let mut rec = FirmwareRecorder::new().strict();
    feed(
        &mut rec,
        &[(0, 3, 0), (0, 5, 0), (10, 3, 1), (500, 3, 0), (501, 5, 4)],
    );
    let seq = rec.check().unwrap();
    assert_eq!(seq.last().unwrap().status, st(S::Idle, R::ConnectionLost));
    assert!(seq.last().unwrap().merged);
    assert_eq!(seq.len(), 3);
}

#[test]
fn recorder_infers_one_coalesced_state() {
    // Downloading never notified (pmin): Idle -> Downloaded.
    let mut rec = FirmwareRecorder::new();
    feed(&mut rec, &[(0, 3, 0), (0, 5, 0), (800, 3, 2)]);
    let seq = rec.check().unwrap();
    assert_eq!(seq[1].inferred, vec![st(S::Downloading, R::Initial)]);
    // The strict recorder refuses the same samples.
    let mut strict = FirmwareRecorder::new().strict();
    feed(&mut strict, &[(0, 3, 0), (0, 5, 0), (800, 3, 2)]);
    assert!(strict.check().is_err());
}

#[test]
fn recorder_reports_the_first_violation_with_the_whole_sequence() {
    let mut rec = FirmwareRecorder::new();
    // Success straight out of Downloading: no arrow, and no path with one
    // unseen status (it needs Downloaded and Updating).
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
fn recorder_ignores_repeats_and_other_resources_and_rejects_bad_values() {
    let mut rec = FirmwareRecorder::new();
    feed(
        &mut rec,
        &[(0, 3, 0), (0, 5, 0), (1, 3, 0), (2, 7, 99), (3, 5, 0)],
    );
    assert_eq!(rec.check().unwrap().len(), 1);
    assert!(rec.record_resource(Instant::now(), 3, 9).is_err());
    assert_eq!(rec.current(), Some(st(S::Idle, R::Initial)));
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
    let mut rec = SoftwareRecorder::new().strict();
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

    // Every allowed step leads to a status a device may report.
    #[test]
    fn allowed_steps_end_in_consistent_statuses(a in 0i64..4, b in 0i64..11, c in 0i64..4, d in 0i64..11) {
        let from = st(S::from_code(a).unwrap(), R::from_code(b).unwrap());
        let to = st(S::from_code(c).unwrap(), R::from_code(d).unwrap());
        if from != to && check_transition(from, to).is_ok() {
            prop_assert!(lwm2m::firmware::is_consistent(to.state, to.result));
        }
    }

    // The recorder never panics on any sample stream.
    #[test]
    fn recorder_never_panics(samples in proptest::collection::vec((prop_oneof![Just(3u16), Just(5u16)], 0i64..12), 0..30)) {
        let mut rec = FirmwareRecorder::new();
        let t0 = Instant::now();
        for (i, (res, v)) in samples.iter().enumerate() {
            let _ = rec.record_resource(t0 + Duration::from_millis(i as u64), *res, *v);
        }
        let _ = rec.recording();
    }
}
