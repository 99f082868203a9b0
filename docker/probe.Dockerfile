# Causeway's probe. Build from the repository's root:
#   docker build -f docker/probe.Dockerfile -t causeway-probe .
# docker/compose.yaml runs it with the host's network and processes and the four capabilities
# it needs; see there. scripts/test-containers builds it and runs the compose file in CI.

# The same build stage as collector.Dockerfile (all three programs): building both images
# compiles once, the second build reusing this stage's layers.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin causeway-collector --bin probectl --bin causeway-probe

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# The spool and state.json live in /var/lib/causeway-probe: mount a volume there. Writable
# by the image's user and by group root, for compose.yaml's uid 0, which has no
# CAP_DAC_OVERRIDE.
RUN useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin causeway-probe \
 && install -d -m 0770 -o causeway-probe -g root /var/lib/causeway-probe
COPY --from=build /src/target/release/causeway-probe /usr/local/bin/causeway-probe
# Unprivileged by default (check-config and once need nothing). For `run`, compose.yaml gives
# the four capabilities the probe uses; see there for why the process is uid 0.
USER causeway-probe
VOLUME ["/var/lib/causeway-probe"]
ENTRYPOINT ["/usr/local/bin/causeway-probe"]
CMD ["run", "--config", "/etc/causeway/probe.toml"]
