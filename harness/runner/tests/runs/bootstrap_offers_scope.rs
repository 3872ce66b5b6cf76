//! `bootstrap_offers` decides by the case's own Bootstrap-Discover, never
//! by one an earlier case made on the same device: the bootstrap server
//! keeps the whole run's history, and what a device offered then (object 2,
//! Access Control, LwM2M 1.1 Core §7.3) may not hold after a later
//! bootstrap. Two cases on a one-meter copy of the virtual rig: the first
//! discovers `/` (the meter offers /2), the second asks `bootstrap_offers:
//! /2` without a Discover of its own, a mistake in the case that must be
//! reported as the harness's error, not passed on the first case's answer.

use crate::support::{one_meter_rig, run_cases, CaseRun};

const DISCOVERS: &str = "\
id: scope-a-discover
title: A bootstrap whose script discovers / first
ets: []
ets_none: a check of the harness's event scoping, not of a device
needs: [modem]
timeout: 60s
steps:
  - bootstrap:
      script:
        - discover: /
        - write: security
        - write: server
        - finish: true
  - at: { command: bootstrap_start }
  - await: bootstrapped
    within: 30s
  - await: registered
    within: 30s
";

const OFFERS_WITHOUT_DISCOVER: &str = "\
id: scope-b-offers
title: bootstrap_offers with no Bootstrap-Discover in the case
ets: []
ets_none: a check of the harness's event scoping, not of a device
needs: [modem]
timeout: 30s
steps:
  - bootstrap_offers: /2
";

#[test]
fn bootstrap_offers_ignores_an_earlier_cases_discover() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases");
    std::fs::create_dir(&cases).unwrap();
    // Files run in name order: the Discover first.
    std::fs::write(cases.join("a-discover.yaml"), DISCOVERS).unwrap();
    std::fs::write(cases.join("b-offers.yaml"), OFFERS_WITHOUT_DISCOVER).unwrap();
    // One meter, one case at a time: both cases run on the same device,
    // whose Bootstrap-Discover the bootstrap server has seen.
    let rig = one_meter_rig(dir.path());
    let CaseRun { output, all, .. } = run_cases(
        &["--rig", &rig],
        cases.to_str().unwrap(),
        &dir.path().join("reports"),
    );
    let verdict = |id: &str| {
        all.iter()
            .find(|o| o.name.ends_with(id))
            .unwrap_or_else(|| panic!("{id} did not run:\n{output}"))
    };
    assert_eq!(verdict("scope-a-discover").verdict, None, "{output}");
    let offers = verdict("scope-b-offers");
    assert_eq!(offers.verdict.as_deref(), Some("error"), "{output}");
    assert!(
        offers
            .message
            .contains("no Bootstrap-Discover of / by virtual-meter-"),
        "{}",
        offers.message
    );
    assert!(
        offers.message.contains("in this case"),
        "{}",
        offers.message
    );
}
