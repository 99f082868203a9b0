# Causeway's probe. Build from the repository's root:
#   docker build -f docker/probe.Dockerfile -t causeway-probe .
# docker/compose.yaml runs it with the host's network and processes and the four capabilities
# it needs; see there. Not built by CI (docker/README.md).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin causeway-probe

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# The spool and state.json live in /var/lib/causeway-probe: mount a volume there. Writable
# by the image's user and by group root, for compose.yaml's uid 0, which has no
# CAP_DAC_OVERRIDE. Use a volume with one of the two only.
RUN useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin causeway-probe \
 && install -d -m 0770 -o causeway-probe -g root /var/lib/causeway-probe
COPY --from=build /src/target/release/causeway-probe /usr/local/bin/causeway-probe
# Unprivileged by default (check-config and once need nothing). Docker gives no ambient
# capabilities, so a non-root process cannot use cap_add: compose.yaml runs the service as
# uid 0 with every capability dropped but the four the probe uses.
USER causeway-probe
VOLUME ["/var/lib/causeway-probe"]
ENTRYPOINT ["/usr/local/bin/causeway-probe"]
CMD ["run", "--config", "/etc/causeway/probe.toml"]
