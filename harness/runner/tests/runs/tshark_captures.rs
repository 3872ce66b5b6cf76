//! The case captures open in Debian's tshark decoded as CoAP (and DTLS) with
//! no preference set: a run of three shipped cases on the virtual rig (a
//! DTLS registration and Read, a CoAP Block2 firmware pull, a DTLS
//! bootstrap), then tshark reads each case's `lwm2m.pcap` and
//! `lwm2m-decrypted.pcap` and we find the LwM2M paths, Block2 numbers and
//! response codes the case exchanged. [`check_case_captures`] checks any
//! case folder, e.g. every one of the default run.
//!
//! Takes about 10 s (the three cases run one after another on one meter;
//! tshark reads each file in well under a second).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::support::{junit_of_run, outcomes, root, run, text};

/// One decoded frame: the protocols tshark found in it and its CoAP fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// `frame.protocols`, e.g. `exported_pdu:coap`.
    pub protocols: String,
    /// The Uri-Path segments joined by `/` (`rd`, `3/0`, `fw/meter-2.0.bin`); empty for responses.
    pub uri_path: String,
    /// The Block1 or Block2 number, if the message has one.
    pub block_number: Option<u32>,
    /// The CoAP code as tshark reads it (2 = 0.02 POST, 69 = 2.05 Content).
    pub code: Option<u8>,
}

impl Frame {
    pub fn is_coap(&self) -> bool {
        self.protocols.split(':').any(|p| p == "coap")
    }

    pub fn is_dtls(&self) -> bool {
        self.protocols.split(':').any(|p| p == "dtls")
    }
}

/// What tshark decoded from one case folder's captures.
#[derive(Debug, Default)]
pub struct CaseCaptures {
    /// `lwm2m.pcap`: plain CoAP and DTLS records as they went.
    pub wire: Vec<Frame>,
    /// `lwm2m-decrypted.pcap` (absent: no DTLS in the case): every CoAP message.
    pub decrypted: Vec<Frame>,
}

impl CaseCaptures {
    /// The CoAP frames of both captures, decrypted first; plain CoAP is in
    /// both, so a caller counting messages should look at one.
    pub fn coap(&self) -> impl Iterator<Item = &Frame> {
        self.decrypted
            .iter()
            .chain(self.wire.iter())
            .filter(|f| f.is_coap())
    }

    /// Whether some request named `path` (segments joined by `/`).
    pub fn has_request_to(&self, path: &str) -> bool {
        self.coap().any(|f| f.uri_path == path)
    }

    /// Whether some response had `code` (tshark's number: 68 = 2.04).
    pub fn has_code(&self, code: u8) -> bool {
        self.coap().any(|f| f.code == Some(code))
    }
}

/// Reads `case_dir`'s captures with tshark and checks what holds for every
/// case: tshark reads them without error, nothing is malformed, every wire
/// frame is CoAP or DTLS and every decrypted frame CoAP — decoded with no
/// preference or decode-as rule, since tshark runs with none. Returns the
/// frames for case-specific checks; panics naming the file otherwise.
pub fn check_case_captures(case_dir: &Path) -> CaseCaptures {
    let wire_file = case_dir.join("lwm2m.pcap");
    assert!(wire_file.is_file(), "{} missing", wire_file.display());
    let wire = tshark_frames(&wire_file);
    for f in &wire {
        assert!(
            f.is_coap() || f.is_dtls(),
            "{}: a frame decoded as {} (not CoAP or DTLS)",
            wire_file.display(),
            f.protocols
        );
    }
    let decrypted_file = case_dir.join("lwm2m-decrypted.pcap");
    let decrypted = if decrypted_file.is_file() {
        let frames = tshark_frames(&decrypted_file);
        for f in &frames {
            assert!(
                f.is_coap() && !f.is_dtls(),
                "{}: a frame decoded as {}",
                decrypted_file.display(),
                f.protocols
            );
        }
        frames
    } else {
        assert!(
            !wire.iter().any(Frame::is_dtls),
            "{}: DTLS records but no {}",
            wire_file.display(),
            decrypted_file.display()
        );
        Vec::new()
    };
    CaseCaptures { wire, decrypted }
}

