//! Browser sessions: `EventSource` cannot send an `Authorization` header,
//! so the dashboard logs in once and then carries a cookie.
//!
//! The cookie is `payload.mac`: the session's id, principal, roles and
//! expiry, signed with HMAC-SHA-256 under a key drawn at start. The server
//! also keeps the ids of live sessions, so logging out ends a session at
//! once (a copied cookie is refused from then on), and a restart ends all.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use super::roles::Roles;
use super::{Principal, Via};

/// The session cookie's name.
pub const COOKIE: &str = "vitalflow_session";
/// Cookies longer than this are not even parsed.
const MAX_COOKIE_BYTES: usize = 4096;
/// Live sessions kept at most; the oldest go first beyond it.
const MAX_SESSIONS: usize = 10_000;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sid: String,
    sub: String,
    roles: Roles,
    /// Expiry, seconds since the epoch.
    exp: u64,
}

/// Signs, checks and revokes sessions.
pub struct Sessions {
    key: hmac::Key,
    ttl: Duration,
    /// Live session ids and their expiry.
    live: Mutex<HashMap<String, u64>>,
}

impl Sessions {
    /// Sessions lasting `ttl`, signed with a fresh random key.
    pub fn new(ttl: Duration) -> Self {
        let rng = SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .expect("the OS random number generator failed");
        Self {
            key,
            ttl,
            live: Mutex::new(HashMap::new()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Open a session for `principal`; returns the cookie value.
    pub fn open(&self, principal: &Principal) -> String {
        let now = unix_now();
        let exp = now + self.ttl.as_secs();
        let mut id = [0u8; 16];
        SystemRandom::new()
            .fill(&mut id)
            .expect("the OS random number generator failed");
        let claims = Claims {
            sid: URL_SAFE_NO_PAD.encode(id),
            sub: principal.name.clone(),
            roles: principal.roles,
            exp,
        };
        {
            let mut live = self.live.lock().expect("sessions lock");
            live.retain(|_, expires| *expires > now);
            if live.len() >= MAX_SESSIONS {
                let oldest = live
                    .iter()
                    .min_by_key(|(_, e)| **e)
                    .map(|(sid, _)| sid.clone());
                if let Some(sid) = oldest {
                    live.remove(&sid);
                }
            }
            live.insert(claims.sid.clone(), exp);
        }
        let payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("claims serialise"));
        let mac = hmac::sign(&self.key, payload.as_bytes());
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()))
    }

    /// The principal of a valid, live, unexpired session cookie.
    pub fn check(&self, cookie: &str) -> Option<Principal> {
        let claims = self.claims(cookie)?;
        let live = self.live.lock().expect("sessions lock");
        (live.get(&claims.sid) == Some(&claims.exp)).then(|| Principal {
            name: claims.sub,
            roles: claims.roles,
            via: Via::Session,
            expires: Some(UNIX_EPOCH + Duration::from_secs(claims.exp)),
        })
    }

    /// End the session of `cookie` (logout); unknown cookies are ignored.
    pub fn close(&self, cookie: &str) {
        if let Some(claims) = self.claims(cookie) {
            self.live.lock().expect("sessions lock").remove(&claims.sid);
        }
    }

    fn claims(&self, cookie: &str) -> Option<Claims> {
        if cookie.len() > MAX_COOKIE_BYTES {
            return None;
        }
        let (payload, mac) = cookie.split_once('.')?;
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        // Constant-time comparison inside ring.
        hmac::verify(&self.key, payload.as_bytes(), &mac).ok()?;
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        (claims.exp > unix_now()).then_some(claims)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::super::roles::Role;
    use super::*;

    fn nurse() -> Principal {
        Principal::token("nurse", [Role::Viewer].into_iter().collect())
    }

    #[test]
    fn a_session_checks_until_it_is_closed() {
        let sessions = Sessions::new(Duration::from_secs(3600));
        let cookie = sessions.open(&nurse());
        let found = sessions.check(&cookie).unwrap();
        assert_eq!(found.name, "nurse");
        assert_eq!(found.via, Via::Session);
        assert!(found.roles.allows(Role::Viewer) && !found.roles.allows(Role::Clinician));
        sessions.close(&cookie);
        assert!(
            sessions.check(&cookie).is_none(),
            "a closed session still checks"
        );
    }

    #[test]
    fn forged_altered_foreign_and_expired_cookies_are_refused() {
        let sessions = Sessions::new(Duration::from_secs(3600));
        let cookie = sessions.open(&nurse());
        let (payload, mac) = cookie.split_once('.').unwrap();
        // Roles raised in the payload: the MAC no longer matches.
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        claims["roles"] = serde_json::json!(["admin"]);
        let raised = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        assert!(sessions.check(&format!("{raised}.{mac}")).is_none());
        // Another server's (another key's) cookie.
        let other = Sessions::new(Duration::from_secs(3600)).open(&nurse());
        assert!(sessions.check(&other).is_none());
        for junk in ["", ".", "abc", "a.b.c", &"x".repeat(10_000)] {
            assert!(sessions.check(junk).is_none(), "{junk:.20}");
        }
        // A session of no length is expired at once.
        let brief = Sessions::new(Duration::ZERO);
        let cookie = brief.open(&nurse());
        assert!(brief.check(&cookie).is_none());
    }
}
