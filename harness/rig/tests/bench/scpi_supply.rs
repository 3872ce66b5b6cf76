//! `ScpiSupply` against the simulated supply on loopback: the lines it
//! sends byte for byte, the state they leave, measurement, identity, and a
//! supply that refuses, stops answering, answers late or hangs up.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::support::scpi_spec;
use rig::model::ScpiCommands;
use rig::power::scpi_sim::{AnswerStyle, Fault, Instrument, Load, ScpiSupplySim};
use rig::power::{ScpiSupply, Supply, SupplyProblem, Volts};
use rig::{Power, RigError};

const T: Duration = Duration::from_secs(2);

fn problem(e: &RigError) -> &SupplyProblem {
    match e {
        RigError::Supply(s) => &s.problem,
        other => panic!("expected a supply error, got {other:?}"),
    }
}

#[test]
fn on_sets_voltage_and_limit_then_switches_the_output_on() {
    let sim = ScpiSupplySim::start().unwrap();
    let mut psu = ScpiSupply::new(scpi_spec(sim.addr(), T));
    psu.on().unwrap();
    let out = sim.output(1);
    assert_eq!((out.volts, out.current_limit, out.on), (3.6, 0.5, true));
    assert_eq!(
        sim.received(),
        [
            "*CLS",
            "VOLT 3.6",
            "SYST:ERR?",
            "CURR 0.5",
            "SYST:ERR?",
            "OUTP ON",
            "SYST:ERR?"
        ]
    );
    sim.clear_received();
    assert!(psu.is_on());
    psu.off().unwrap();
    assert!(!sim.output(1).on);
    assert!(!psu.is_on());
    assert_eq!(sim.received(), ["OUTP?", "OUTP OFF", "SYST:ERR?", "OUTP?"]);
    assert_eq!(sim.connections(), 1, "one connection serves every command");
}

#[test]
fn a_channel_is_selected_before_settings_and_measurements() {
    let sim = ScpiSupplySim::with(Instrument::new(
        "Keysight Technologies,E36313A,MY1,1.0",
        3,
        AnswerStyle::Keysight,
    ))
    .unwrap();
    sim.set_load(2, Load::Ohms(12.0));
    let mut s = scpi_spec(sim.addr(), T);
    s.channel = Some(2);
    let mut psu = ScpiSupply::new(s);
    psu.on().unwrap();
    let r = psu.measure().unwrap();
    assert_eq!((r.volts, r.amps), (3.6, 0.3));
    assert!(sim.output(2).on);
    assert!(
        !sim.output(1).on && sim.output(1).volts == 0.0,
        "output 1 untouched"
    );
    assert_eq!(
        sim.received(),
        [
            "*CLS",
            "INST:NSEL 2",
            "SYST:ERR?",
            "VOLT 3.6",
            "SYST:ERR?",
            "CURR 0.5",
            "SYST:ERR?",
            "OUTP ON",
            "SYST:ERR?",
            "INST:NSEL 2",
            "SYST:ERR?",
            "MEAS:VOLT?",
            "MEAS:CURR?"
        ]
    );
}

#[test]
fn measure_reads_the_terminals_including_constant_current() {
    let sim = ScpiSupplySim::start().unwrap();
    let mut psu = ScpiSupply::new(scpi_spec(sim.addr(), T));
    let r = psu.measure().unwrap();
    assert_eq!((r.volts, r.amps), (0.0, 0.0), "output off");
    psu.on().unwrap();
    sim.set_load(1, Load::Ohms(12.0));
    let r = psu.measure().unwrap();
    assert_eq!((r.volts, r.amps), (3.6, 0.3));
    // 3.6 V into 4 ohms wants 0.9 A: the 0.5 A limit holds it at 2 V.
    sim.set_load(1, Load::Ohms(4.0));
    let r = psu.measure().unwrap();
    assert_eq!((r.volts, r.amps), (2.0, 0.5));
}

