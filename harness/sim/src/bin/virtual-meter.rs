//! The virtual meter process; see [`sim::main_from_args`]. A leading
//! `sim-meter` is skipped, so that `virtual-meter sim-meter ARGS` runs like
//! `meterbench sim-meter ARGS` (a rig's start command works with either).

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "sim-meter") {
        args.remove(0);
    }
    std::process::exit(sim::main_from_args(&args));
}
