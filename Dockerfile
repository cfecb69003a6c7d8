# stowage container image.
#   docker build -t stowage .
#   docker run -d -v /var/run/docker.sock:/var/run/docker.sock -v stowage-backups:/backups stowage
# Build stage: the crate, compiled in release mode. Runtime stage: Debian slim plus the binary.
# The runtime stage is the same as tests/images/stowage.Dockerfile, which the test suite builds
# on its own locally built Debian base.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src src
COPY engines engines
COPY config config
RUN cargo build --release --locked

FROM debian:bookworm-slim AS runtime
# sqlite3: SQLite targets without it are dumped in a helper container from this image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates sqlite3 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/stowage /usr/local/bin/stowage
ENV STOWAGE_BACKUP_DIR=/backups
VOLUME /backups
# /metrics, /healthz, /readyz and the API of `stowage run`.
EXPOSE 9847
ENTRYPOINT ["stowage"]
CMD ["run"]
