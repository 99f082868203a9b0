# Causeway's collector (and probectl). Build from the repository's root:
#   docker build -f docker/collector.Dockerfile -t causeway-collector .
# scripts/test-containers builds it and runs docker/compose.yaml in CI.

# The same build stage as probe.Dockerfile (all three programs): building both images
# compiles once, the second build reusing this stage's layers.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin causeway-collector --bin probectl --bin causeway-probe

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin causeway-collector \
 && install -d -m 0700 -o causeway-collector -g causeway-collector /var/lib/causeway
COPY --from=build /src/target/release/causeway-collector /src/target/release/probectl \
    /usr/local/bin/
USER causeway-collector
# The database; `docker compose exec -T collector causeway-collector token add <server>` uses
# it too.
ENV CAUSEWAY_DB=/var/lib/causeway/causeway.db \
    CAUSEWAY_LISTEN=0.0.0.0:8750
VOLUME ["/var/lib/causeway"]
EXPOSE 8750
# Healthy once /healthz answers (the database is open); compose's probe waits for it.
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/causeway-collector", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/causeway-collector"]
CMD ["serve"]
