//! API tokens for services and scrapers: a YAML file of principals, their
//! roles and the SHA-256 of their token. The token itself is printed once
//! by `vitalflow token create` and stored nowhere.
//!
//! A token is 256 random bits, so a plain SHA-256 is enough (no password
//! stretching needed: there is nothing to guess); presented tokens are
//! hashed and compared with every entry in constant time.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::roles::Roles;
use super::{AuthError, Principal};

/// Every token starts with this, so a leaked one is easy to recognise
/// (secret scanners) and easy to tell apart from a JWT.
pub const TOKEN_PREFIX: &str = "vf_";

/// One line of the tokens file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    pub name: String,
    pub roles: Roles,
    /// Hex SHA-256 of the token.
    pub sha256: String,
    /// When it was created (RFC 3339), for people reading the file.
    #[serde(default)]
    pub created: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensYaml {
    #[serde(default)]
    tokens: Vec<TokenEntry>,
}

/// The parsed, checked entries of a tokens file.
#[derive(Debug, Clone, Default)]
pub struct TokenSet {
    entries: Vec<([u8; 32], TokenEntry)>,
}

impl TokenSet {
    /// Read and check `path`; every error names the file and the entry.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|e| AuthError::File {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
        Self::parse(&text).map_err(|why| AuthError::File {
            path: path.to_path_buf(),
            why: why.to_string(),
        })
    }

    fn parse(text: &str) -> Result<Self, TokensFileError> {
        let yaml: TokensYaml = if text.trim().is_empty() {
            TokensYaml { tokens: Vec::new() }
        } else {
            // The parser's message quotes the offending line: a hash at
            // worst, never a token (tokens are not stored).
            serde_saphyr::from_str(text).map_err(|e| TokensFileError::Syntax(e.to_string()))?
        };
        let mut entries = Vec::with_capacity(yaml.tokens.len());
        for (i, entry) in yaml.tokens.into_iter().enumerate() {
            let at = format!("tokens[{i}] (`{}`)", entry.name);
            let entry_error = |why| TokensFileError::Entry {
                at: at.clone(),
                why,
            };
            check_name(&entry.name).map_err(entry_error)?;
            if entries
                .iter()
                .any(|(_, e): &([u8; 32], TokenEntry)| e.name == entry.name)
            {
                return Err(entry_error(EntryError::DuplicateName));
            }
            if entry.roles.is_empty() {
                return Err(entry_error(EntryError::NoRoles));
            }
            let hash = parse_hash(&entry.sha256).ok_or_else(|| entry_error(EntryError::BadHash))?;
            entries.push((hash, entry));
        }
        Ok(Self { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> impl Iterator<Item = &TokenEntry> {
        self.entries.iter().map(|(_, e)| e)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The principal whose token this is. Every entry is compared, in
    /// constant time, whatever matches.
    pub fn verify(&self, token: &str) -> Option<Principal> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (hash, entry) in &self.entries {
            if bool::from(hash.ct_eq(&presented)) {
                found = Some(entry);
            }
        }
        found.map(|entry| Principal::token(&entry.name, entry.roles))
    }
}

/// A tokens file, re-read when it changes (so `vitalflow token create`
/// takes effect without a restart). A change that does not parse keeps the
/// previous tokens and is logged.
pub struct TokensFile {
    path: PathBuf,
    /// Read on every request; written only when the file changed.
    set: RwLock<TokenSet>,
    /// When the file was last looked at, and its modification time then.
    checked: Mutex<(Instant, Option<SystemTime>)>,
}

/// How often requests look whether the file changed.
const RECHECK_EVERY: Duration = Duration::from_secs(1);

impl TokensFile {
    pub fn open(path: &Path) -> Result<Self, AuthError> {
        let set = TokenSet::load(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            set: RwLock::new(set),
            checked: Mutex::new((Instant::now(), modified(path))),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.set.read().expect("tokens lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The principal of `token`, as the file says now: at most once a
    /// second, a request looks whether the file changed (a token added or
    /// an entry removed) and re-reads it.
    pub fn verify(&self, token: &str) -> Option<Principal> {
        self.reload_if_changed();
        self.set.read().expect("tokens lock").verify(token)
    }

    fn reload_if_changed(&self) {
        // One request looks; the others go on with the tokens in hand.
        let Ok(mut checked) = self.checked.try_lock() else {
            return;
        };
        if checked.0.elapsed() < RECHECK_EVERY {
            return;
        }
        checked.0 = Instant::now();
        let now = modified(&self.path);
        if now == checked.1 {
            return;
        }
        checked.1 = now;
        match TokenSet::load(&self.path) {
            Ok(set) => {
                tracing::info!(file = %self.path.display(), tokens = set.len(), "tokens file re-read");
                *self.set.write().expect("tokens lock") = set;
            }
            Err(error) => {
                tracing::error!(%error, "tokens file changed but does not load; the previous tokens stay in force")
            }
        }
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// A new random token (256 bits).
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the OS random number generator failed");
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Hex SHA-256 of a token, as the tokens file stores it.
pub fn hash(token: &str) -> String {
    crate::common::digest::sha256_hex(token.as_bytes())
}

/// Create a token for `name` with `roles`, add its hash to the tokens file
/// at `path` (created, readable by its owner only, if absent) and return
/// the token: the only time it exists outside the caller's hands.
pub fn create(path: &Path, name: &str, roles: Roles) -> Result<String, AuthError> {
    let file_error = |why: String| AuthError::File {
        path: path.to_path_buf(),
        why,
    };
    check_name(name).map_err(|why| file_error(format!("token name `{name}`: {why}")))?;
    if roles.is_empty() {
        return Err(file_error("a token needs at least one role".into()));
    }
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => {
            let set = TokenSet::parse(&text).map_err(|e| file_error(e.to_string()))?;
            if set.entries.iter().any(|(_, e)| e.name == name) {
                return Err(file_error(format!(
                    "a token named `{name}` exists already; choose another name or remove its entry"
                )));
            }
            text
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HEADER.to_string(),
        Err(e) => return Err(file_error(e.to_string())),
    };
    let token = generate();
    let mut text = existing;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    if !text.contains("tokens:") {
        text.push_str("tokens:\n");
    }
    let roles_list: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    text.push_str(&format!(
        "  - name: {name}\n    roles: [{}]\n    sha256: {}\n    created: {}\n",
        roles_list.join(", "),
        hash(&token),
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    ));
    // Check what is about to be written parses back to what was meant.
    TokenSet::parse(&text).map_err(|why| file_error(format!("refusing to write: {why}")))?;
    write_private(path, text.as_bytes()).map_err(|e| file_error(e.to_string()))?;
    Ok(token)
}

const HEADER: &str = "# vitalflow API tokens. Only SHA-256 hashes of tokens are kept here;\n\
# a token is shown once, by `vitalflow token create --name NAME --role ROLE`.\n\
# Remove an entry to revoke its token (the server re-reads this file).\n\
tokens:\n";

/// Names are written into YAML unquoted, and appear in logs and the audit
/// trail: letters, digits and `._@-` only.
fn check_name(name: &str) -> Result<(), EntryError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c))
        && !name.starts_with(['-', '.']);
    if ok { Ok(()) } else { Err(EntryError::BadName) }
}

fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Replace `path` atomically with `bytes`, readable by its owner only
/// (the temporary file the rename publishes is created with mode 0600).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TokensFileError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|error| TokensFileError::CreateDir {
            dir: dir.to_path_buf(),
            error,
        })?;
    }
    crate::storage::publish::write_atomically(path, bytes).map_err(TokensFileError::Write)
}

