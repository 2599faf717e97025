//! OpenID Connect bearer tokens (JWTs) for people: the hospital's identity
//! provider (Keycloak, Entra ID, ...) signs them; vitalflow checks them
//! against the provider's published keys (JWKS) with `jsonwebtoken`.
//!
//! Checked: the signature, by the key the header's `kid` names; the
//! algorithm, against an allow-list of asymmetric algorithms fixed by
//! configuration (so never `none`, never an HMAC keyed with a public key);
//! `iss` and `aud` exactly; `exp` (required) and `nbf` with a small leeway;
//! the token's size. Roles come from a configurable claim.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use super::roles::{Role, Roles};
use super::{AuthError, Principal, Refusal, Via};

/// The `--oidc` file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider's issuer URL, exactly as in its tokens' `iss`.
    pub issuer: String,
    /// The audience tokens must name in `aud` (vitalflow's client id).
    pub audience: String,
    /// The provider's keys: an `https://` URL (its `jwks_uri`) or a file.
    pub jwks: String,
    /// Extra CA certificate (PEM) to trust for the JWKS URL.
    #[serde(default)]
    pub jwks_ca: Option<PathBuf>,
    /// Accepted signature algorithms; asymmetric only.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Claim holding the roles, a dotted path into the claims
    /// (`roles`, `realm_access.roles`, `groups`); an array of strings or a
    /// space-separated string.
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// The provider's role names mapped to vitalflow's; absent names are
    /// taken as vitalflow role names, unknown ones are ignored.
    #[serde(default)]
    pub role_map: BTreeMap<String, Role>,
    /// Claim naming the person (audit trail, logs).
    #[serde(default = "default_name_claim")]
    pub name_claim: String,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(default = "default_leeway", with = "humantime_serde_secs")]
    pub leeway: Duration,
    /// An unknown `kid` re-reads the JWKS at most this often.
    #[serde(default = "default_refresh", with = "humantime_serde_secs")]
    pub jwks_min_refresh: Duration,
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into(), "ES256".into()]
}
fn default_roles_claim() -> String {
    "roles".into()
}
fn default_name_claim() -> String {
    "sub".into()
}
fn default_leeway() -> Duration {
    Duration::from_secs(30)
}
fn default_refresh() -> Duration {
    Duration::from_secs(30)
}

mod humantime_serde_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let raw = String::deserialize(d)?;
        humantime::parse_duration(&raw)
            .map_err(|e| serde::de::Error::custom(format!("`{raw}`: {e}")))
    }
}

/// Tokens longer than this are refused unread.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// JWKS documents larger than this are refused.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

enum JwksSource {
    File(PathBuf),
    Url(reqwest::Client, reqwest::Url),
}

struct Key {
    key: DecodingKey,
    /// The JWK's own `alg`, when it names one.
    alg: Option<String>,
}

/// Verifies bearer JWTs of one provider.
pub struct OidcVerifier {
    config: OidcConfig,
    algorithms: Vec<Algorithm>,
    source: JwksSource,
    keys: RwLock<HashMap<String, Key>>,
    /// When the keys were last read; serialises refreshes.
    refreshed: Mutex<Instant>,
}

