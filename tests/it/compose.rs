//! The Docker deployment, checked without a Docker engine (none exists here):
//! `docker-compose.yml` (services, KRaft, volumes, host paths, healthchecks,
//! dependencies, ports, Prometheus targets) and the `Dockerfile` (what it
//! COPYs and where), with every vitalflow command line in them run through
//! the real CLI.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use clap::{CommandFactory, Parser};
use serde_json::{Map, Value};
use vitalflow::cli::Cli;

use super::support::{binary, files_below};

const COMPOSE: &str = "docker-compose.yml";
const DOCKERFILE: &str = "Dockerfile";
const DOCKERIGNORE: &str = ".dockerignore";
const PROMETHEUS: &str = "config/prometheus.yml";

const SERVICES: [&str; 6] = [
    "kafka",
    "kafka-init",
    "simulator",
    "pipeline",
    "api",
    "prometheus",
];

/// Seven days: the `vitals` topic's retention.
const RETENTION_MS: u64 = 604_800_000;

// ---- docker-compose.yml -----------------------------------------------------

fn load_yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn compose() -> Value {
    load_yaml(COMPOSE)
}

fn services(compose: &Value) -> &Map<String, Value> {
    compose["services"]
        .as_object()
        .unwrap_or_else(|| panic!("{COMPOSE}: no `services` mapping"))
}

fn service<'a>(services: &'a Map<String, Value>, name: &str) -> &'a Value {
    services
        .get(name)
        .unwrap_or_else(|| panic!("{COMPOSE}: no `{name}` service"))
}

