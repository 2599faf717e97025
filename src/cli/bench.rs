//! `vitalflow bench`

use anyhow::Context;

use super::args::BenchArgs;

pub async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let temp;
    let output = match &args.output {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::tempdir().context("creating a temporary output directory")?;
            temp.path().join("vitals")
        }
    };
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: this is a debug build; run `cargo run --release -- bench` for real figures"
        );
    }
    eprintln!(
        "bench: {} events, {} patients -> {}",
        args.events,
        args.patients,
        output.display()
    );
    let report = crate::bench::run(args.events, args.patients, &output).await?;
    println!("{report}");
    Ok(())
}