impl OidcVerifier {
    /// Read `path`, check it, and load the provider's keys: any failure is
    /// an error naming the file and setting, and the server does not start.
    pub async fn from_file(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|e| AuthError::File {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
        let config: OidcConfig = serde_saphyr::from_str(&text).map_err(|e| AuthError::File {
            path: path.to_path_buf(),
            why: format!("not an OIDC settings file: {e}"),
        })?;
        Self::new(config).await.map_err(|e| AuthError::File {
            path: path.to_path_buf(),
            why: e.to_string(),
        })
    }

    pub async fn new(config: OidcConfig) -> Result<Self, AuthError> {
        let setting = |setting: &'static str, why: String| AuthError::Setting { setting, why };
        if config.issuer.is_empty() {
            return Err(setting("issuer", "must not be empty".into()));
        }
        if config.audience.is_empty() {
            return Err(setting("audience", "must not be empty".into()));
        }
        let mut algorithms = Vec::new();
        for name in &config.algorithms {
            let alg = Algorithm::from_str(name).map_err(|_| {
                setting(
                    "algorithms",
                    format!("`{name}` is not a JWS algorithm (RS256, ES256, PS256, EdDSA, ...)"),
                )
            })?;
            if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
                return Err(setting(
                    "algorithms",
                    format!(
                        "`{name}` is a shared-secret algorithm; a provider's public keys verify asymmetric ones only"
                    ),
                ));
            }
            algorithms.push(alg);
        }
        if algorithms.is_empty() {
            return Err(setting("algorithms", "name at least one algorithm".into()));
        }
        let source = if config.jwks.starts_with("https://") {
            let url = reqwest::Url::parse(&config.jwks)
                .map_err(|e| setting("jwks", format!("`{}`: {e}", config.jwks)))?;
            let mut client = reqwest::Client::builder()
                .https_only(true)
                .timeout(FETCH_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none());
            if let Some(ca) = &config.jwks_ca {
                let pem = std::fs::read(ca)
                    .map_err(|e| setting("jwks_ca", format!("{}: {e}", ca.display())))?;
                let cert = reqwest::Certificate::from_pem(&pem)
                    .map_err(|e| setting("jwks_ca", format!("{}: {e}", ca.display())))?;
                client = client.add_root_certificate(cert);
            }
            let client = client
                .build()
                .map_err(|e| setting("jwks", format!("HTTP client: {e}")))?;
            JwksSource::Url(client, url)
        } else if config.jwks.contains("://") {
            return Err(setting(
                "jwks",
                format!(
                    "`{}`: keys are fetched over https:// only, or read from a file",
                    config.jwks
                ),
            ));
        } else {
            JwksSource::File(PathBuf::from(&config.jwks))
        };
        let keys = read_jwks(&source)
            .await
            .map_err(|why| setting("jwks", why.to_string()))?;
        Ok(Self {
            config,
            algorithms,
            source,
            keys: RwLock::new(keys),
            refreshed: Mutex::new(Instant::now()),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// The principal a valid token names, or why the token is refused.
    pub async fn verify(&self, token: &str) -> Result<Principal, Refusal> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Refusal::Jwt(format!(
                "token longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let header = decode_header(token).map_err(|e| Refusal::Jwt(format!("header: {e}")))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(Refusal::Jwt(format!(
                "algorithm {:?} not allowed",
                header.alg
            )));
        }
        let kid = header.kid.clone().unwrap_or_default();
        if !self.has_key(&kid) {
            self.refresh_for(&kid).await;
        }
        let keys = self.keys.read().expect("jwks lock");
        let key = keys.get(&kid).ok_or_else(|| {
            Refusal::Jwt(format!("no key with kid `{kid}` in the provider's JWKS"))
        })?;
        if let Some(alg) = &key.alg
            && *alg != format!("{:?}", header.alg)
        {
            return Err(Refusal::Jwt(format!(
                "key `{kid}` is for {alg}, not {:?}",
                header.alg
            )));
        }
        if key.key.family() != header.alg.family() {
            return Err(Refusal::Jwt(format!(
                "key `{kid}` cannot verify {:?}",
                header.alg
            )));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.config.leeway.as_secs();
        let data = decode::<serde_json::Map<String, Value>>(token, &key.key, &validation)
            .map_err(|e| Refusal::Jwt(e.to_string()))?;
        let claims = Value::Object(data.claims);
        let name = claim(&claims, &self.config.name_claim)
            .and_then(Value::as_str)
            .ok_or_else(|| Refusal::Jwt(format!("no `{}` claim", self.config.name_claim)))?
            .to_string();
        let expires = claims
            .get("exp")
            .and_then(Value::as_u64)
            .map(|s| std::time::UNIX_EPOCH + Duration::from_secs(s));
        Ok(Principal {
            name,
            roles: self.roles_of(&claims),
            via: Via::Oidc,
            expires,
        })
    }

    fn has_key(&self, kid: &str) -> bool {
        self.keys.read().expect("jwks lock").contains_key(kid)
    }

    /// Re-read the JWKS for an unknown `kid` (key rotation), at most once
    /// per `jwks_min_refresh`; a failed read keeps the keys in hand.
    async fn refresh_for(&self, kid: &str) {
        let mut refreshed = self.refreshed.lock().await;
        if self.has_key(kid) || refreshed.elapsed() < self.config.jwks_min_refresh {
            return;
        }
        *refreshed = Instant::now();
        match read_jwks(&self.source).await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), "OIDC keys re-read for an unknown kid");
                *self.keys.write().expect("jwks lock") = keys;
            }
            Err(error) => {
                tracing::warn!(%error, "re-reading the OIDC keys failed; keeping the previous ones")
            }
        }
    }

    fn roles_of(&self, claims: &Value) -> Roles {
        let names: Vec<&str> = match claim(claims, &self.config.roles_claim) {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            Some(Value::String(list)) => list.split_whitespace().collect(),
            _ => Vec::new(),
        };
        names
            .into_iter()
            .filter_map(|name| {
                self.config
                    .role_map
                    .get(name)
                    .copied()
                    .or_else(|| name.parse().ok())
            })
            .collect()
    }
}

