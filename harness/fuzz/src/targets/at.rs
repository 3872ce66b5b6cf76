//! The rig's AT engine (`rig::AtEngine`): how a modem's bytes become lines,
//! echoes, information responses, final result codes and URCs (ITU-T V.250
//! §5.7, 3GPP TS 27.007 §9.2). A babbling or broken modem must give an
//! error, never a panic or a hang.
//!
//! Input: `control, command, 0x00, before, 0x00, answer` where `control`
//! (one byte) picks the read size (bits 0-1: 1, 7, 64 or 512 bytes) and the
//! line limit (bit 2: 16 bytes instead of 4096); `command` is the line sent;
//! `before` is what the modem says before the command (URCs) and `answer`
//! what it says after. A missing part is empty. Once `answer` is used up the
//! stream fails (as a closed port does), which ends the command quickly.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use rig::dialect::FinalCodes;
use rig::{AtEngine, Dialect};

/// The virtual modem's dialect (fixtures/modems/meterbench-virtual.yaml),
/// written out so the target does not read files.
pub fn dialect() -> Dialect {
    Dialect {
        name: "fuzz".into(),
        final_codes: FinalCodes {
            ok: vec!["OK".into()],
            error: vec!["ERROR".into()],
            cme_error_prefix: Some("+CME ERROR:".into()),
        },
        urc_prefixes: ["+CEREG:", "+LWM2M:", "+SYSSTART", "+CFUN:", "+MBSWITCH:"]
            .map(String::from)
            .to_vec(),
        boot_urc: Some("+SYSSTART".into()),
        boot_timeout: Duration::from_secs(10),
        command_timeout: Duration::from_secs(5),
        commands: BTreeMap::new(),
        bring_up: Vec::new(),
        bring_up_bootstrap: Vec::new(),
        secret_vars: Vec::new(),
        line_ending: Default::default(),
        responses: BTreeMap::new(),
        events: BTreeMap::new(),
        source: PathBuf::from("fuzz"),
    }
}

/// A modem that says `before` until a command is written, then `answer`,
/// in reads of at most `chunk` bytes.
struct ScriptedModem {
    before: VecDeque<u8>,
    answer: VecDeque<u8>,
    written: bool,
    chunk: usize,
}

impl Read for ScriptedModem {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let chunk = self.chunk.min(buf.len());
        let source = if self.written {
            &mut self.answer
        } else {
            &mut self.before
        };
        if source.is_empty() {
            // Quiet before the command; a closed port after it.
            return Err(if self.written {
                io::ErrorKind::BrokenPipe.into()
            } else {
                io::ErrorKind::TimedOut.into()
            });
        }
        let n = chunk.min(source.len());
        for (slot, b) in buf.iter_mut().zip(source.drain(..n)) {
            *slot = b;
        }
        Ok(n)
    }
}

impl Write for ScriptedModem {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.contains(&b'\r') {
            self.written = true;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub fn run(input: &[u8]) {
    let Some((&control, rest)) = input.split_first() else {
        return;
    };
    let mut parts = rest.splitn(3, |b| *b == 0);
    let command = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let before = parts.next().unwrap_or_default();
    let answer = parts.next().unwrap_or_default();
    let modem = ScriptedModem {
        before: before.iter().copied().collect(),
        answer: answer.iter().copied().collect(),
        written: false,
        chunk: [1, 7, 64, 512][usize::from(control & 3)],
    };
    let mut engine = AtEngine::new(modem, "/dev/fuzz", dialect());
    let log = rig::wrap::TranscriptLog::default();
    engine.add_tap(std::sync::Arc::new(log.clone()));
    if control & 4 != 0 {
        engine.set_max_line_len(16);
    }
    let _ = engine.poll();
    let _ = engine.pending_urcs().count();
    let command = if command.is_empty() {
        "AT+CEREG?"
    } else {
        &command
    };
    if let Ok(response) = engine.command(command, Duration::from_secs(5)) {
        let _ = response.summary();
        let _ = response.value("+CEREG:");
        let _ = response.cme_error();
    }
    let _ = engine.take_urcs();
    let _ = engine.wait_for_line("+LWM2M:", Duration::ZERO);
    let _ = engine.recent_lines();
    let _ = engine.into_urcs();
    let transcript = log.transcript();
    let _ = transcript.to_text();
    let _ = transcript.received_lines();
}

pub const DICTIONARY: &[&[u8]] = &[
    b"\r\n",
    b"\r",
    b"\n",
    b"\0",
    b"OK",
    b"ERROR",
    b"+CME ERROR: ",
    b"+CME ERROR: 65535",
    b"+CME ERROR: 65536",
    b"+CME ERROR: SIM not inserted",
    b"+CEREG: 0,1",
    b"+CEREG:",
    b"+LWM2M: bootstrapped",
    b"+SYSSTART",
    b"AT+CEREG?",
    b"AT+CFUN=1",
    b"AT",
    b"ATE0",
    b"\xc3\xa9",
    b"\xff\xfe",
    b"\t",
    b"\x1b[0m",
];
