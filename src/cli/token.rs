//! `vitalflow token create | list`

use super::args::TokenCommand;
use crate::auth::tokens::{self, TokenSet};

pub fn token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            name,
            roles,
            tokens: path,
        } => {
            let roles = roles.into_iter().collect();
            let token = tokens::create(&path, &name, roles)?;
            eprintln!(
                "token `{name}` ({roles}) added to {}; it is shown once, here:",
                path.display()
            );
            println!("{token}");
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