/// What is wrong with a tokens file, or writing one. Callers wrap it into
/// [`AuthError::File`] with the file's path.
#[derive(Debug, thiserror::Error)]
enum TokensFileError {
    /// Not YAML of the expected shape (the parser's message).
    #[error("not a tokens file (`tokens: [{{name, roles, sha256}}]`): {0}")]
    Syntax(String),
    /// One entry is invalid; `at` names it (`tokens[2] (`ci`)`).
    #[error("{at}: {why}")]
    Entry { at: String, why: EntryError },
    #[error("{}: {error}", dir.display())]
    CreateDir {
        dir: std::path::PathBuf,
        error: std::io::Error,
    },
    /// Writing the file failed; the whole chain is shown.
    #[error("{}", crate::common::ErrorChain(.0))]
    Write(crate::storage::StorageError),
}

/// An invalid entry of a tokens file (or a name given to `token create`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum EntryError {
    #[error("use 1 to 64 letters, digits, `.`, `_`, `@` or `-` (not first)")]
    BadName,
    #[error("the name is used twice")]
    DuplicateName,
    #[error("`roles` is empty; give at least one role")]
    NoRoles,
    #[error("`sha256` must be 64 hex digits (the hash of the token, never the token)")]
    BadHash,
}

#[cfg(test)]
mod tests {
    use super::super::roles::Role;
    use super::*;

    fn roles(list: &[Role]) -> Roles {
        list.iter().copied().collect()
    }

