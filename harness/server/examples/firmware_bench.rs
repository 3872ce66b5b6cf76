//! Runs the firmware download benchmark (what `meterbench bench firmware`
//! runs): `cargo run --release -p server --example firmware_bench -- [REPETITIONS]`.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut opts = server::firmware::bench::BenchOptions::default();
    if let Some(n) = std::env::args().nth(1) {
        opts.repetitions = n.parse()?;
    }
    let report = server::firmware::bench::run(opts).await?;
    println!("{report}");
    Ok(())
}