#[test]
fn rigol_command_forms_and_answers_through_overrides() {
    let sim = ScpiSupplySim::with(Instrument::new(
        "RIGOL TECHNOLOGIES,DP832A,DP8A0001,00.01.16",
        3,
        AnswerStyle::Rigol,
    ))
    .unwrap();
    sim.set_load(3, Load::Ohms(36.0));
    let mut s = scpi_spec(sim.addr(), T);
    s.channel = Some(3);
    s.commands = ScpiCommands {
        set_voltage: ":SOUR3:VOLT {volts}".into(),
        set_current_limit: ":SOUR3:CURR {amps}".into(),
        output_on: ":OUTP CH{channel},ON".into(),
        output_off: ":OUTP CH{channel},OFF".into(),
        output_state: ":OUTP? CH{channel}".into(),
        measure_voltage: ":MEAS:VOLT? CH{channel}".into(),
        measure_current: ":MEAS:CURR? CH{channel}".into(),
        select_channel: ":INST:NSEL {channel}".into(),
        ..ScpiCommands::default()
    };
    let mut psu = ScpiSupply::new(s);
    psu.on().unwrap();
    assert!(psu.is_on(), "ON answers count as on");
    let r = psu.measure().unwrap();
    assert_eq!((r.volts, r.amps), (3.6, 0.1), "fixed-point answers parse");
    psu.off().unwrap();
    assert!(!psu.is_on());
    let sent = sim.received();
    assert_eq!(
        &sent[..9],
        [
            "*CLS",
            ":INST:NSEL 3",
            "SYST:ERR?",
            ":SOUR3:VOLT 3.6",
            "SYST:ERR?",
            ":SOUR3:CURR 0.5",
            "SYST:ERR?",
            ":OUTP CH3,ON",
            "SYST:ERR?"
        ]
    );
    assert!(sent.contains(&":MEAS:CURR? CH3".to_string()));
    assert!(sent.contains(&":OUTP CH3,OFF".to_string()));
}

#[test]
fn identify_parses_the_idn_answer() {
    let sim = ScpiSupplySim::start().unwrap();
    let mut psu = ScpiSupply::new(scpi_spec(sim.addr(), T));
    let id = psu.identify().unwrap();
    assert_eq!(id.manufacturer, "Keysight Technologies");
    assert_eq!(id.model, "E36311A");
    assert_eq!(id.serial, "MY00000001");
    assert_eq!(id.firmware, "1.0.4-1.12");
    assert_eq!(sim.received(), ["*CLS", "*IDN?"]);
}

#[test]
fn a_refused_setting_fails_with_the_supplys_text_and_the_output_stays_off() {
    let sim = ScpiSupplySim::start().unwrap();
    let mut s = scpi_spec(sim.addr(), T);
    s.voltage = Volts::from_milli(35_000); // the simulated supply's maximum is 30 V
    let mut psu = ScpiSupply::new(s);
    let err = psu.on().unwrap_err();
    let SupplyProblem::Refused {
        command,
        code,
        text,
    } = problem(&err)
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        (command.as_str(), *code, text.as_str()),
        ("VOLT 35", -222, "Data out of range")
    );
    assert_eq!(
        err.to_string(),
        format!(
            "scpi supply {}: `VOLT 35` refused by the supply: -222,\"Data out of range\"",
            sim.addr()
        )
    );
    assert!(!sim.output(1).on);
    assert!(
        !sim.received().contains(&"OUTP ON".to_string()),
        "nothing after the refusal"
    );
    assert!(
        sim.instrument().queued_errors().is_empty(),
        "the queue was drained"
    );
}

#[test]
fn a_command_the_model_does_not_know_surfaces_undefined_header() {
    let sim = ScpiSupplySim::start().unwrap();
    let mut s = scpi_spec(sim.addr(), T);
    s.commands.output_on = "OUTP:GEN ON".into();
    let mut psu = ScpiSupply::new(s);
    let err = psu.on().unwrap_err();
    assert!(
        err.to_string()
            .ends_with("`OUTP:GEN ON` refused by the supply: -113,\"Undefined header\""),
        "{err}"
    );
}

