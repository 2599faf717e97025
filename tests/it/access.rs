//! Access control over real HTTP: the route table, roles, sessions and
//! CSRF, security headers, TLS, the audit trail, and the command line's
//! refusals to start half-secured.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, ORIGIN};
use serde_json::{Value, json};
use vitalflow::auth::Role;
use vitalflow::models::RiskModel;
use vitalflow::server::access::{Access, RULES, SWAGGER_ROUTES};
use vitalflow::server::{self, AppState};

use crate::support::{
    ChildGuard, binary, client, client_with, credentials, free_port, start_server, token_for,
    wait_for,
};

/// A client that shows redirects instead of following them, as a test of
/// the login flow needs.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// One valid patient for the model routes.
fn patient() -> Value {
    json!({"pregnancies": 1, "glucose": 100, "blood_pressure": 70, "skin_thickness": 20, "insulin": 80, "bmi": 25, "diabetes_pedigree_function": 0.3, "age": 30})
}

fn model() -> Result<RiskModel, String> {
    RiskModel::load(std::path::Path::new("models/diabetes_rf.onnx")).map_err(|e| e.to_string())
}

/// A request path for a route template, and the method the route serves.
fn request_for(route: &str) -> (reqwest::Method, String) {
    let path = route
        .replace("{id}", "p-001")
        .replace("{*rest}", "index.html");
    let post = [
        "/predict",
        "/predict/batch",
        "/explain",
        "/explain/batch",
        "/api/query",
        "/logout",
        "/api/alerts/{id}/ack",
    ];
    let method = if post.contains(&route) {
        reqwest::Method::POST
    } else {
        reqwest::Method::GET
    };
    (method, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_of_the_router_needs_a_credential_but_the_probe_and_login_page() {
    let server = start_server(AppState::new(model())).await;
    // The router's own record of its routes, not the table: a route added
    // without an entry fails here (and in the unit test), and is refused.
    let mut routes: Vec<&str> = server::routes(AppState::new(Err(String::new()))).paths;
    routes.extend(SWAGGER_ROUTES);
    let anonymous = no_redirects();
    for route in routes {
        let rule = RULES
            .iter()
            .find(|r| r.path == route)
            .unwrap_or_else(|| panic!("route `{route}` has no access rule"));
        let (method, path) = request_for(route);
        let response = anonymous
            .request(method.clone(), format!("{}{path}", server.base))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = response.status();
        if rule.access == Access::Public {
            assert_ne!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {route} is public"
            );
        } else if route == "/" {
            // A browser without a session is sent to the login page.
            assert_eq!(status, StatusCode::SEE_OTHER, "{route}");
            assert_eq!(response.headers()["location"], "/login");
        } else {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {route}");
            assert_eq!(
                response.headers()["www-authenticate"],
                "Bearer realm=\"vitalflow\""
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_decide_what_a_token_may_do_and_refusals_say_nothing_more() {
    let viewer = token_for("viewer", &[Role::Viewer]);
    let clinician = token_for("clinician", &[Role::Clinician]);
    let analyst = token_for("analyst", &[Role::Analyst]);
    let metrics = token_for("metrics", &[Role::Metrics]);
    let both = token_for("viewer-analyst", &[Role::Viewer, Role::Analyst]);
    let dir = tempfile::tempdir().unwrap();
    let state = AppState::new(model())
        .with_datasets(Ok(vitalflow::query::QuerySession::new(&[]).await.unwrap()));
    let server = start_server(state).await;
    let patient = patient();
    let query = json!({"sql": "SELECT 1 AS one"});
    let call = |token: String, route: &'static str| {
        let base = server.base.clone();
        let (patient, query) = (patient.clone(), query.clone());
        async move {
            let client = client_with(&token);
            let url = format!("{base}{route}");
            let response = match route {
                "/predict" | "/explain" => client.post(url).json(&patient).send().await,
                "/api/query" => client.post(url).json(&query).send().await,
                _ => client.get(url).send().await,
            }
            .unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };
    let table: [(&str, &String, [u16; 6]); 5] = [
        //                      ward  stream? predict explain query metrics
        ("viewer", &viewer, [200, 200, 403, 403, 403, 403]),
        ("clinician", &clinician, [200, 200, 200, 200, 403, 403]),
        ("analyst", &analyst, [403, 403, 403, 403, 200, 403]),
        ("metrics", &metrics, [403, 403, 403, 403, 403, 200]),
        ("viewer+analyst", &both, [200, 200, 403, 403, 200, 403]),
    ];
    let routes = [
        "/api/ward",
        "/api/alerts",
        "/predict",
        "/explain",
        "/api/query",
        "/metrics",
    ];
    for (who, token, expected) in table {
        for (route, want) in routes.iter().zip(expected) {
            let (status, body) = call(token.clone(), route).await;
            assert_eq!(status, want, "{who} {route}: {body}");
            if status == 403 {
                assert!(
                    !body.contains("role"),
                    "{who} {route}: the 403 names roles: {body}"
                );
            }
        }
    }
    // The admin may do everything, the audit table included.
    assert_eq!(call(credentials().admin.clone(), "/metrics").await.0, 200);
    // Wrong, malformed and non-bearer credentials: 401, the same body.
    let unknown = call(
        "vf_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
        "/api/ward",
    )
    .await;
    let missing = reqwest::get(format!("{}/api/ward", server.base))
        .await
        .unwrap();
    assert_eq!(unknown.0, 401);
    assert_eq!(missing.status(), 401);
    assert_eq!(unknown.1, missing.text().await.unwrap(), "refusals differ");
    let basic = reqwest::Client::new()
        .get(format!("{}/api/ward", server.base))
        .basic_auth("admin", Some(&credentials().admin))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
    drop(dir);
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("vitalflow_session="))
        .map(String::from)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_session_is_signed_same_site_only_and_ends_at_logout() {
    let server = start_server(AppState::new(model())).await;
    let base = server.base.clone();
    let browser = no_redirects();
    // Logging in from our own page.
    let login = browser
        .post(format!("{base}/login"))
        .header(ORIGIN, &base)
        .form(&[("token", credentials().admin.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    let set = session_cookie(login.headers()).expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=3600"] {
        assert!(set.contains(flag), "{flag} missing: {set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: no Secure flag");
    let cookie = set.split(';').next().unwrap().to_string();

    let get = |cookie: String| {
        let (browser, base) = (browser.clone(), base.clone());
        async move {
            browser
                .get(format!("{base}/api/ward"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(get(cookie.clone()).await, 200);
    // The live stream takes the cookie (EventSource cannot send headers).
    let stream = browser
        .get(format!("{base}/api/stream"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    drop(stream);

    // Changing requests with the cookie must come from our own origin.
    let query = |origin: Option<&str>| {
        let mut request = browser
            .post(format!("{base}/predict"))
            .header("cookie", &cookie)
            .json(&patient());
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        request.send()
    };
    assert_eq!(query(None).await.unwrap().status(), 403, "no Origin");
    assert_eq!(
        query(Some("http://evil.example")).await.unwrap().status(),
        403,
        "foreign Origin"
    );
    assert_eq!(
        query(Some(&base)).await.unwrap().status(),
        200,
        "own Origin"
    );
    // What a browser sends under `Referrer-Policy: no-referrer`: `Origin:
    // null`, with `Sec-Fetch-Site` telling where the request comes from.
    let fetched = |site: &'static str| {
        browser
            .post(format!("{base}/predict"))
            .header("cookie", &cookie)
            .header(ORIGIN, "null")
            .header("sec-fetch-site", site)
            .json(&patient())
            .send()
    };
    assert_eq!(fetched("same-origin").await.unwrap().status(), 200);
    assert_eq!(fetched("cross-site").await.unwrap().status(), 403);
    assert_eq!(fetched("same-site").await.unwrap().status(), 403);
    // A cross-site page cannot log a browser in either.
    let forced = browser
        .post(format!("{base}/login"))
        .header(ORIGIN, "http://evil.example")
        .form(&[("token", credentials().admin.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(forced.status(), 403);
    assert!(session_cookie(forced.headers()).is_none());

    // A tampered cookie is refused.
    let (payload, mac) = cookie.split_once('.').unwrap();
    let mut flipped = mac.to_string().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{payload}.{}", String::from_utf8(flipped).unwrap());
    assert_eq!(get(tampered).await, 401);

    // A wrong token on the form: the page again, 401, no cookie.
    let wrong = browser
        .post(format!("{base}/login"))
        .header(ORIGIN, &base)
        .form(&[("token", "vf_not-a-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(session_cookie(wrong.headers()).is_none());
    assert!(wrong.text().await.unwrap().contains("not accepted"));

    // Logging out clears the cookie and ends the session on the server:
    // a copy of the cookie is refused from now on.
    let logout = browser
        .post(format!("{base}/logout"))
        .header("cookie", &cookie)
        .header(ORIGIN, &base)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 303);
    assert!(
        session_cookie(logout.headers())
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(get(cookie).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_security_headers_and_errors_carry_no_paths() {
    let server = start_server(AppState::new(Err("/secret/path/model.onnx: gone".into()))).await;
    let admin = client();
    let anonymous = reqwest::Client::new();
    let base = &server.base;
    let requests = [
        ("dashboard", admin.get(format!("{base}/"))),
        ("api", admin.get(format!("{base}/api/ward"))),
        ("401", anonymous.get(format!("{base}/api/ward"))),
        ("404", admin.get(format!("{base}/no/such/route"))),
        ("health", anonymous.get(format!("{base}/health"))),
        ("login", anonymous.get(format!("{base}/login"))),
        ("docs", admin.get(format!("{base}/docs/"))),
        (
            "503",
            admin.post(format!("{base}/predict")).json(&json!({})),
        ),
    ];
    for (what, request) in requests {
        let response = request.send().await.unwrap();
        let headers = response.headers().clone();
        let csp = headers["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(csp.starts_with("default-src 'self'"), "{what}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
        assert!(
            !csp.contains("script-src"),
            "{what}: scripts only from 'self': {csp}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{what}");
        assert!(
            !headers.contains_key("strict-transport-security"),
            "{what}: HSTS on plain HTTP"
        );
        let body = response.text().await.unwrap();
        assert!(
            !body.contains("/secret/path"),
            "{what}: a file path in the body: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_certificate_made_here_sends_hsts_and_secure_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let acceptor = server::tls::acceptor(&cert, &key).unwrap();
    let listener = server::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = tokio_util::sync::CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    tokio::spawn(server::serve_with(
        listener,
        crate::support::secured(AppState::new(model())),
        Some(acceptor),
        stop,
    ));
    let base = format!("https://localhost:{port}");
    let https = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).unwrap(),
        )
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let ward = https
        .get(format!("{base}/api/ward"))
        .bearer_auth(&credentials().admin)
        .send()
        .await
        .unwrap();
    assert_eq!(ward.status(), 200);
    assert_eq!(
        ward.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let login = https
        .post(format!("{base}/login"))
        .header(ORIGIN, &base)
        .form(&[("token", credentials().admin.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    assert!(
        session_cookie(login.headers())
            .unwrap()
            .contains("; Secure")
    );
    // Plain HTTP on the TLS port gets nothing.
    let plain = reqwest::get(format!("http://localhost:{port}/health")).await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    // A client that does not trust the certificate cannot connect.
    assert!(reqwest::get(format!("{base}/health")).await.is_err());

    // Unreadable or mismatched files name the setting.
    let error = server::tls::acceptor(&cert, &dir.path().join("absent.pem"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("--tls-key") && error.contains("absent.pem"),
        "{error}"
    );
    let error = server::tls::acceptor(&key, &key).err().unwrap().to_string();
    assert!(error.contains("--tls-cert"), "{error}");
}

/// The status of `sql` sent to `/api/query` by `client`.
async fn query_status(client: &reqwest::Client, base: &str, sql: &str) -> u16 {
    client
        .post(format!("{base}/api/query"))
        .json(&json!({ "sql": sql }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Counts of audit rows per (route, outcome), read back from the dataset.
async fn audit_rows(dir: &std::path::Path) -> Vec<Value> {
    let dataset = vitalflow::audit::AuditLog::table(dir);
    let ctx = vitalflow::query::query_context(&[dataset]).await.unwrap();
    let (_, batches) = vitalflow::query::run_sql(
        &ctx,
        "SELECT route, method, outcome, status, principal, roles, client, patient_id, sql, sql_sha256, rows, latency_ms, reason \
         FROM audit ORDER BY time",
    )
    .await
    .unwrap();
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    for batch in &batches {
        writer.write(batch).unwrap();
    }
    writer.finish().unwrap();
    let text = writer.into_inner();
    if text.is_empty() {
        return Vec::new();
    }
    serde_json::from_slice(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_records_every_access_to_patient_data_and_nothing_for_health() {
    let dir = tempfile::tempdir().unwrap();
    let audit_dir = dir.path().join("audit");
    let viewer = token_for("audit-viewer", &[Role::Viewer]);
    let analyst = token_for("audit-analyst", &[Role::Analyst]);
    let clinician = token_for("audit-clinician", &[Role::Clinician]);
    let flooder = token_for("audit-flooder", &[Role::Analyst]);
    let audit = vitalflow::audit::AuditLog::start(&audit_dir, Duration::from_millis(200)).unwrap();
    let table = vitalflow::audit::AuditLog::table(&audit_dir);
    let state = crate::support::secured(AppState::new(model()))
        .with_audit(audit)
        .with_datasets(Ok(vitalflow::query::QuerySession::new(&[table])
            .await
            .unwrap()));
    let server = start_server(state).await;
    let base = server.base.clone();
    let sql = "SELECT 1 AS one";

    for _ in 0..3 {
        assert_eq!(
            reqwest::get(format!("{base}/health"))
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let viewer_client = client_with(&viewer);
    for _ in 0..2 {
        let s = viewer_client
            .get(format!("{base}/api/ward"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(s, 200);
    }
    let s = viewer_client
        .get(format!("{base}/api/patients/p-042"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(s, 404, "no live ward in this test");
    let s = query_status(&viewer_client, &base, sql).await;
    assert_eq!(s, 403);
    let analyst_client = client_with(&analyst);
    let s = query_status(&analyst_client, &base, sql).await;
    assert_eq!(s, 200);
    // A limit's refusals (429) are counted, not recorded: 12 queries at
    // once against a burst of 10.
    let flooder = client_with(&flooder);
    let mut answered = 0;
    let mut limited = 0;
    for _ in 0..12 {
        let s = query_status(&flooder, &base, sql).await;
        match s {
            200 => answered += 1,
            429 => limited += 1,
            other => panic!("{other}"),
        }
    }
    assert!(limited > 0, "the burst of 10 was not exceeded");
    // The audit table is the admins' alone.
    let s = query_status(
        &analyst_client,
        &base,
        "SELECT count(*) FROM (SELECT * FROM audit) AS a",
    )
    .await;
    assert_eq!(s, 403);
    let patient = patient();
    let s = client_with(&clinician)
        .post(format!("{base}/predict"))
        .json(&patient)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(s, 200);
    let s = reqwest::get(format!("{base}/api/ward"))
        .await
        .unwrap()
        .status();
    assert_eq!(s, 401);
    let browser = no_redirects();
    let login = browser
        .post(format!("{base}/login"))
        .header(ORIGIN, &base)
        .form(&[("token", viewer.as_str())])
        .send()
        .await
        .unwrap();
    let cookie = session_cookie(login.headers()).unwrap();
    let cookie = cookie.split(';').next().unwrap();
    let s = browser
        .post(format!("{base}/logout"))
        .header("cookie", cookie)
        .header(ORIGIN, &base)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(s, 303);

    // An admin reads the trail over HTTP once it is published.
    let admin = client();
    let seen = wait_for(
        Duration::from_secs(20),
        "audit records over /api/query",
        || {
            let (admin, base) = (admin.clone(), base.clone());
            async move {
                let body: Value = admin
                .post(format!("{base}/api/query"))
                .json(&json!({"sql": "SELECT count(*) AS n FROM audit WHERE route = '/api/ward'"}))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
                let n = body["rows"][0]["n"].as_u64()?;
                (n >= 3).then_some(n)
            }
        },
    )
    .await;
    assert_eq!(seen, 3);

    // Stop the server: the rest is flushed (SIGTERM loses nothing).
    let mut server = server;
    server.stop.cancel();
    (&mut server.task).await.unwrap().unwrap();
    let rows = audit_rows(&audit_dir).await;
    let count = |route: &str, outcome: &str| {
        rows.iter()
            .filter(|r| r["route"] == route && r["outcome"] == outcome)
            .count()
    };
    assert_eq!(
        rows.iter().filter(|r| r["route"] == "/health").count(),
        0,
        "{rows:#?}"
    );
    assert_eq!(count("/api/ward", "allowed"), 2, "{rows:#?}");
    assert_eq!(count("/api/ward", "refused"), 1, "{rows:#?}");
    assert_eq!(count("/api/patients/{id}", "failed"), 1, "{rows:#?}");
    assert_eq!(
        count("/api/query", "refused"),
        2,
        "viewer's and analyst's audit query"
    );
    let flooded = rows
        .iter()
        .filter(|r| {
            r["principal"]
                .as_str()
                .is_some_and(|p| p.starts_with("audit-flooder"))
        })
        .count();
    assert_eq!(
        flooded, answered,
        "one record per answered query, none per 429"
    );
    assert!(!rows.iter().any(|r| r["status"] == 429), "{rows:#?}");
    let analyst_queries = rows
        .iter()
        .filter(|r| r["route"] == "/api/query" && r["outcome"] == "allowed")
        .filter(|r| {
            r["principal"]
                .as_str()
                .unwrap()
                .starts_with("audit-analyst")
        })
        .count();
    assert_eq!(analyst_queries, 1, "{rows:#?}");
    assert!(
        count("/api/query", "allowed") > 1,
        "the admin's reads of the trail"
    );
    assert_eq!(count("/predict", "allowed"), 1);
    assert_eq!(count("/login", "allowed"), 1);
    assert_eq!(count("/logout", "allowed"), 1);
    let patient_row = rows
        .iter()
        .find(|r| r["route"] == "/api/patients/{id}")
        .unwrap();
    assert_eq!(patient_row["patient_id"], "p-042");
    assert!(
        patient_row["principal"]
            .as_str()
            .unwrap()
            .starts_with("audit-viewer")
    );
    assert_eq!(patient_row["roles"], "viewer");
    assert_eq!(patient_row["client"], "127.0.0.1");
    let query_row = rows
        .iter()
        .find(|r| r["route"] == "/api/query" && r["sql"] == sql && r["outcome"] == "allowed")
        .unwrap();
    assert_eq!(query_row["rows"], 1);
    assert_eq!(query_row["sql_sha256"].as_str().unwrap().len(), 64);
    let refused = rows
        .iter()
        .find(|r| r["route"] == "/api/ward" && r["outcome"] == "refused")
        .unwrap();
    assert_eq!(refused["status"], 401);
    assert!(refused.get("principal").is_none(), "{refused}");
    assert_eq!(refused["reason"], "no credential");
    let login_row = rows.iter().find(|r| r["route"] == "/login").unwrap();
    assert!(
        login_row["principal"]
            .as_str()
            .unwrap()
            .starts_with("audit-viewer")
    );
}

/// `vitalflow serve` with `args`, expected to refuse to start: its stderr.
fn refused_start(args: &[&str]) -> String {
    let output = Command::new(binary())
        .args(["serve", "--model", "models/missing.onnx"])
        .args(args)
        .output()
        .unwrap();
    assert!(!output.status.success(), "started with {args:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn the_server_does_not_start_half_secured() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let audit = path("audit");
    let addr = format!("127.0.0.1:{}", free_port());

    // No credential anywhere a non-loopback listener could be reached with.
    let error = refused_start(&[
        "--addr",
        "0.0.0.0:0",
        "--insecure-no-auth",
        "--audit-dir",
        &audit,
    ]);
    assert!(
        error.contains("loopback") && error.contains("token create"),
        "{error}"
    );
    std::fs::write(path("empty.yaml"), "tokens: []\n").unwrap();
    let error = refused_start(&[
        "--addr",
        &addr,
        "--tokens",
        &path("empty.yaml"),
        "--audit-dir",
        &audit,
    ]);
    assert!(
        error.contains("no credential is configured") && error.contains("empty.yaml"),
        "{error}"
    );
    std::fs::write(
        path("bad.yaml"),
        "tokens: [{name: a, roles: [admin], sha256: nothex}]\n",
    )
    .unwrap();
    let error = refused_start(&[
        "--addr",
        &addr,
        "--tokens",
        &path("bad.yaml"),
        "--audit-dir",
        &audit,
    ]);
    assert!(
        error.contains("bad.yaml") && error.contains("sha256"),
        "{error}"
    );
    // TLS files that do not load.
    std::fs::write(path("cert.pem"), "not a certificate").unwrap();
    let tokens = credentials().tokens.display().to_string();
    let error = refused_start(&[
        "--addr",
        &addr,
        "--tokens",
        &tokens,
        "--audit-dir",
        &audit,
        "--tls-cert",
        &path("cert.pem"),
        "--tls-key",
        &path("absent.key"),
    ]);
    assert!(error.contains("--tls-"), "{error}");
    // An OIDC provider whose keys do not answer.
    std::fs::write(
        path("oidc.yaml"),
        format!(
            "issuer: https://idp.test\naudience: vitalflow\njwks: https://127.0.0.1:{}/certs\n",
            free_port()
        ),
    )
    .unwrap();
    let error = refused_start(&[
        "--addr",
        &addr,
        "--oidc",
        &path("oidc.yaml"),
        "--audit-dir",
        &audit,
    ]);
    assert!(
        error.contains("oidc.yaml") && error.contains("`jwks`"),
        "{error}"
    );
    // Nothing was listening at any point.
    assert!(std::net::TcpStream::connect(&addr).is_err());
}

/// Lines of the child's stdout, as they come.
fn lines_of(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_creates_an_admin_token_and_prints_a_login_url_once() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.yaml");
    let audit = dir.path().join("audit");
    let start = || {
        let port = free_port();
        let mut command = Command::new(binary());
        command
            .args(["--log", "warn", "serve", "--model", "models/missing.onnx"])
            .args(["--addr", &format!("127.0.0.1:{port}")])
            .arg("--tokens")
            .arg(&tokens)
            .arg("--audit-dir")
            .arg(&audit)
            .stdout(Stdio::piped());
        (port, command)
    };
    let (port, mut command) = start();
    let mut first = ChildGuard::spawn(&mut command).unwrap();
    let lines = lines_of(first.child_mut());
    let url = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the first start prints a login URL");
        if line.contains("/login?token=") {
            break line[line.find("http").unwrap()..].trim().to_string();
        }
    };
    assert!(
        url.starts_with(&format!("http://127.0.0.1:{port}/login?token=vf_")),
        "{url}"
    );
    let token = url.rsplit('=').next().unwrap().to_string();
    let stored = std::fs::read_to_string(&tokens).unwrap();
    assert!(!stored.contains(&token), "the token itself is stored");
    // The URL logs a browser in, and the token works as a bearer.
    let browser = no_redirects();
    let login = browser.get(&url).send().await.unwrap();
    assert_eq!(login.status(), 303);
    assert!(session_cookie(login.headers()).is_some());
    let ward = client_with(&token)
        .get(format!("http://127.0.0.1:{port}/api/ward"))
        .send()
        .await
        .unwrap();
    assert_eq!(ward.status(), 200);
    first.kill();

    // The second start keeps the file and prints no token.
    let (port, mut command) = start();
    let mut second = ChildGuard::spawn(&mut command).unwrap();
    let lines = lines_of(second.child_mut());
    let banner = lines.recv_timeout(Duration::from_secs(60)).unwrap();
    assert!(
        banner.starts_with(&format!("http://127.0.0.1:{port}/")),
        "{banner}"
    );
    wait_for(Duration::from_secs(30), "the second server", || async {
        reqwest::get(format!("http://127.0.0.1:{port}/health"))
            .await
            .ok()
    })
    .await;
    while let Ok(line) = lines.try_recv() {
        assert!(!line.contains("vf_"), "a token printed again: {line}");
    }
    assert_eq!(std::fs::read_to_string(&tokens).unwrap(), stored);
}

#[test]
fn token_create_prints_the_token_once_and_stores_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.yaml");
    let tokens_arg = tokens.display().to_string();
    let (ok, token, stderr) = crate::support::run_binary([
        "token",
        "create",
        "--name",
        "prometheus",
        "--role",
        "metrics",
        "--tokens",
        &tokens_arg,
    ]);
    assert!(ok, "{stderr}");
    let token = token.trim();
    assert!(token.starts_with("vf_"), "{token}");
    assert!(!std::fs::read_to_string(&tokens).unwrap().contains(token));
    let (ok, listed, _) = crate::support::run_binary(["token", "list", "--tokens", &tokens_arg]);
    assert!(ok);
    assert!(listed.contains("prometheus") && listed.contains("metrics") && !listed.contains(token));
    let (ok, _, stderr) = crate::support::run_binary([
        "token",
        "create",
        "--name",
        "prometheus",
        "--role",
        "admin",
        "--tokens",
        &tokens_arg,
    ]);
    assert!(!ok && stderr.contains("exists already"), "{stderr}");
    let (ok, _, stderr) = crate::support::run_binary([
        "token",
        "create",
        "--name",
        "x",
        "--role",
        "root",
        "--tokens",
        &tokens_arg,
    ]);
    assert!(!ok && stderr.contains("root"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_mode_serves_loopback_without_credentials_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut command = Command::new(binary());
    command
        .args([
            "serve",
            "--insecure-no-auth",
            "--model",
            "models/missing.onnx",
        ])
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .arg("--audit-dir")
        .arg(dir.path().join("audit"))
        .arg("--tokens")
        .arg(dir.path().join("never-created.yaml"))
        .stderr(Stdio::piped());
    let mut server = ChildGuard::spawn(&mut command).unwrap();
    let stderr = server.child_mut().stderr.take().unwrap();
    let warned = std::thread::spawn(move || {
        std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            // Read to the end: a closed pipe would fail the server's logging.
            .filter(|l| l.contains("ACCESS CONTROL IS OFF"))
            .count()
            > 0
    });
    let status = wait_for(Duration::from_secs(60), "the insecure server", || async {
        Some(
            reqwest::get(format!("http://127.0.0.1:{port}/api/ward"))
                .await
                .ok()?
                .status(),
        )
    })
    .await;
    assert_eq!(status, 200);
    server.kill();
    assert!(warned.join().unwrap(), "no loud warning");
    assert!(!dir.path().join("never-created.yaml").exists());
}
