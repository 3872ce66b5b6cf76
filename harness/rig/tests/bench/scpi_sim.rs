//! The simulated supply over the wire, as any SCPI client sees it: one
//! answer line per program message, short and long forms in any case,
//! compound messages, an error queue, and each fault mode.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rig::power::scpi_sim::{Fault, Load, ScpiSupplySim};

struct Client {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(sim: &ScpiSupplySim) -> Client {
        let s = TcpStream::connect(sim.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        Client {
            writer: s.try_clone().unwrap(),
            reader: BufReader::new(s),
        }
    }

    fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
    }

    /// The answer line, or `None` when nothing came within the read timeout.
    fn ask(&mut self, line: &str) -> Option<String> {
        self.send(line);
        let mut answer = String::new();
        match self.reader.read_line(&mut answer) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(answer),
        }
    }
}

#[test]
fn long_and_short_forms_compound_messages_and_one_answer_line() {
    let sim = ScpiSupplySim::start().unwrap();
    sim.set_load(1, Load::Ohms(33.0));
    let mut c = Client::connect(&sim);
    c.send("sour:voltage:level 3.3;:Current 0.25A;:outp:stat on");
    assert_eq!(
        c.ask("MEASure:VOLTage?;CURRent?;:OUTPut?").as_deref(),
        Some("+3.30000000E+00;+1.00000000E-01;1\n")
    );
    // Above the limit the supply holds the current: 0.25 A into 33 ohms.
    sim.set_load(1, Load::Ohms(11.0));
    assert_eq!(
        c.ask("MEASure:SCALar:VOLTage:DC?;:meas:curr:dc?")
            .as_deref(),
        Some("+2.75000000E+00;+2.50000000E-01\n")
    );
    assert_eq!(
        c.ask("volt?;curr?").as_deref(),
        Some("+3.30000000E+00;+2.50000000E-01\n")
    );
    assert_eq!(c.ask("SYST:ERR?").as_deref(), Some("+0,\"No error\"\n"));
    assert_eq!(
        sim.received()[0],
        "sour:voltage:level 3.3;:Current 0.25A;:outp:stat on",
        "lines are recorded as sent"
    );
}

#[test]
fn errors_queue_in_order_and_clear_with_cls() {
    let sim = ScpiSupplySim::start().unwrap();
    let mut c = Client::connect(&sim);
    c.send("VOLTS 3");
    c.send("VOLT");
    c.send("OUTP maybe");
    // By the path rule the second unit is MEAS:OUTP?, which does not exist:
    // the first answer comes, the second is an error.
    assert_eq!(
        c.ask("MEAS:VOLT?;OUTP?").as_deref(),
        Some("+0.00000000E+00\n")
    );
    assert_eq!(
        c.ask("SYST:ERR?").as_deref(),
        Some("-113,\"Undefined header\"\n")
    );
    assert_eq!(
        c.ask("SYST:ERR?").as_deref(),
        Some("-109,\"Missing parameter\"\n")
    );
    assert_eq!(
        c.ask("SYST:ERR?").as_deref(),
        Some("-224,\"Illegal parameter value\"\n")
    );
    assert_eq!(
        c.ask("SYST:ERR?").as_deref(),
        Some("-113,\"Undefined header\"\n")
    );
    c.send("*CLS");
    assert_eq!(c.ask("SYST:ERR?").as_deref(), Some("+0,\"No error\"\n"));
}

#[test]
fn rst_switches_the_output_off_and_zeroes_the_set_point() {
    let sim = ScpiSupplySim::start().unwrap();
    let mut c = Client::connect(&sim);
    c.send("VOLT 5;OUTP ON");
    assert_eq!(c.ask("*OPC?").as_deref(), Some("1\n"));
    assert!(sim.output(1).on);
    c.send("*RST");
    assert_eq!(c.ask("*OPC?").as_deref(), Some("1\n"));
    let out = sim.output(1);
    assert!(!out.on);
    assert_eq!(out.volts, 0.0);
}

#[test]
fn faults_silence_delay_and_hang_up() {
    let sim = ScpiSupplySim::start().unwrap();
    let mut c = Client::connect(&sim);
    sim.set_fault(Fault::Silent);
    assert_eq!(c.ask("*IDN?"), None);
    sim.set_fault(Fault::Slow(Duration::from_millis(100)));
    let started = Instant::now();
    assert!(c
        .ask("*IDN?")
        .unwrap()
        .starts_with("Keysight Technologies,"));
    assert!(started.elapsed() >= Duration::from_millis(100));
    sim.set_fault(Fault::DropConnection);
    assert_eq!(c.ask("*IDN?"), None, "connection closed without an answer");
    sim.set_fault(Fault::None);
    let mut again = Client::connect(&sim);
    assert!(again.ask("*IDN?").is_some());
    assert_eq!(sim.connections(), 2);
}
