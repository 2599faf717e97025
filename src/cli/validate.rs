//! `vitalflow validate FILE...`

use anyhow::bail;

use super::args::ValidateArgs;
use crate::engine;
use crate::spec;

pub async fn validate(args: ValidateArgs) -> anyhow::Result<()> {
    let mut failed = 0;
    for path in &args.pipelines {
        let result = match spec::load(path) {
            Ok(spec) => engine::plan(spec).await.map(|planned| planned.tables.len()),
            Err(e) => Err(e),
        };
        match result {
            Ok(tables) => println!("{}: ok ({tables} tables)", path.display()),
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
            }
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {} pipeline file(s) invalid",
            args.pipelines.len()
        );
    }
    Ok(())
}
