# Causeway's collector (and probectl). Build from the repository's root:
#   docker build -f docker/collector.Dockerfile -t causeway-collector .
# Not built by CI (docker/README.md).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin causeway-collector --bin probectl

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
# The database; `docker compose exec collector causeway-collector token add <server>` uses it too.
ENV CAUSEWAY_DB=/var/lib/causeway/causeway.db \
    CAUSEWAY_LISTEN=0.0.0.0:8750
VOLUME ["/var/lib/causeway"]
EXPOSE 8750
ENTRYPOINT ["/usr/local/bin/causeway-collector"]
CMD ["serve"]
