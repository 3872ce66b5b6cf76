//! ETS LightweightM2M-1.1-int-2 end to end (testcases/bootstrap/client-initiated-cert.yaml):
//! the bootstrap server writes a certificate-mode account (Security Mode 2,
//! certificates made for the run), the virtual meter registers over DTLS with
//! that certificate, and the embedded server ties the session to the endpoint
//! by the certificate's CN. A rig that does not declare certificate mode (a
//! PSK-only meter) skips the case with the reason.

use crate::support::{root, run_cases, CaseRun};

const CASE: &str = "bs-client-initiated-cert";
const CASES: &str = "testcases/bootstrap";

#[test]
fn the_device_registers_with_its_bootstrapped_certificate_and_no_key_is_logged() {
    let report = tempfile::tempdir().unwrap();
    let CaseRun {
        out, output, all, ..
    } = run_cases(&[CASE], CASES, report.path());
    let case: Vec<_> = all.iter().filter(|o| o.name.ends_with(CASE)).collect();
    assert_eq!(case.len(), 1, "{output}");
    assert_eq!(
        case[0].verdict, None,
        "{}: {}\n{output}",
        case[0].name, case[0].message
    );
    assert!(out.status.success(), "{output}");

    let dir = report.path().join("latest/virtual").join(CASE);
    let messages = std::fs::read_to_string(dir.join("lwm2m-messages.log")).unwrap();
    // The LwM2M server saw a certificate handshake whose CN is the endpoint.
    assert!(
        messages.contains("TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8"),
        "no certificate-mode handshake in the message log:\n{messages}"
    );
    assert!(
        messages.contains("completed: certificate CN \"virtual-meter-"),
        "the session is not tied to the certificate's CN:\n{messages}"
    );
    // The Bootstrap-Write of /0/x carried the private key as resource 5:
    // TLV `c8 05 8a` (id 5, 138 bytes, the PKCS#8 DER of a P-256 key,
    // RFC 5958), logged as zeros. No PEM or DER key anywhere in the report.
    let bootstrap = std::fs::read_to_string(dir.join("bootstrap-messages.log")).unwrap();
    let redacted = format!("c8058a{}", "00".repeat(138));
    assert!(
        bootstrap.contains(&redacted),
        "the certificate account's Secret Key is not redacted:\n{bootstrap}"
    );
    for entry in walk(report.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("PRIVATE KEY"),
            "{} holds a PEM key",
            entry.display()
        );
    }
}

#[test]
fn a_psk_only_device_skips_the_certificate_case_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let rig_text = std::fs::read_to_string(root().join("rigs/virtual.yaml")).unwrap();
    let psk_only: String = rig_text
        .lines()
        .filter(|l| !l.trim_start().starts_with("certificate_mode:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(
        psk_only, rig_text,
        "the virtual rig declares certificate mode"
    );
    let rig = dir.path().join("virtual-psk-only.yaml");
    std::fs::write(&rig, psk_only).unwrap();
    let report = dir.path().join("reports");
    let CaseRun {
        out, output, all, ..
    } = run_cases(&["--rig", rig.to_str().unwrap(), CASE], CASES, &report);
    let case: Vec<_> = all.iter().filter(|o| o.name.ends_with(CASE)).collect();
    assert_eq!(case.len(), 1, "{output}");
    assert_eq!(case[0].verdict.as_deref(), Some("skipped"), "{output}");
    assert!(
        case[0].message.contains("certificate_mode"),
        "the skip names the missing capability: {}",
        case[0].message
    );
    assert!(out.status.success(), "{output}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The same case with `block_size: 512` on its bootstrap step: the ~950-byte
/// Bootstrap-Write of the certificate account goes in Block1 blocks (RFC
/// 7959 §2.5: block 0 `0+/512`, the last without the M bit), the device
/// puts them together and registers with the certificate, and every block
/// of the Security object write is logged as zeros (a block alone cannot be
/// told apart from its key bytes).
#[test]
fn the_certificate_account_goes_in_block1_blocks_when_the_case_asks_for_512() {
    let dir = tempfile::tempdir().unwrap();
    let shipped =
        std::fs::read_to_string(root().join("testcases/bootstrap/client-initiated-cert.yaml"))
            .unwrap();
    let step = "steps:\n  - bootstrap:\n      script:\n";
    assert!(
        shipped.contains(step),
        "the case starts with its bootstrap step"
    );
    let blocks = shipped.replacen(
        step,
        "steps:\n  - bootstrap:\n      block_size: 512\n      script:\n",
        1,
    );
    let cases = dir.path().join("cases");
    std::fs::create_dir(&cases).unwrap();
    std::fs::write(cases.join("client-initiated-cert.yaml"), blocks).unwrap();
    let report = dir.path().join("reports");
    let CaseRun {
        out, output, all, ..
    } = run_cases(&[CASE], cases.to_str().unwrap(), &report);
    assert_eq!(all.len(), 1, "{output}");
    assert_eq!(all[0].verdict, None, "{}\n{output}", all[0].message);
    assert!(out.status.success(), "{output}");
    let bootstrap = std::fs::read_to_string(
        report
            .join("latest/virtual")
            .join(CASE)
            .join("bootstrap-messages.log"),
    )
    .unwrap();
    let security_blocks: Vec<&str> = bootstrap
        .lines()
        .filter(|l| {
            l.contains("out -> ")
                && l.contains(" PUT ")
                && l.contains(" /0/")
                && l.contains(" block1=")
        })
        .collect();
    assert!(
        security_blocks.len() >= 2
            && security_blocks[0].contains("block1=0+/512")
            && security_blocks.last().unwrap().contains("block1=1/512"),
        "the Security object write goes in 512-byte Block1 blocks:\n{bootstrap}"
    );
    for line in &security_blocks {
        // The last `len=N` bytes of the datagram's hex are its payload.
        let len: usize = line
            .split(" len=")
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no payload length in {line}"));
        let hex = line.rsplit(" | ").next().unwrap();
        let payload = &hex[hex.len() - 2 * len..];
        assert!(
            len > 100 && payload.bytes().all(|b| b == b'0'),
            "a Security block's payload is logged as zeros: {line}"
        );
    }
    assert!(
        bootstrap.contains("2.31 Continue"),
        "the device asks for each next block:\n{bootstrap}"
    );
}
