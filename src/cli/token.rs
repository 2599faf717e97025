//! `vitalflow token create | list`

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;

use super::args::TokenCommand;
use crate::auth::tokens::{self, TokenSet};

pub fn token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            name,
            roles,
            tokens: path,
            output,
            if_absent,
        } => {
            let roles = roles.into_iter().collect();
            if if_absent
                && let Some(output) = &output
                && output.exists()
                && path.exists()
                && TokenSet::load(&path)?.entries().any(|e| e.name == name)
            {
                eprintln!(
                    "token `{name}` exists already ({}); nothing to do",
                    output.display()
                );
                return Ok(());
            }
            let token = tokens::create(&path, &name, roles)?;
            match output {
                Some(output) => {
                    write_token(&output, &token)
                        .with_context(|| format!("writing the token to {}", output.display()))?;
                    eprintln!(
                        "token `{name}` ({roles}) added to {}; the token is in {}",
                        path.display(),
                        output.display()
                    );
                }
                None => {
                    eprintln!(
                        "token `{name}` ({roles}) added to {}; it is shown once, here:",
                        path.display()
                    );
                    println!("{token}");
                }
            }
            Ok(())
        }
        TokenCommand::List { tokens: path } => {
            let set = TokenSet::load(&path)?;
            for entry in set.entries() {
                println!(
                    "{:<24} {:<32} {}",
                    entry.name,
                    entry.roles.to_string(),
                    entry.created.as_deref().unwrap_or("-")
                );
            }
            Ok(())
        }
    }
}

/// The token alone, for a scraper to read (Prometheus runs as another user).
fn write_token(path: &Path, token: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(path)?;
    file.write_all(token.as_bytes())?;
    file.sync_all()
}
