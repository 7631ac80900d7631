# Build stage: compile the release binary.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY tests ./tests
RUN cargo build --release --locked --bin freshet

# Runtime stage: just the binary.
FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/freshet freshet \
 && mkdir -p /var/lib/freshet \
 && chown freshet /var/lib/freshet
COPY --from=build /src/target/release/freshet /usr/local/bin/freshet
USER freshet
VOLUME /var/lib/freshet
EXPOSE 5433
# No authentication yet: --allow-remote lets the host reach the container;
# publish the port on loopback only (see docker-compose.yml).
ENTRYPOINT ["freshet", "serve", "--data-dir", "/var/lib/freshet", "--listen", "0.0.0.0:5433", "--allow-remote"]