/// The value at a dotted path (`realm_access.roles`).
fn claim<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(claims, |value, part| value.get(part))
}

/// Why the provider's keys could not be read; `origin` is the file or URL.
/// [`OidcVerifier::new`] reports it as the `jwks` setting's
/// [`AuthError::Setting`]; a failed re-read is only logged. The causes are
/// part of the message (they end up in a string or a log field).
#[derive(Debug, thiserror::Error)]
enum JwksError {
    /// The keys file cannot be read.
    #[error("{}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },

    /// The provider did not answer.
    #[error("{url}: no answer: {error}")]
    NoAnswer {
        url: reqwest::Url,
        error: reqwest::Error,
    },

    /// The provider answered with an error status (its body is not
    /// repeated: the status says enough).
    #[error("{url}: HTTP {status}")]
    Status {
        url: reqwest::Url,
        status: reqwest::StatusCode,
    },

    /// The provider's answer broke off.
    #[error("{url}: {error}")]
    Body {
        url: reqwest::Url,
        error: reqwest::Error,
    },

    #[error("{origin}: larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge { origin: String },

    #[error("{origin}: not a JWKS document: {error}")]
    NotJwks {
        origin: String,
        error: serde_json::Error,
    },

    /// No key is a public key that loads.
    #[error("{origin}: no usable public key")]
    NoUsableKey { origin: String },
}

async fn read_jwks(source: &JwksSource) -> Result<HashMap<String, Key>, JwksError> {
    let (origin, bytes) = match source {
        JwksSource::File(path) => (
            path.display().to_string(),
            std::fs::read(path).map_err(|error| JwksError::Read {
                path: path.clone(),
                error,
            })?,
        ),
        JwksSource::Url(client, url) => {
            let mut response =
                client
                    .get(url.clone())
                    .send()
                    .await
                    .map_err(|error| JwksError::NoAnswer {
                        url: url.clone(),
                        error,
                    })?;
            if !response.status().is_success() {
                return Err(JwksError::Status {
                    url: url.clone(),
                    status: response.status(),
                });
            }
            // Read up to the cap whatever the length header says (or
            // whether there is one): a chunked body has none.
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|error| JwksError::Body {
                url: url.clone(),
                error,
            })? {
                if body.len() + chunk.len() > MAX_JWKS_BYTES {
                    return Err(JwksError::TooLarge {
                        origin: url.to_string(),
                    });
                }
                body.extend_from_slice(&chunk);
            }
            (url.to_string(), body)
        }
    };
    if bytes.len() > MAX_JWKS_BYTES {
        return Err(JwksError::TooLarge { origin });
    }
    let set: JwkSet = serde_json::from_slice(&bytes).map_err(|error| JwksError::NotJwks {
        origin: origin.clone(),
        error,
    })?;
    let single = set.keys.len() == 1;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        // A key without `kid` is usable only as the provider's one key.
        let kid = match (&jwk.common.key_id, single) {
            (Some(kid), _) => kid.clone(),
            (None, true) => String::new(),
            (None, false) => continue,
        };
        match DecodingKey::from_jwk(jwk) {
            Ok(key) if key.family() != jsonwebtoken::AlgorithmFamily::Hmac => {
                let alg = jwk.common.key_algorithm.map(|a| format!("{a:?}"));
                keys.insert(kid, Key { key, alg });
            }
            Ok(_) => tracing::warn!(%kid, "ignoring a shared-secret key in the JWKS"),
            Err(error) => tracing::warn!(%kid, %error, "ignoring a JWKS key that does not load"),
        }
    }
    if keys.is_empty() {
        return Err(JwksError::NoUsableKey { origin });
    }
    Ok(keys)
}