    #[test]
    fn a_created_token_verifies_and_only_its_hash_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.yaml");
        let token = create(&path, "prometheus", roles(&[Role::Metrics])).unwrap();
        let second = create(&path, "ward-app", roles(&[Role::Clinician, Role::Viewer])).unwrap();
        assert!(
            token.starts_with(TOKEN_PREFIX) && token.len() == 3 + 43,
            "{token}"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&token) && !text.contains(&second));
        assert!(text.contains(&hash(&token)));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let set = TokenSet::load(&path).unwrap();
        let found = set.verify(&token).unwrap();
        assert_eq!(found.name, "prometheus");
        assert_eq!(found.roles, roles(&[Role::Metrics]));
        assert_eq!(set.verify(&second).unwrap().name, "ward-app");
        assert!(set.verify("vf_wrong").is_none());
        assert!(set.verify("").is_none());
        // A hash presented as the token is not the token.
        assert!(set.verify(&hash(&token)).is_none());

        let again = create(&path, "prometheus", roles(&[Role::Admin])).unwrap_err();
        assert!(again.to_string().contains("exists already"), "{again}");
    }

    #[test]
    fn malformed_files_are_refused_naming_the_file_and_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.yaml");
        for (text, expected) in [
            (
                "tokens: [{name: a, roles: [admin], sha256: abc}]",
                "tokens[0] (`a`): `sha256` must be 64 hex digits",
            ),
            (
                "tokens: [{name: a, roles: [root], sha256: abc}]",
                "unknown role `root`",
            ),
            (
                "tokens: [{name: a, roles: [], sha256: abc}]",
                "`roles` is empty",
            ),
            (
                "tokens: [{name: 'a b', roles: [admin], sha256: abc}]",
                "tokens[0] (`a b`)",
            ),
            (
                "tokens: [{name: a, roles: [admin], sha256: abc, token: x}]",
                "unknown field",
            ),
            ("- just a list", "not a tokens file"),
        ] {
            std::fs::write(&path, text).unwrap();
            let error = TokenSet::load(&path).unwrap_err().to_string();
            assert!(error.contains(&path.display().to_string()), "{error}");
            assert!(error.contains(expected), "{text}: {error}");
        }
        let missing = TokenSet::load(&dir.path().join("absent.yaml")).unwrap_err();
        assert!(missing.to_string().contains("absent.yaml"), "{missing}");
    }

    #[test]
    fn tokens_added_or_removed_while_serving_take_effect_without_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.yaml");
        create(&path, "first", roles(&[Role::Viewer])).unwrap();
        let file = TokensFile::open(&path).unwrap();
        let later = create(&path, "second", roles(&[Role::Viewer])).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while file.verify(&later).is_none() {
            assert!(
                Instant::now() < deadline,
                "the new token was never accepted"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Removing an entry revokes its token, also without a restart.
        let text = std::fs::read_to_string(&path).unwrap();
        let kept = &text[..text.find("  - name: second").unwrap()];
        assert!(kept.contains("name: first"), "{kept}");
        write_private(&path, kept.as_bytes()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while file.verify(&later).is_some() {
            assert!(Instant::now() < deadline, "the removed token still works");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Tokens-file-shaped text: the keys and values a file has, in any
    /// arrangement, plus arbitrary strings.
    fn tokens_yaml() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let word = prop_oneof![
            Just("tokens:".to_string()),
            Just("- name:".to_string()),
            Just("name:".to_string()),
            Just("roles:".to_string()),
            Just("[admin]".to_string()),
            Just("[viewer, root]".to_string()),
            Just("sha256:".to_string()),
            Just("a".repeat(64)),
            Just("created:".to_string()),
            Just("{".to_string()),
            Just("]".to_string()),
            Just("&anchor".to_string()),
            Just("*anchor".to_string()),
            Just("!!binary".to_string()),
            Just("\n  ".to_string()),
            Just("\n".to_string()),
            "\\PC{0,12}",
        ];
        proptest::collection::vec(word, 0..40).prop_map(|words| words.join(" "))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 512,
            ..Default::default()
        })]

        /// Any file content loads or is refused with a message naming the
        /// file; none panics; a loaded set never admits a made-up token.
        #[test]
        fn any_tokens_file_loads_or_is_refused_with_its_name(text in tokens_yaml()) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("tokens.yaml");
            std::fs::write(&path, &text).unwrap();
            match TokenSet::load(&path) {
                Ok(set) => {
                    proptest::prop_assert!(set.verify(&generate()).is_none());
                    for entry in set.entries() {
                        proptest::prop_assert!(!entry.roles.is_empty());
                        proptest::prop_assert_eq!(entry.sha256.len(), 64);
                    }
                }
                Err(error) => {
                    let message = error.to_string();
                    proptest::prop_assert!(message.contains("tokens.yaml"), "{}", message);
                }
            }
        }

        /// Any presented credential is refused or admitted, never a panic.
        #[test]
        fn any_presented_token_is_simply_refused(token in "\\PC{0,300}") {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("tokens.yaml");
            create(&path, "svc", roles(&[Role::Viewer])).unwrap();
            let set = TokenSet::load(&path).unwrap();
            proptest::prop_assert!(set.verify(&token).is_none());
        }
    }
}
