//! The virtual meter process; see [`sim::main_from_args`].

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(sim::main_from_args(&args));
}