/// `tshark -r FILE -T fields ...`, one [`Frame`] per line. `-n` (no name
/// resolution) and an empty personal configuration folder, so no
/// preference of this machine's user helps the decoding.
fn tshark_frames(file: &Path) -> Vec<Frame> {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("tshark")
        .env("WIRESHARK_CONFIG_DIR", profile.path())
        .env("HOME", profile.path())
        .args(["-n", "-r"])
        .arg(file)
        .args(["-T", "fields", "-E", "separator=\t"])
        .args(["-e", "frame.protocols", "-e", "coap.opt.uri_path"])
        .args(["-e", "coap.opt.block_number", "-e", "coap.code"])
        .args(["-e", "_ws.malformed", "-e", "_ws.expert.severity"])
        .output()
        .unwrap_or_else(|e| panic!("tshark runs (apt-get install tshark): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tshark -r {}: {}\n{stdout}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            let col = |i: usize| cols.get(i).copied().unwrap_or("");
            assert!(
                !col(0).contains("malformed") && col(4).is_empty(),
                "{}: tshark finds a malformed frame: {line}",
                file.display()
            );
            Frame {
                protocols: col(0).to_string(),
                // Repeated options come joined by tshark's aggregator, `,`.
                uri_path: col(1).replace(',', "/"),
                block_number: col(2).split(',').next().and_then(|n| n.parse().ok()),
                code: col(3).parse().ok(),
            }
        })
        .collect()
}

/// tshark's numbers for the CoAP codes the cases exchange.
const POST: u8 = 2;
const PUT: u8 = 3;
const CREATED: u8 = 65;
const CHANGED: u8 = 68;
const CONTENT: u8 = 69;

#[test]
fn tshark_decodes_each_cases_capture_as_coap_with_its_paths_blocks_and_codes() {
    let cases = tempfile::tempdir().unwrap();
    for file in [
        "device-management/read-device-tlv.yaml",
        "firmware/pull-coap-block2-64.yaml",
        "bootstrap/client-initiated.yaml",
    ] {
        let to = cases.path().join(Path::new(file).file_name().unwrap());
        std::fs::copy(root().join("testcases").join(file), to).unwrap();
    }
    let reports = tempfile::tempdir().unwrap();
    let out = run(&[
        "run",
        "--cases",
        cases.path().to_str().unwrap(),
        "--report-dir",
        reports.path().to_str().unwrap(),
    ]);
    let output = text(&out);
    assert!(out.status.success(), "{output}");
    let junit = junit_of_run(reports.path(), &output);
    let ids: Vec<String> = outcomes(&junit).into_iter().map(|o| o.name).collect();
    let case = |id: &str| {
        let dir = reports.path().join("latest/virtual").join(id);
        assert!(dir.is_dir(), "{} missing (ran {ids:?})", dir.display());
        check_case_captures(&dir)
    };

    // Registration and a Read over DTLS (the virtual rig is a PSK rig): the
    // wire holds DTLS records only, the decrypted capture the LwM2M.
    let read = case("dm-read-device-tlv");
    assert!(
        !read.wire.is_empty() && read.wire.iter().all(Frame::is_dtls),
        "{read:?}"
    );
    assert!(read.has_request_to("3/0"), "a Read of /3/0: {read:?}");
    assert!(read.has_code(CONTENT), "its 2.05 Content: {read:?}");
    assert!(
        read.wire.len() >= read.decrypted.len(),
        "every decrypted message went in a DTLS record"
    );

    // The Block2 pull from the plain CoAP file server: in the wire capture
    // as CoAP, every block number from 0 up, each answered 2.05.
    let pull = case("fw-pull-coap-64");
    let blocks: BTreeSet<u32> = pull
        .wire
        .iter()
        .filter(|f| f.is_coap() && f.code == Some(CONTENT))
        .filter_map(|f| f.block_number)
        .collect();
    let last = *blocks.last().expect("Block2 responses in the wire capture");
    assert!(last >= 10, "an image of many 64-byte blocks: {blocks:?}");
    assert_eq!(blocks, (0..=last).collect(), "no block missing");
    assert!(
        pull.wire
            .iter()
            .any(|f| f.is_coap() && f.uri_path.starts_with("fw/")),
        "GETs of /fw/<image>: {:?}",
        pull.wire
    );
    assert!(pull.has_request_to("5/0/1"), "the Package URI written");
    assert!(pull.has_request_to("5/0/2"), "Update executed");
    assert!(pull.has_code(CHANGED));

    // A bootstrap over DTLS: Bootstrap-Request, Writes, Finish, then the
    // registration with the provisioned account.
    let bs = case("bs-client-initiated");
    assert!(bs.wire.iter().any(Frame::is_dtls));
    let requests = |code: u8, path: &str| {
        bs.decrypted
            .iter()
            .any(|f| f.code == Some(code) && f.uri_path == path)
    };
    assert!(
        requests(POST, "bs"),
        "Bootstrap-Request: {:?}",
        bs.decrypted
    );
    assert!(
        requests(PUT, "0/1") || requests(PUT, "0"),
        "Bootstrap-Write of the Security object"
    );
    assert!(requests(POST, "rd"), "Register");
    assert!(bs.has_code(CHANGED) && bs.has_code(CREATED));
}
