//! Writes the generated firmware images and their manifest into a folder:
//! `cargo run -p server --example firmware_fixtures -- fixtures/firmware`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fixtures/firmware".to_owned());
    let manifest = server::firmware::generate_fixtures(std::path::Path::new(&dir))?;
    for image in &manifest.images {
        println!(
            "{dir}/{}  {} bytes  sha256 {}",
            image.name, image.size, image.sha256
        );
    }
    Ok(())
}