#[test]
fn a_supply_that_stops_answering_fails_within_the_timeout_naming_address_and_command() {
    let sim = ScpiSupplySim::start().unwrap();
    let timeout = Duration::from_millis(300);
    let mut psu = ScpiSupply::new(scpi_spec(sim.addr(), timeout));
    psu.on().unwrap();
    sim.set_fault(Fault::Silent);
    let started = Instant::now();
    let err = psu.measure().unwrap_err();
    let waited = started.elapsed();
    assert!(waited >= timeout && waited < timeout * 5, "{waited:?}");
    assert!(
        matches!(problem(&err), SupplyProblem::NoAnswer { command, waited, .. } if command == "MEAS:VOLT?" && *waited == timeout),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "scpi supply {}: no answer to `MEAS:VOLT?` within 300ms",
            sim.addr()
        )
    );
    // A setting is checked with SYST:ERR?, which then goes unanswered.
    let err = psu.off().unwrap_err();
    assert_eq!(problem(&err).command(), Some("SYST:ERR?"));
    // The state is read from the supply; silent, the last commanded state stands.
    let started = Instant::now();
    assert!(
        psu.is_on(),
        "off() did not complete: last commanded state is on"
    );
    assert!(started.elapsed() < timeout * 5);
    // Once it answers again, a fresh connection carries on: no stale answer
    // from the silent period is taken for a new one.
    sim.set_fault(Fault::None);
    let r = psu.measure().unwrap();
    assert_eq!(r.volts, 3.6);
    assert!(sim.connections() >= 2);
}

#[test]
fn a_slow_supply_is_waited_for_within_the_timeout_and_no_longer() {
    let sim = ScpiSupplySim::start().unwrap();
    sim.set_fault(Fault::Slow(Duration::from_millis(100)));
    let mut psu = ScpiSupply::new(scpi_spec(sim.addr(), Duration::from_secs(2)));
    assert_eq!(psu.identify().unwrap().model, "E36311A");
    let mut impatient = ScpiSupply::new(scpi_spec(sim.addr(), Duration::from_millis(40)));
    let err = impatient.identify().unwrap_err();
    assert!(
        matches!(problem(&err), SupplyProblem::NoAnswer { command, .. } if command == "*IDN?"),
        "{err:?}"
    );
}

#[test]
fn a_dropped_connection_is_reported_and_the_next_command_reconnects() {
    let sim = ScpiSupplySim::start().unwrap();
    let mut psu = ScpiSupply::new(scpi_spec(sim.addr(), T));
    psu.identify().unwrap();
    sim.set_fault(Fault::DropConnection);
    let err = psu.measure().unwrap_err();
    assert!(
        matches!(problem(&err), SupplyProblem::Closed { command } | SupplyProblem::Io { command, .. } if command == "MEAS:VOLT?"),
        "{err:?}"
    );
    assert!(err.to_string().contains(&sim.addr().to_string()), "{err}");
    sim.set_fault(Fault::None);
    psu.on().unwrap();
    assert!(sim.output(1).on);
    assert_eq!(sim.connections(), 2);
}

#[test]
fn nobody_listening_is_a_connect_error_naming_the_address() {
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut psu = ScpiSupply::new(scpi_spec(addr, Duration::from_millis(500)));
    let started = Instant::now();
    let err = psu.on().unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(problem(&err), SupplyProblem::Connect { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("scpi supply {addr}: cannot connect: ")),
        "{err}"
    );
}

#[test]
fn without_error_checks_only_the_settings_are_sent() {
    let sim = ScpiSupplySim::start().unwrap();
    let mut s = scpi_spec(sim.addr(), T);
    s.check_errors = false;
    s.commands.on_connect = String::new();
    let mut psu = ScpiSupply::new(s);
    psu.on().unwrap();
    assert!(psu.is_on());
    assert_eq!(sim.received(), ["VOLT 3.6", "CURR 0.5", "OUTP ON", "OUTP?"]);
}
