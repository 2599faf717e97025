//! Roles and the sets of them a principal holds.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a principal may do. `admin` implies every other role and
/// `clinician` implies `viewer` and `ingest` (see [`Roles::allows`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum Role {
    /// The dashboard: ward, patients, alerts, the live stream.
    Viewer,
    /// A viewer who may also call the model (`/predict`, `/explain`) and
    /// acknowledge alerts.
    Clinician,
    /// SQL over the stored datasets (`/api/query`).
    Analyst,
    /// `/metrics` only: a Prometheus scraper.
    Metrics,
    /// Everything, the audit trail included.
    Admin,
    /// Posting readings (`POST /fhir`): an interface engine or a monitor
    /// gateway, which sees nothing.
    Ingest,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Viewer,
        Role::Clinician,
        Role::Analyst,
        Role::Metrics,
        Role::Admin,
        Role::Ingest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Clinician => "clinician",
            Role::Analyst => "analyst",
            Role::Metrics => "metrics",
            Role::Admin => "admin",
            Role::Ingest => "ingest",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown role `{s}`; roles: viewer, clinician, analyst, metrics, admin, ingest"
                )
            })
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

/// The roles one principal holds (a small bit set).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Roles(u8);

impl Roles {
    pub fn none() -> Self {
        Self(0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn with(self, role: Role) -> Self {
        Self(self.0 | role.bit())
    }

    /// Whether the principal holds `role` itself.
    pub fn holds(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    /// Whether these roles allow what `required` allows: holding it, or
    /// `admin`, or `clinician` for `viewer`.
    pub fn allows(self, required: Role) -> bool {
        self.holds(required)
            || self.holds(Role::Admin)
            || (matches!(required, Role::Viewer | Role::Ingest) && self.holds(Role::Clinician))
    }

    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |r| self.holds(*r))
    }
}

impl FromIterator<Role> for Roles {
    fn from_iter<I: IntoIterator<Item = Role>>(iter: I) -> Self {
        iter.into_iter().fold(Roles::none(), Roles::with)
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Role::as_str).collect();
        f.write_str(&names.join(","))
    }
}

impl Serialize for Roles {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Roles {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<Role>::deserialize(d)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_allows_everything_and_clinician_allows_viewing() {
        let admin: Roles = [Role::Admin].into_iter().collect();
        assert!(Role::ALL.into_iter().all(|r| admin.allows(r)));
        let clinician: Roles = [Role::Clinician].into_iter().collect();
        assert!(clinician.allows(Role::Viewer) && clinician.allows(Role::Clinician));
        assert!(!clinician.allows(Role::Analyst) && !clinician.allows(Role::Metrics));
        let viewer: Roles = [Role::Viewer].into_iter().collect();
        assert!(!viewer.allows(Role::Clinician));
        let metrics: Roles = [Role::Metrics].into_iter().collect();
        assert!(!metrics.allows(Role::Viewer));
        assert!(!Roles::none().allows(Role::Viewer));
    }

    #[test]
    fn roles_read_and_print_by_name() {
        let roles: Roles = serde_json::from_str(r#"["analyst","viewer"]"#).unwrap();
        assert_eq!(roles.to_string(), "viewer,analyst");
        let error = serde_json::from_str::<Roles>(r#"["root"]"#).unwrap_err();
        assert!(error.to_string().contains("unknown role `root`"), "{error}");
    }
}
