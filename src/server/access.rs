//! The route table: every route's required role, in one place. The router
//! is built through [`Routes`], which refuses a route without an entry
//! here, and the access middleware refuses (fails closed) any matched
//! route it cannot find, so no route can be public by accident.

use axum::Router;
use axum::routing::MethodRouter;

use super::state::AppState;
use crate::auth::{Role, Roles};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: the liveness probe, the login page and its stylesheet.
    Public,
    /// Any authenticated principal, whatever its roles.
    Authenticated,
    /// A principal whose roles allow this one (`admin` allows all,
    /// `clinician` allows `viewer`).
    Role(Role),
}

impl Access {
    pub fn allows(self, roles: Roles) -> bool {
        match self {
            Access::Public => true,
            Access::Authenticated => true,
            Access::Role(role) => roles.allows(role),
        }
    }
}

/// One route's entry.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The route template, as registered.
    pub path: &'static str,
    pub access: Access,
    /// Whether each request is recorded in the audit trail (access to
    /// patient data, logins and logouts; refusals are recorded on every
    /// non-public route).
    pub audited: bool,
}

const fn rule(path: &'static str, access: Access, audited: bool) -> Rule {
    Rule {
        path,
        access,
        audited,
    }
}

use Access::{Authenticated, Public};
const VIEWER: Access = Access::Role(Role::Viewer);
const CLINICIAN: Access = Access::Role(Role::Clinician);
const ANALYST: Access = Access::Role(Role::Analyst);
const METRICS: Access = Access::Role(Role::Metrics);
const INGEST: Access = Access::Role(Role::Ingest);

/// Every route. The README's access table is this table.
pub const RULES: &[Rule] = &[
    // Liveness: says whether the model and storage are up, nothing else.
    rule("/health", Public, false),
    rule("/login", Public, true),
    rule("/assets/style.css", Public, false),
    rule("/logout", Authenticated, true),
    rule("/api/me", Authenticated, false),
    // The dashboard and the live ward data.
    rule("/", VIEWER, false),
    rule("/assets/app.js", VIEWER, false),
    rule("/api/ward", VIEWER, true),
    rule("/api/patients/{id}", VIEWER, true),
    rule("/api/alerts", VIEWER, true),
    rule("/api/patients/{id}/history", VIEWER, true),
    rule("/api/ward/trend", VIEWER, true),
    rule("/assets/uPlot.min.js", VIEWER, false),
    rule("/assets/uPlot.min.css", VIEWER, false),
    // Acknowledging an alert is a clinical act, recorded with its author.
    rule("/api/alerts/{id}/ack", CLINICIAN, true),
    rule("/api/stream", VIEWER, true),
    // The model.
    rule("/predict", CLINICIAN, true),
    rule("/predict/batch", CLINICIAN, true),
    rule("/explain", CLINICIAN, true),
    rule("/explain/batch", CLINICIAN, true),
    // SQL over the stored datasets (the `audit` table: admin only).
    rule("/api/query", ANALYST, true),
    rule("/metrics", METRICS, false),
    // Readings in, as FHIR (an interface engine, a gateway, a clinician).
    rule("/fhir", INGEST, true),
    rule("/fhir/Observation", INGEST, true),
    // API documentation (Swagger UI and its OpenAPI document).
    rule("/openapi.json", Authenticated, false),
    rule("/docs", Authenticated, false),
    rule("/docs/", Authenticated, false),
    rule("/docs/{*rest}", Authenticated, false),
];

/// The routes Swagger UI registers (`utoipa-swagger-ui`, mounted at `/docs`).
pub const SWAGGER_ROUTES: [&str; 4] = ["/docs", "/docs/", "/docs/{*rest}", "/openapi.json"];

/// The entry of a route template.
pub fn rule_of(path: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.path == path)
}

/// A router that records its routes and refuses one without an entry.
pub struct Routes {
    pub router: Router<AppState>,
    pub paths: Vec<&'static str>,
}

impl Default for Routes {
    fn default() -> Self {
        Self {
            router: Router::new(),
            paths: Vec::new(),
        }
    }
}

impl Routes {
    pub fn route(mut self, path: &'static str, method: MethodRouter<AppState>) -> Self {
        assert!(
            rule_of(path).is_some(),
            "route `{path}` has no entry in server::access::RULES: say who may call it"
        );
        self.paths.push(path);
        self.router = self.router.route(path, method);
        self
    }

    pub fn merge(mut self, other: Routes) -> Self {
        self.paths.extend(other.paths);
        self.router = self.router.merge(other.router);
        self
    }

    /// Apply `f` to the router (layers), keeping the recorded routes.
    pub fn map(mut self, f: impl FnOnce(Router<AppState>) -> Router<AppState>) -> Self {
        self.router = f(self.router);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_of_the_router_has_exactly_one_entry() {
        let routes = super::super::routes(AppState::new(Err("no model".into())));
        let mut all: Vec<&str> = routes.paths.clone();
        all.extend(SWAGGER_ROUTES);
        for path in &all {
            let entries = RULES.iter().filter(|r| r.path == *path).count();
            assert_eq!(entries, 1, "route `{path}` has {entries} entries in RULES");
        }
        // And no stale entries for routes that no longer exist.
        for rule in RULES {
            assert!(
                all.contains(&rule.path),
                "RULES lists `{}`, which the router lacks",
                rule.path
            );
        }
    }

    #[test]
    fn only_the_probe_and_the_login_page_are_public() {
        let public: Vec<&str> = RULES
            .iter()
            .filter(|r| r.access == Access::Public)
            .map(|r| r.path)
            .collect();
        assert_eq!(public, ["/health", "/login", "/assets/style.css"]);
    }
}
