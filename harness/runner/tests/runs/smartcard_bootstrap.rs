//! ETS LightweightM2M-1.1-int-3 "Simple Bootstrap from Smartcard" end to
//! end (testcases/bootstrap/bs-smartcard.yaml): meterbench writes the
//! virtual meter's card (rigs/virtual-smartcard.yaml, `device.smartcard`)
//! before power-on, and the meter registers with the card's account without
//! a Bootstrap-Request (LwM2M 1.1 Core §6.1.4: the card comes first). A
//! card holding another device's credential fails the case with the refused
//! handshake and the identity it offered, not a bare timeout; the default
//! rig, which has no card, skips the case saying so.

use crate::support::{ets_property, meterbench, outcomes, parse, root, run_cases, text, CaseRun};

const CASE: &str = "bs-smartcard";
const CASES: &str = "testcases/bootstrap";
const RIG: &str = "rigs/virtual-smartcard.yaml";

#[test]
fn the_device_registers_from_its_smartcard_and_the_junit_names_int_3() {
    let report = tempfile::tempdir().unwrap();
    let CaseRun {
        out,
        output,
        xml,
        all,
    } = run_cases(
        &["--rig", RIG, "--rig", "rigs/virtual.yaml", CASE],
        CASES,
        report.path(),
    );
    let doc = parse(&xml);
    // Testcases are named by case id; the rig is the classname's first part.
    let on = |rig: &str| {
        doc.descendants()
            .find(|n| {
                n.has_tag_name("testcase")
                    && n.attribute("name") == Some(CASE)
                    && n.attribute("classname")
                        .is_some_and(|c| c.starts_with(&format!("{rig}.")))
            })
            .unwrap_or_else(|| panic!("no {CASE} on {rig}:\n{output}"))
    };
    let verdict = |tc: roxmltree::Node| {
        tc.children()
            .find(|c| {
                c.is_element()
                    && c.tag_name().name() != "properties"
                    && !c.tag_name().name().starts_with("system-")
            })
            .map(|c| {
                (
                    c.tag_name().name().to_owned(),
                    c.attribute("message").unwrap_or_default().to_owned(),
                )
            })
    };
    assert_eq!(all.len(), 2, "{output}");
    let card = on("virtual-smartcard");
    assert_eq!(verdict(card), None, "{output}");
    let (skipped, why) = verdict(on("virtual")).expect("the card-less rig skips");
    assert_eq!(skipped, "skipped", "{output}");
    assert!(
        why.contains("device.smartcard"),
        "the skip names the missing rig part: {why}"
    );
    assert!(out.status.success(), "{output}");

    let ets = ets_property(card);
    assert!(ets.contains("LightweightM2M-1.1-int-3"), "{ets:?}");

    // The registration came over the card's account, and the meter says it
    // read the card (identity and fingerprint, no key).
    let dir = report.path().join("latest/virtual-smartcard").join(CASE);
    let device = std::fs::read_to_string(dir.join("device.log")).unwrap();
    assert!(
        device.contains("account from the smartcard"),
        "the meter did not read its card:\n{device}"
    );
    let messages = std::fs::read_to_string(dir.join("lwm2m-messages.log")).unwrap();
    assert!(
        messages.contains("completed: PSK identity \"card-meter-"),
        "no handshake with the card's identity:\n{messages}"
    );
    assert!(messages.contains("POST") && messages.contains("/rd?ep=card-meter-"));
}

#[test]
fn a_card_naming_a_wrong_psk_identity_fails_with_the_refused_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(root().join(RIG)).unwrap();
    let card_line = "    provisioned_by: meterbench";
    assert!(shipped.contains(card_line), "{RIG} changed: {shipped}");
    // The same device, whose card holds another account than the one the
    // server expects (from the environment, as a lab's rig says where a
    // credential lives); a short reboot_within keeps the wait short.
    let wrong = shipped
        .replace("name: virtual-smartcard", "name: virtual-wrong-card")
        .replace("reboot_within: 45s", "reboot_within: 12s")
        .replace(
            card_line,
            &format!(
                "{card_line}\n    credentials: {{ from: env, identity: MB_TEST_CARD_IDENTITY, key: MB_TEST_CARD_KEY }}"
            ),
        );
    let rig = dir.path().join("virtual-wrong-card.yaml");
    std::fs::write(&rig, wrong).unwrap();
    let report = dir.path().join("reports");
    let key = "00112233445566778899aabbccddeeff";
    let out = meterbench(&[
        "run",
        "--rig",
        rig.to_str().unwrap(),
        "--cases",
        CASES,
        "--report-dir",
        report.to_str().unwrap(),
        CASE,
    ])
    .env("MB_TEST_CARD_IDENTITY", "not-this-device")
    .env("MB_TEST_CARD_KEY", key)
    .output()
    .unwrap();
    let output = text(&out);
    assert!(!out.status.success(), "{output}");
    let xml = std::fs::read_to_string(report.join("latest/junit.xml"))
        .unwrap_or_else(|e| panic!("junit.xml ({e}):\n{output}"));
    let all = outcomes(&xml);
    assert_eq!(all.len(), 1, "{output}");
    assert_eq!(all[0].verdict.as_deref(), Some("failure"), "{output}");
    let m = &all[0].message;
    assert!(m.contains("await registered"), "{m}");
    assert!(
        m.contains("PSK identity \"not-this-device\"") && m.contains("unknown PSK identity"),
        "the failure names the refused handshake and the identity offered: {m}"
    );
    // The card's key is the card's: in no report file.
    for entry in walk(&report) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(key),
            "{} holds the card's key",
            entry.display()
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