/// A scalar as compose reads it: `4` and `"4"` are the same to it.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A list of scalars, or one string split on whitespace (compose's string form).
fn words(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().filter_map(scalar).collect(),
        Value::String(s) => s.split_whitespace().map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

/// `environment:` as a mapping or as a list of `KEY=VALUE`.
fn environment(service: &Value) -> Vec<(String, String)> {
    match &service["environment"] {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), scalar(v).unwrap_or_default()))
            .collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|entry| {
                let (k, v) = entry.split_once('=').unwrap_or((entry, ""));
                (k.to_string(), v.to_string())
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn env_var(service: &Value, key: &str) -> Option<String> {
    environment(service)
        .into_iter()
        .find_map(|(k, v)| (k == key).then_some(v))
}

/// `depends_on:` as (service, condition); the list form means `service_started`.
fn depends_on(service: &Value) -> Vec<(String, String)> {
    match &service["depends_on"] {
        Value::Array(names) => names
            .iter()
            .filter_map(Value::as_str)
            .map(|n| (n.to_string(), "service_started".to_string()))
            .collect(),
        Value::Object(map) => map
            .iter()
            .map(|(n, spec)| {
                let condition = spec["condition"].as_str().unwrap_or("service_started");
                (n.clone(), condition.to_string())
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// One `volumes:` entry of a service.
enum Mount {
    /// A named volume, to be declared under the top-level `volumes:`.
    Named { name: String, target: String },
    /// A host path bound into the container.
    Bind { source: String, target: String },
    /// An anonymous volume or a tmpfs: nothing to check.
    Other,
}

fn mounts(service: &Value) -> Vec<Mount> {
    let entries = service["volumes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    entries.iter().map(mount).collect()
}

fn mount(entry: &Value) -> Mount {
    if let Some(short) = entry.as_str() {
        let mut parts = short.split(':');
        return match (parts.next(), parts.next()) {
            (Some(source), Some(target)) if is_host_path(source) => Mount::Bind {
                source: source.to_string(),
                target: target.to_string(),
            },
            (Some(name), Some(target)) => Mount::Named {
                name: name.to_string(),
                target: target.to_string(),
            },
            _ => Mount::Other,
        };
    }
    let source = entry["source"].as_str().unwrap_or_default().to_string();
    let target = entry["target"].as_str().unwrap_or_default().to_string();
    match entry["type"].as_str() {
        Some("bind") => Mount::Bind { source, target },
        Some("volume") if !source.is_empty() => Mount::Named {
            name: source,
            target,
        },
        _ => Mount::Other,
    }
}

fn is_host_path(source: &str) -> bool {
    source.starts_with('.') || source.starts_with('/') || source.starts_with('~')
}

/// `ports:` as (host port, container port), short or long syntax.
fn published_ports(service: &Value) -> Vec<(Option<u16>, u16)> {
    let entries = service["ports"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    entries
        .iter()
        .map(|entry| {
            let parsed = match entry {
                Value::Object(_) => {
                    scalar(&entry["target"])
                        .and_then(|t| t.parse().ok())
                        .map(|target| {
                            let host = scalar(&entry["published"]).and_then(|p| p.parse().ok());
                            (host, target)
                        })
                }
                other => scalar(other).and_then(|short| parse_short_port(&short)),
            };
            parsed.unwrap_or_else(|| panic!("{COMPOSE}: cannot read the port mapping {entry}"))
        })
        .collect()
}

/// `8080`, `8080:8080`, `127.0.0.1:8080:8080/tcp`.
fn parse_short_port(short: &str) -> Option<(Option<u16>, u16)> {
    let spec = short.split('/').next()?;
    let mut parts = spec.rsplit(':');
    let container = parts.next()?.parse().ok()?;
    let host = match parts.next() {
        Some(host) => Some(host.parse().ok()?),
        None => None,
    };
    Some((host, container))
}

/// The names other containers reach a service by: its own and its network aliases.
fn hostnames(name: &str, service: &Value) -> Vec<String> {
    let mut names = vec![name.to_string()];
    if let Some(networks) = service["networks"].as_object() {
        for network in networks.values() {
            names.extend(words(&network["aliases"]));
        }
    }
    names
}

/// Built from the project's Dockerfile: its command is vitalflow's arguments.
fn is_vitalflow(service: &Value) -> bool {
    !service["build"].is_null()
}

/// The arguments a vitalflow service runs with: its `command`, else the image's CMD.
fn vitalflow_args(service: &Value) -> Vec<String> {
    let command = words(&service["command"]);
    if command.is_empty() {
        default_cmd()
    } else {
        command
    }
}

/// The value of `--flag VALUE` or `--flag=VALUE`.
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter().enumerate().find_map(|(i, arg)| {
        if arg == flag {
            args.get(i + 1).map(String::as_str)
        } else {
            arg.strip_prefix(flag)
                .and_then(|rest| rest.strip_prefix('='))
        }
    })
}

fn listen_addr(args: &[String]) -> Option<SocketAddr> {
    flag_value(args, "--addr").map(|addr| {
        addr.parse()
            .unwrap_or_else(|e| panic!("--addr {addr}: not a socket address: {e}"))
    })
}

/// The ports a service listens on for other containers.
fn listen_ports(service: &Value) -> Vec<u16> {
    if is_vitalflow(service) {
        return listen_addr(&vitalflow_args(service))
            .filter(|addr| addr.ip().is_unspecified())
            .map(|addr| addr.port())
            .into_iter()
            .collect();
    }
    let mut ports: Vec<u16> = published_ports(service)
        .into_iter()
        .map(|(_, container)| container)
        .collect();
    ports.extend(
        words(&service["expose"])
            .iter()
            .filter_map(|p| p.split('/').next()?.parse::<u16>().ok()),
    );
    ports
}

/// Arguments that name a repository file (relative paths, or known extensions).
fn path_args(args: &[String]) -> Vec<&str> {
    const FILE_EXTENSIONS: [&str; 5] = [".yaml", ".yml", ".sql", ".onnx", ".json"];
    args.iter()
        .map(
            |arg| match arg.strip_prefix("--").and_then(|f| f.split_once('=')) {
                Some((_, value)) => value,
                None => arg.as_str(),
            },
        )
        .filter(|arg| !arg.starts_with('-') && !arg.starts_with('/') && !arg.contains("://"))
        .filter(|arg| arg.contains('/') || FILE_EXTENSIONS.iter().any(|e| arg.ends_with(e)))
        .collect()
}

// ---- Dockerfile ---------------------------------------------------------------

/// One `FROM` stage: its base image, its name and its instructions.
struct Stage {
    base: String,
    name: Option<String>,
    instructions: Vec<(String, String)>,
}

/// A COPY (or ADD), its destination resolved against the WORKDIR it runs in.
struct CopyOp {
    /// `--from=STAGE`; `None` copies from the build context (the repository).
    from: Option<String>,
    sources: Vec<String>,
    dest: PathBuf,
    workdir: PathBuf,
}

fn dockerfile() -> Vec<Stage> {
    let text = std::fs::read_to_string(DOCKERFILE).unwrap_or_else(|e| panic!("{DOCKERFILE}: {e}"));
    let mut stages: Vec<Stage> = Vec::new();
    let mut logical = String::new();
    for line in text.lines() {
        let line = line.trim();
        // Comments and blank lines, also inside a continued instruction.
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            logical.push_str(head);
            logical.push(' ');
            continue;
        }
        logical.push_str(line);
        let instruction = std::mem::take(&mut logical);
        let (keyword, rest) = instruction
            .split_once(char::is_whitespace)
            .unwrap_or((instruction.as_str(), ""));
        let keyword = keyword.to_ascii_uppercase();
        let rest = rest.trim().to_string();
        if keyword == "FROM" {
            let words: Vec<&str> = rest
                .split_whitespace()
                .filter(|w| !w.starts_with("--"))
                .collect();
            let name = match words.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.to_string()),
                _ => None,
            };
            stages.push(Stage {
                base: words.first().map(|w| w.to_string()).unwrap_or_default(),
                name,
                instructions: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push((keyword, rest));
        } else {
            assert_eq!(
                keyword, "ARG",
                "{DOCKERFILE}: {keyword} before the first FROM"
            );
        }
    }
    assert!(!stages.is_empty(), "{DOCKERFILE}: no FROM");
    stages
}

fn runtime_stage() -> Stage {
    dockerfile().pop().expect("a Dockerfile has a stage")
}

/// The image's default arguments (CMD).
fn default_cmd() -> Vec<String> {
    runtime_stage()
        .exec_form("CMD")
        .unwrap_or_else(|| panic!("{DOCKERFILE}: the runtime stage has no CMD"))
}

impl Stage {
    /// The arguments of every `keyword` instruction, in order.
    fn all<'a>(&'a self, keyword: &'a str) -> impl Iterator<Item = &'a str> {
        self.instructions
            .iter()
            .filter(move |(k, _)| k == keyword)
            .map(|(_, rest)| rest.as_str())
    }

    /// The last `keyword` instruction (CMD, ENTRYPOINT) in exec (JSON) form.
    fn exec_form(&self, keyword: &str) -> Option<Vec<String>> {
        self.all(keyword).last().map(|rest| {
            serde_json::from_str(rest).unwrap_or_else(|e| {
                panic!("{DOCKERFILE}: `{keyword} {rest}` is not in exec (JSON) form: {e}")
            })
        })
    }

    fn copies(&self) -> Vec<CopyOp> {
        let mut workdir = PathBuf::from("/");
        let mut copies = Vec::new();
        for (keyword, rest) in &self.instructions {
            match keyword.as_str() {
                "WORKDIR" => workdir = workdir.join(rest),
                "COPY" | "ADD" => copies.push(CopyOp::parse(keyword, rest, &workdir)),
                _ => {}
            }
        }
        copies
    }

    /// Whether a repository path is copied into this stage from the build context.
    fn copies_path(&self, path: &Path) -> bool {
        let path = normalize(path);
        self.copies()
            .iter()
            .filter(|c| c.from.is_none())
            .flat_map(|c| c.sources.iter())
            .any(|source| covers(source, &path))
    }
}

impl CopyOp {
    fn parse(keyword: &str, rest: &str, workdir: &Path) -> Self {
        let mut from = None;
        let mut rest = rest.trim();
        while let Some(flag) = rest.strip_prefix("--") {
            let (flag, tail) = flag.split_once(char::is_whitespace).unwrap_or((flag, ""));
            if let Some(stage) = flag.strip_prefix("from=") {
                from = Some(stage.to_string());
            }
            rest = tail.trim_start();
        }
        let mut paths: Vec<String> = if rest.starts_with('[') {
            serde_json::from_str(rest)
                .unwrap_or_else(|e| panic!("{DOCKERFILE}: `{keyword} {rest}`: {e}"))
        } else {
            rest.split_whitespace().map(str::to_string).collect()
        };
        let dest = paths
            .pop()
            .unwrap_or_else(|| panic!("{DOCKERFILE}: `{keyword}` without a destination"));
        CopyOp {
            from,
            sources: paths,
            dest: normalize(&workdir.join(dest)),
            workdir: workdir.to_path_buf(),
        }
    }
}

/// `a/./b/../c` -> `a/c`, lexically (the path need not exist).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn has_wildcard(source: &str) -> bool {
    source.contains(['*', '?', '['])
}

/// Docker's `*` and `?` within one path component.
fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.split_first(), name.split_first()) {
        (None, None) => true,
        (Some((&b'*', rest)), _) => {
            wildcard(rest, name)
                || name
                    .split_first()
                    .is_some_and(|(_, tail)| wildcard(pattern, tail))
        }
        (Some((&b'?', rest)), Some((_, tail))) => wildcard(rest, tail),
        (Some((p, rest)), Some((n, tail))) => p == n && wildcard(rest, tail),
        _ => false,
    }
}

/// Whether the COPY source `source` includes the (normalised) repository path `path`.
fn covers(source: &str, path: &Path) -> bool {
    let source_path = normalize(Path::new(source));
    if has_wildcard(source) {
        let pattern = source_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        path.parent() == source_path.parent()
            && path
                .file_name()
                .is_some_and(|name| wildcard(pattern.as_bytes(), name.to_string_lossy().as_bytes()))
    } else {
        path.starts_with(&source_path)
    }
}

/// The repository files a COPY source names (wildcards in its last component only).
fn expand(source: &str) -> Vec<PathBuf> {
    let path = Path::new(source);
    if !has_wildcard(source) {
        return if path.exists() {
            vec![path.to_path_buf()]
        } else {
            Vec::new()
        };
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    assert!(
        !has_wildcard(&dir.to_string_lossy()),
        "{DOCKERFILE}: COPY {source}: this test handles wildcards in the last component only"
    );
    let pattern = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name().is_some_and(|n| {
                        wildcard(pattern.as_bytes(), n.to_string_lossy().as_bytes())
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// Where a context COPY source lands, relative to WORKDIR, if the repository
/// layout is kept: a directory as itself, files in their directory.
fn layout_dir(source: &str) -> PathBuf {
    let path = Path::new(source);
    if has_wildcard(source) || path.is_file() {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        path.to_path_buf()
    }
}

/// `.dockerignore` entries (plain paths; negations skipped).
fn dockerignored() -> Vec<PathBuf> {
    std::fs::read_to_string(DOCKERIGNORE)
        .unwrap_or_else(|e| panic!("{DOCKERIGNORE}: {e}"))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .map(|l| normalize(Path::new(l.trim_start_matches('/'))))
        .collect()
}

/// Files the crate embeds at compile time (`include_str!`/`include_bytes!` in src/).
fn embedded_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for file in files_below(Path::new("src"), |n| n.ends_with(".rs")) {
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let dir = file.parent().expect("a source file is in a directory");
        for opening in ["include_str!(\"", "include_bytes!(\""] {
            for (start, _) in text.match_indices(opening) {
                let rest = &text[start + opening.len()..];
                if let Some(end) = rest.find('"') {
                    out.push(normalize(&dir.join(&rest[..end])));
                }
            }
        }
    }
    out
}

// ---- tests ----------------------------------------------------------------------

#[test]
fn stack_has_its_services_and_kafka_runs_kraft() {
    let compose = compose();
    let services = services(&compose);
    let missing: Vec<&str> = SERVICES
        .into_iter()
        .filter(|name| !services.contains_key(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "{COMPOSE}: missing services {missing:?}"
    );

    let kafka = service(services, "kafka");
    let roles = env_var(kafka, "KAFKA_PROCESS_ROLES").unwrap_or_default();
    let roles: BTreeSet<&str> = roles.split(',').map(str::trim).collect();
    assert!(
        roles.contains("broker") && roles.contains("controller"),
        "kafka must run in KRaft combined mode: KAFKA_PROCESS_ROLES=broker,controller, got {roles:?}"
    );
    assert!(
        env_var(kafka, "KAFKA_CONTROLLER_QUORUM_VOTERS").is_some(),
        "kafka: KRaft needs KAFKA_CONTROLLER_QUORUM_VOTERS"
    );
    assert_eq!(
        env_var(kafka, "KAFKA_AUTO_CREATE_TOPICS_ENABLE").as_deref(),
        Some("false"),
        "kafka: topic auto-creation stays off (kafka-init creates `vitals` with its settings)"
    );
    assert!(
        !compose.to_string().to_lowercase().contains("zookeeper"),
        "{COMPOSE}: KRaft needs no ZooKeeper, yet a service, image or environment mentions it"
    );
}

#[test]
fn kafka_init_creates_the_vitals_topic_for_seven_days() {
    let compose = compose();
    let services = services(&compose);
    let init = service(services, "kafka-init");
    // An argument list or `sh -c "..."`: look at the words either way.
    let command: Vec<String> = words(&init["command"])
        .iter()
        .flat_map(|w| w.split_whitespace())
        .map(|w| w.trim_matches(['"', '\'']).to_string())
        .collect();
    let has = |needle: &[&str]| {
        command
            .windows(needle.len())
            .any(|w| w.iter().map(String::as_str).eq(needle.iter().copied()))
    };
    assert!(
        command.iter().any(|w| w.ends_with("kafka-topics.sh")),
        "kafka-init: runs kafka-topics.sh, got {command:?}"
    );
    assert!(
        has(&["--create"]) && has(&["--if-not-exists"]),
        "kafka-init: `--create --if-not-exists` (it runs on every `up`), got {command:?}"
    );
    assert!(
        has(&["--topic", "vitals"]),
        "kafka-init: creates topic `vitals`, got {command:?}"
    );
    let retention = format!("retention.ms={RETENTION_MS}");
    assert!(
        command.contains(&retention),
        "kafka-init: the vitals topic keeps 7 days ({retention}), got {command:?}"
    );

    let hours: u64 = env_var(service(services, "kafka"), "KAFKA_LOG_RETENTION_HOURS")
        .and_then(|h| h.parse().ok())
        .expect("kafka: KAFKA_LOG_RETENTION_HOURS is a number of hours");
    assert_eq!(
        hours * 3_600_000,
        RETENTION_MS,
        "kafka: the broker default retention and the vitals topic's agree (7 days)"
    );
    let simulator = vitalflow_args(service(services, "simulator"));
    assert_eq!(
        flag_value(&simulator, "--topic"),
        Some("vitals"),
        "simulator: publishes to the topic kafka-init creates"
    );
}

#[test]
fn host_paths_and_build_contexts_exist() {
    let compose = compose();
    let mut failures = Vec::new();
    for (name, service) in services(&compose) {
        for mount in mounts(service) {
            if let Mount::Bind { source, .. } = mount
                && source.starts_with("./")
                && !Path::new(&source).exists()
            {
                failures.push(format!("{name}: bind mount {source} does not exist"));
            }
        }
        let build = &service["build"];
        if build.is_null() {
            continue;
        }
        let context = build
            .as_str()
            .or_else(|| build["context"].as_str())
            .unwrap_or(".");
        let dockerfile = build["dockerfile"].as_str().unwrap_or(DOCKERFILE);
        if !Path::new(context).is_dir() {
            failures.push(format!(
                "{name}: build context {context} is not a directory"
            ));
        } else if !Path::new(context).join(dockerfile).is_file() {
            failures.push(format!(
                "{name}: {dockerfile} not found in build context {context}"
            ));
        }
    }
    assert!(failures.is_empty(), "{COMPOSE}:\n{}", failures.join("\n"));
}

#[test]
fn named_volumes_are_declared() {
    let compose = compose();
    let declared: BTreeSet<&str> = compose["volumes"]
        .as_object()
        .map(|volumes| volumes.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let services = services(&compose);
    let mut failures = Vec::new();
    for (name, service) in services {
        for mount in mounts(service) {
            if let Mount::Named { name: volume, .. } = mount
                && !declared.contains(volume.as_str())
            {
                failures.push(format!(
                    "{name}: volume `{volume}` is not declared under the top-level `volumes:`"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{COMPOSE}:\n{}", failures.join("\n"));

    // The datasets outlive the container: the data dir is a named volume.
    let pipeline = service(services, "pipeline");
    let data_dir =
        env_var(pipeline, "VITALFLOW_DATA_DIR").expect("pipeline: sets VITALFLOW_DATA_DIR");
    assert!(
        mounts(pipeline)
            .iter()
            .any(|m| matches!(m, Mount::Named { target, .. } if *target == data_dir)),
        "pipeline: VITALFLOW_DATA_DIR={data_dir} is not a named volume"
    );
}

#[test]
fn healthchecks_and_dependencies_are_consistent() {
    let compose = compose();
    let services = services(&compose);
    let mut failures = Vec::new();
    for (name, service) in services {
        let healthcheck = &service["healthcheck"];
        if !healthcheck.is_null()
            && healthcheck["disable"].as_bool() != Some(true)
            && words(&healthcheck["test"]).is_empty()
        {
            failures.push(format!("{name}: healthcheck without a `test`"));
        }
        for (dependency, condition) in depends_on(service) {
            let Some(target) = services.get(&dependency) else {
                failures.push(format!("{name}: depends_on unknown service `{dependency}`"));
                continue;
            };
            let restart = scalar(&target["restart"]).unwrap_or_else(|| "no".into());
            match condition.as_str() {
                "service_healthy" if words(&target["healthcheck"]["test"]).is_empty() => {
                    failures.push(format!(
                        "{name}: waits for `{dependency}` to be healthy, but it has no healthcheck test"
                    ))
                }
                "service_completed_successfully" if restart != "no" => failures.push(format!(
                    "{name}: waits for `{dependency}` to complete, but it restarts (restart: {restart})"
                )),
                _ => {}
            }
        }
    }
    assert!(failures.is_empty(), "{COMPOSE}:\n{}", failures.join("\n"));
}

#[test]
fn vitalflow_command_lines_are_accepted_by_the_cli() {
    let compose = compose();
    let runtime = runtime_stage();
    let mut lines = vec![("Dockerfile CMD".to_string(), default_cmd())];
    for (name, service) in services(&compose) {
        if is_vitalflow(service) {
            assert!(
                service["entrypoint"].is_null(),
                "{name}: keeps the image's `vitalflow` entrypoint"
            );
            lines.push((format!("service {name}"), vitalflow_args(service)));
        }
    }
    assert!(
        lines.len() > 1,
        "{COMPOSE}: no service is built from the {DOCKERFILE}"
    );

    let subcommands: BTreeSet<String> = Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    let mut failures = Vec::new();
    for (origin, args) in &lines {
        let Some(subcommand) = args.first() else {
            failures.push(format!("{origin}: empty command"));
            continue;
        };
        if !subcommands.contains(subcommand) {
            failures.push(format!(
                "{origin}: `{subcommand}` is not a vitalflow subcommand ({subcommands:?})"
            ));
            continue;
        }
        // In-process, exactly as the container's `vitalflow ARGS` parses them
        // (this also catches a missing required argument).
        if let Err(e) =
            Cli::try_parse_from(std::iter::once("vitalflow").chain(args.iter().map(String::as_str)))
        {
            failures.push(format!("{origin}: {args:?} rejected:\n{e}"));
        }
        // The real binary: clap fails on an unknown flag or a bad value as it
        // reaches it, before the trailing --help (which then exits 0).
        let output = Command::new(binary())
            .args(args)
            .arg("--help")
            .output()
            .expect("run the vitalflow binary");
        if !output.status.success() {
            failures.push(format!(
                "{origin}: `vitalflow {} --help` exited with {}:\n{}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let help = String::from_utf8_lossy(&output.stdout);
        for flag in args.iter().filter(|a| a.starts_with("--")) {
            let flag = flag.split('=').next().unwrap_or(flag);
            let documented = help
                .split_whitespace()
                .map(|w| w.trim_end_matches(','))
                .any(|w| w == flag || w.starts_with(&format!("{flag}=")));
            if !documented {
                failures.push(format!(
                    "{origin}: `{flag}` is not in `vitalflow {subcommand} --help`"
                ));
            }
        }
        for path in path_args(args) {
            if !Path::new(path).exists() {
                failures.push(format!("{origin}: {path} does not exist in the repository"));
            } else if !runtime.copies_path(Path::new(path)) {
                failures.push(format!("{origin}: {path} is not copied into the image"));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn published_ports_match_the_listen_addresses() {
    let compose = compose();
    let services = services(&compose);
    let mut failures = Vec::new();
    let mut host_ports = BTreeSet::new();
    for (name, service) in services {
        let published = published_ports(service);
        for host in published.iter().filter_map(|&(host, _)| host) {
            if !host_ports.insert(host) {
                failures.push(format!("{name}: host port {host} is published twice"));
            }
        }
        if !is_vitalflow(service) {
            continue;
        }
        let Some(addr) = listen_addr(&vitalflow_args(service)) else {
            continue;
        };
        if !addr.ip().is_unspecified() {
            failures.push(format!(
                "{name}: --addr {addr} is unreachable from other containers: listen on 0.0.0.0"
            ));
        }
        for &(_, container) in &published {
            if container != addr.port() {
                failures.push(format!(
                    "{name}: publishes container port {container}, but listens on --addr {addr}"
                ));
            }
        }
        let healthcheck = words(&service["healthcheck"]["test"]).join(" ");
        if !healthcheck.is_empty() && !healthcheck.contains(&format!(":{}/", addr.port())) {
            failures.push(format!(
                "{name}: the healthcheck `{healthcheck}` does not probe port {}",
                addr.port()
            ));
        }
    }
    assert!(failures.is_empty(), "{COMPOSE}:\n{}", failures.join("\n"));

    let pipeline = service(services, "pipeline");
    let addr = listen_addr(&vitalflow_args(pipeline)).expect("pipeline: --addr in its command");
    assert!(
        published_ports(pipeline)
            .iter()
            .any(|&(_, container)| container == addr.port()),
        "pipeline: publishes its --addr port {} (dashboard and API)",
        addr.port()
    );
}

#[test]
fn prometheus_targets_are_compose_services() {
    let compose = compose();
    let services = services(&compose);
    let text = std::fs::read_to_string(PROMETHEUS).unwrap_or_else(|e| panic!("{PROMETHEUS}: {e}"));
    // tests/it/prometheus.rs rewrites these two strings to scrape its own server.
    for contract in ["vitalflow:8080", "scrape_interval: 5s"] {
        assert!(
            text.contains(contract),
            "{PROMETHEUS}: must keep `{contract}`"
        );
    }

    let config = load_yaml(PROMETHEUS);
    let targets: Vec<String> = config["scrape_configs"]
        .as_array()
        .unwrap_or_else(|| panic!("{PROMETHEUS}: no scrape_configs"))
        .iter()
        .flat_map(|job| {
            job["static_configs"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|static_config| words(&static_config["targets"]))
        .collect();
    assert!(
        targets.iter().any(|t| t == "vitalflow:8080"),
        "{PROMETHEUS}: scrapes vitalflow:8080, got {targets:?}"
    );
    for target in &targets {
        let (host, port) = target
            .rsplit_once(':')
            .unwrap_or_else(|| panic!("{PROMETHEUS}: target {target} has no port"));
        let port: u16 = port
            .parse()
            .unwrap_or_else(|e| panic!("{PROMETHEUS}: target {target}: {e}"));
        let matching: Vec<&String> = services
            .iter()
            .filter(|(name, service)| hostnames(name, service).iter().any(|h| h == host))
            .map(|(name, _)| name)
            .collect();
        let [name] = matching.as_slice() else {
            panic!(
                "{PROMETHEUS}: target {target}: `{host}` must be the name or network alias of exactly one compose service, found {matching:?}"
            );
        };
        let ports = listen_ports(service(services, name));
        assert!(
            ports.contains(&port),
            "{PROMETHEUS}: target {target}: service {name} listens on {ports:?}, not {port}"
        );
    }

    let prometheus = service(services, "prometheus");
    assert!(
        mounts(prometheus).iter().any(|m| matches!(
            m,
            Mount::Bind { source, target }
                if normalize(Path::new(source)) == Path::new(PROMETHEUS)
                    && target == "/etc/prometheus/prometheus.yml"
        )),
        "prometheus: mounts ./{PROMETHEUS} at /etc/prometheus/prometheus.yml"
    );
}

#[test]
fn every_server_and_the_scraper_share_the_tokens_that_token_init_creates() {
    let compose = compose();
    let services = services(&compose);
    let init = service(services, "token-init");
    let init_args = vitalflow_args(init);
    assert_eq!(
        init_args[..2],
        ["token".to_string(), "create".to_string()],
        "{init_args:?}"
    );
    let output = flag_value(&init_args, "--output").expect("token-init writes the token to a file");
    let tokens = env_var(init, "VITALFLOW_TOKENS").expect("token-init names the tokens file");
    let secrets_on = |service: &Value| {
        mounts(service).into_iter().find_map(|m| match m {
            Mount::Named { name, target } if name == "vitalflow-secrets" => Some(target),
            _ => None,
        })
    };
    let init_dir = secrets_on(init).expect("token-init mounts vitalflow-secrets");
    assert!(tokens.starts_with(&init_dir) && output.starts_with(&init_dir));
    let mut failures = Vec::new();
    for (name, service) in services {
        let args = vitalflow_args(service);
        if !is_vitalflow(service) || !matches!(args[0].as_str(), "up" | "serve") {
            continue;
        }
        if env_var(service, "VITALFLOW_TOKENS").as_deref() != Some(tokens.as_str()) {
            failures.push(format!("{name}: VITALFLOW_TOKENS is not {tokens}"));
        }
        if secrets_on(service).as_deref() != Some(init_dir.as_str()) {
            failures.push(format!(
                "{name}: does not mount vitalflow-secrets at {init_dir}"
            ));
        }
        if !depends_on(service).iter().any(|(on, condition)| {
            on == "token-init" && condition == "service_completed_successfully"
        }) {
            failures.push(format!("{name}: does not wait for token-init"));
        }
    }
    // Prometheus reads the token where the scrape config says.
    let prometheus = service(services, "prometheus");
    let scraper_dir = secrets_on(prometheus).expect("prometheus mounts vitalflow-secrets");
    let file = output.replacen(&init_dir, &scraper_dir, 1);
    let config = load_yaml(PROMETHEUS);
    for job in config["scrape_configs"].as_array().unwrap() {
        if job["authorization"]["credentials_file"].as_str() != Some(file.as_str()) {
            failures.push(format!(
                "{PROMETHEUS}: job {} does not read {file}",
                job["job_name"]
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn dockerfile_copies_existing_files_in_the_repository_layout() {
    let stages = dockerfile();
    let ignored = dockerignored();
    for heavy in ["target", ".git"] {
        assert!(
            ignored.iter().any(|p| p == Path::new(heavy)),
            "{DOCKERIGNORE}: keeps {heavy}/ out of the build context"
        );
    }
    let stage_names: BTreeSet<&str> = stages.iter().filter_map(|s| s.name.as_deref()).collect();
    let mut failures = Vec::new();
    for stage in &stages {
        for copy in stage.copies() {
            if let Some(from) = &copy.from {
                if !stage_names.contains(from.as_str()) {
                    failures.push(format!("COPY --from={from}: no stage named `{from}`"));
                }
                continue;
            }
            for source in &copy.sources {
                if expand(source).is_empty() {
                    failures.push(format!("COPY {source}: no such file in the repository"));
                    continue;
                }
                let normalized = normalize(Path::new(source));
                if let Some(pattern) = ignored.iter().find(|p| normalized.starts_with(p)) {
                    failures.push(format!(
                        "COPY {source}: excluded from the build context by {DOCKERIGNORE} ({})",
                        pattern.display()
                    ));
                }
                // The repository layout under WORKDIR, so relative paths in
                // pipelines (../sql/...) and the default model path resolve.
                let kept = normalize(&copy.workdir.join(layout_dir(source)));
                let as_file = normalize(&copy.workdir.join(source));
                if copy.dest != kept && copy.dest != as_file {
                    failures.push(format!(
                        "COPY {source} -> {}: expected {} (the repository layout under WORKDIR {})",
                        copy.dest.display(),
                        kept.display(),
                        copy.workdir.display()
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{DOCKERFILE}:\n{}",
        failures.join("\n")
    );
}

#[test]
fn image_builds_what_cargo_needs_and_runs_vitalflow() {
    let stages = dockerfile();
    let [builder, .., runtime] = stages.as_slice() else {
        panic!("{DOCKERFILE}: multi-stage (a build stage and a runtime stage)");
    };

    let manifest = std::fs::read_to_string("Cargo.toml").expect("read Cargo.toml");
    let rust_version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version"))
        .and_then(|v| v.split('"').nth(1))
        .expect("Cargo.toml: rust-version");
    assert!(
        builder.base.starts_with(&format!("rust:{rust_version}")),
        "{DOCKERFILE}: builds with Rust {rust_version} (Cargo.toml's rust-version), not {}",
        builder.base
    );
    assert!(
        builder.all("RUN").any(|r| r.contains("cargo build")
            && r.contains("--release")
            && r.contains("--locked")),
        "{DOCKERFILE}: the build stage runs `cargo build --release --locked`"
    );
    let mut needed: Vec<PathBuf> = ["Cargo.toml", "Cargo.lock", "src/main.rs", "src/lib.rs"]
        .into_iter()
        .map(PathBuf::from)
        .collect();
    if manifest.contains("[[bench]]") {
        // Declared targets must exist for cargo to load the manifest at all.
        needed.extend(files_below(Path::new("benches"), |n| n.ends_with(".rs")));
    }
    needed.extend(embedded_files());
    if let Ok(script) = std::fs::read_to_string("build.rs") {
        // Without it cargo builds the binary anyway, silently linked
        // otherwise; so too without a file it reads (it names each one
        // `rerun-if-changed`), such as the linker's symbol order.
        needed.push(PathBuf::from("build.rs"));
        needed.extend(
            script
                .split("cargo:rerun-if-changed=")
                .skip(1)
                .filter_map(|rest| rest.split('"').next())
                .filter(|path| *path != "build.rs")
                .map(PathBuf::from),
        );
    }
    let missing: Vec<&PathBuf> = needed.iter().filter(|p| !builder.copies_path(p)).collect();
    assert!(
        missing.is_empty(),
        "{DOCKERFILE}: the build stage does not COPY {missing:?}, which cargo needs"
    );

    let builder_name = builder
        .name
        .as_deref()
        .unwrap_or_else(|| panic!("{DOCKERFILE}: name the build stage (FROM ... AS builder)"));
    assert!(
        runtime
            .copies()
            .iter()
            .any(|c| c.from.as_deref() == Some(builder_name)
                && c.dest == Path::new("/usr/local/bin/vitalflow")),
        "{DOCKERFILE}: the runtime stage copies the binary to /usr/local/bin/vitalflow"
    );
    assert_eq!(
        runtime.exec_form("ENTRYPOINT"),
        Some(vec!["vitalflow".to_string()]),
        "{DOCKERFILE}: ENTRYPOINT [\"vitalflow\"] (compose commands are its arguments)"
    );
    let user = runtime
        .all("USER")
        .last()
        .unwrap_or_else(|| panic!("{DOCKERFILE}: the runtime stage sets a non-root USER"));
    let user = user.split(':').next().unwrap_or(user);
    assert!(
        user != "root" && user != "0",
        "{DOCKERFILE}: runs as root (USER {user})"
    );
    let installs = runtime.all("RUN").collect::<Vec<_>>().join(" ");
    for package in ["ca-certificates", "curl"] {
        assert!(
            installs.split_whitespace().any(|w| w == package),
            "{DOCKERFILE}: the runtime installs {package} (compose healthchecks use curl)"
        );
    }
    let addr = listen_addr(&default_cmd()).expect("Dockerfile CMD: --addr");
    let port = addr.port().to_string();
    assert!(
        runtime
            .all("EXPOSE")
            .flat_map(str::split_whitespace)
            .any(|p| p.split('/').next() == Some(port.as_str())),
        "{DOCKERFILE}: EXPOSE {port}, the default CMD's port"
    );
}

/// `--profile s3` and `--profile hdfs`: each adds its store and a pipeline
/// writing the shipped Kafka pipeline's datasets there, through a spool on
/// a volume; the real CLI validates the pipeline with that environment.
#[test]
fn storage_profiles_write_the_shipped_pipeline_to_minio_and_hdfs() {
    let compose = compose();
    let services = services(&compose);
    let profile = |name: &str| -> Vec<String> { words(&service(services, name)["profiles"]) };
    for (name, wanted) in [
        ("minio", "s3"),
        ("minio-init", "s3"),
        ("pipeline-s3", "s3"),
        ("namenode", "hdfs"),
        ("datanode", "hdfs"),
        ("hdfs-init", "hdfs"),
        ("pipeline-hdfs", "hdfs"),
    ] {
        assert_eq!(
            profile(name),
            [wanted],
            "{name}: only in the `{wanted}` profile"
        );
    }
    for name in ["kafka", "pipeline", "api", "prometheus"] {
        assert!(profile(name).is_empty(), "{name} runs without a profile");
    }

    let s3 = service(services, "pipeline-s3");
    let lake = env_var(s3, "VITALFLOW_DATA_DIR").unwrap();
    let bucket = lake.strip_prefix("s3://").expect("an s3:// data dir");
    let init = words(&service(services, "minio-init")["command"]).join(" ");
    assert!(
        init.contains(&format!("mc mb --ignore-existing lake/{bucket}")),
        "{init}"
    );
    assert_eq!(
        env_var(s3, "AWS_ENDPOINT_URL").as_deref(),
        Some("http://minio:9000")
    );
    let minio = service(services, "minio");
    assert_eq!(
        env_var(s3, "AWS_ACCESS_KEY_ID"),
        env_var(minio, "MINIO_ROOT_USER")
    );
    assert_eq!(
        env_var(s3, "AWS_SECRET_ACCESS_KEY"),
        env_var(minio, "MINIO_ROOT_PASSWORD")
    );

    let hdfs = service(services, "pipeline-hdfs");
    let lake_hdfs = env_var(hdfs, "VITALFLOW_DATA_DIR").unwrap();
    let hadoop = std::fs::read_to_string("config/hadoop.env").unwrap();
    let rpc = hadoop
        .lines()
        .find_map(|l| l.strip_prefix("HDFS-SITE.XML_dfs.namenode.rpc-address="))
        .expect("config/hadoop.env sets the namenode's RPC address");
    assert!(
        lake_hdfs.starts_with(&format!("hdfs://{rpc}/")),
        "{lake_hdfs} vs {rpc}"
    );
    let dir = lake_hdfs.trim_start_matches(&format!("hdfs://{rpc}"));
    let mkdir = words(&service(services, "hdfs-init")["command"]).join(" ");
    assert!(mkdir.contains(&format!("-mkdir -p {dir}")), "{mkdir}");
    for name in ["namenode", "datanode", "hdfs-init"] {
        assert_eq!(
            service(services, name)["env_file"].as_str(),
            Some("config/hadoop.env"),
            "{name}"
        );
    }

    for (name, service) in [("pipeline-s3", s3), ("pipeline-hdfs", hdfs)] {
        // The spool survives restarts: it is on a named volume.
        let spool = env_var(service, "VITALFLOW_SPOOL_DIR").unwrap();
        let on_volume = words(&service["volumes"]).iter().any(|v| {
            v.split(':')
                .nth(1)
                .is_some_and(|target| spool.starts_with(target))
        });
        assert!(on_volume, "{name}: {spool} is not on a volume");
        // Its own consumer group: it reads the whole stream beside `pipeline`.
        let group = env_var(service, "KAFKA_GROUP").unwrap();
        assert_ne!(group, "vitals_consumer_group", "{name}");
        // The shipped pipeline validates with this environment (no connection is made).
        let args = vitalflow_args(service);
        let pipeline = flag_value(&args, "--pipeline").unwrap();
        let output = Command::new(binary())
            .arg("validate")
            .arg(pipeline)
            .envs(environment(service))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
