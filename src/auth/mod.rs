//! Who is calling, and what they may do: roles, API tokens, OpenID Connect
//! bearer JWTs and browser sessions. Pure decisions, no HTTP: the server's
//! middleware (`server::auth`) asks an [`Authenticator`] and applies the
//! route table (`server::access`).

pub mod oidc;
pub mod roles;
pub mod session;
pub mod tokens;

use std::path::PathBuf;
use std::time::SystemTime;

pub use oidc::{OidcConfig, OidcVerifier};
pub use roles::{Role, Roles};
pub use session::Sessions;
pub use tokens::TokensFile;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub roles: Roles,
    pub via: Via,
    /// When the credential stops being valid (sessions, JWTs).
    pub expires: Option<SystemTime>,
}

impl Principal {
    pub fn token(name: &str, roles: Roles) -> Self {
        Self {
            name: name.to_string(),
            roles,
            via: Via::Token,
            expires: None,
        }
    }

    /// Everyone, when the server runs with `--insecure-no-auth`.
    pub fn anonymous() -> Self {
        Self {
            name: "anonymous".into(),
            roles: [Role::Admin].into_iter().collect(),
            via: Via::Anonymous,
            expires: None,
        }
    }
}

/// How a principal proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Token,
    Oidc,
    Session,
    Anonymous,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Token => "token",
            Via::Oidc => "oidc",
            Via::Session => "session",
            Via::Anonymous => "anonymous",
        }
    }
}

/// Why a credential was refused: for the log and the audit trail only;
/// the client is told 401 and nothing more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no credential")]
    Missing,
    #[error("unknown API token")]
    UnknownToken,
    #[error("bearer JWT refused: {0}")]
    Jwt(String),
    #[error("bearer JWT but no OIDC provider is configured")]
    NoProvider,
    #[error("no live session for this cookie")]
    Session,
    #[error("malformed Authorization header")]
    Malformed,
}

/// Access control that cannot be set up: the server does not start.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{}: {why}", path.display())]
    File { path: PathBuf, why: String },
    #[error("OIDC setting `{setting}`: {why}")]
    Setting { setting: &'static str, why: String },
}

/// Every way in: API tokens, OIDC bearer JWTs, browser sessions.
pub struct Authenticator {
    pub tokens: Option<TokensFile>,
    pub oidc: Option<OidcVerifier>,
    pub sessions: Sessions,
    /// `--insecure-no-auth`: everyone is [`Principal::anonymous`].
    pub insecure: bool,
}

impl Authenticator {
    /// Whether any credential can succeed.
    pub fn has_credentials(&self) -> bool {
        self.oidc.is_some() || self.tokens.as_ref().is_some_and(|t| !t.is_empty())
    }

    /// The principal of an `Authorization: Bearer` value: an API token
    /// (`vf_...`) or a JWT.
    pub async fn bearer(&self, credential: &str) -> Result<Principal, Refusal> {
        if credential.starts_with(tokens::TOKEN_PREFIX) {
            return self
                .tokens
                .as_ref()
                .and_then(|t| t.verify(credential))
                .ok_or(Refusal::UnknownToken);
        }
        if credential.split('.').count() == 3 {
            return match &self.oidc {
                Some(oidc) => oidc.verify(credential).await,
                None => Err(Refusal::NoProvider),
            };
        }
        Err(Refusal::UnknownToken)
    }

    /// The principal of a session cookie.
    pub fn session(&self, cookie: &str) -> Result<Principal, Refusal> {
        self.sessions.check(cookie).ok_or(Refusal::Session)
    }
}
