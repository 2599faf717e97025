# syntax=docker/dockerfile:1
# vitalflow: one image for every subcommand (up, serve, simulate, ...).
#
#   docker build -t vitalflow .
#   docker run --rm -p 8080:8080 vitalflow        # `up` on the embedded default
#
# tests/it/compose.rs checks that everything COPYed here exists.

# ---- build ------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
# rdkafka builds its bundled librdkafka against the system OpenSSL.
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# Link options of the binary (packed relocations, and the order of the
# functions a query runs; see build.rs).
COPY build.rs ./
COPY link/ link/
# Declared in Cargo.toml ([[bench]]): cargo needs it to load the manifest.
COPY benches/ benches/
# The workspace's other member, the benchmark harness the binary links
# (`vitalflow bench`); it embeds sql/*.sql with include_str!.
COPY crates/ crates/
COPY sql/ sql/
COPY src/ src/
# Caches survive between builds; the binary is copied out of the cached target.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin vitalflow \
 && cp target/release/vitalflow /usr/local/bin/vitalflow

# ---- runtime ----------------------------------------------------------------
FROM debian:bookworm-slim
# curl: compose healthchecks; libssl3: librdkafka links OpenSSL dynamically.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl libssl3 \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system vitalflow \
 && useradd --system --gid vitalflow --home-dir /app --shell /usr/sbin/nologin vitalflow \
 && mkdir -p /data /secrets \
 && chown vitalflow:vitalflow /data /secrets

COPY --from=builder /usr/local/bin/vitalflow /usr/local/bin/vitalflow

# The repository layout under /app, so the relative paths in pipelines
# (e.g. ../sql/vitals_scored.sql) and the default model path resolve.
WORKDIR /app
COPY pipelines/ pipelines/
COPY sql/ sql/
COPY models/*.onnx models/*.json models/
COPY config/ config/

# Datasets go to /data (a volume in docker-compose.yml), not into /app; so
# does the audit trail. API tokens (hashes) live in /secrets: a first start
# without a tokens file creates one with an admin token and prints a login
# URL once (`docker logs`).
ENV VITALFLOW_DATA_DIR=/data \
    VITALFLOW_AUDIT_DIR=/data/audit \
    VITALFLOW_TOKENS=/secrets/tokens.yaml
USER vitalflow
EXPOSE 8080
# No HEALTHCHECK here: the simulator serves no HTTP; compose sets one per service.
ENTRYPOINT ["vitalflow"]
CMD ["up", "--addr", "0.0.0.0:8080"]
