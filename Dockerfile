# The Polaris server: one image for every role (polaris-server serve --roles api|relay|projector|worker).
# Build: docker build -t polaris-server .
# The dashboard's static assets, served by the API role at /.
FROM node:20-bookworm-slim AS dashboard
WORKDIR /dashboard
COPY dashboard/package.json dashboard/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY dashboard ./
RUN npm run build

FROM rust:1.95-bookworm AS build
# rdkafka builds its bundled librdkafka with CMake; the Temporal SDK's protos use the vendored protox (no protoc).
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml clippy.toml ./
COPY crates crates
COPY examples examples
COPY migrations migrations
COPY schemas schemas
RUN cargo build --release --locked -p polaris-server --bin polaris-server \
    && cp target/release/polaris-server /polaris-server

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin polaris
COPY --from=build /polaris-server /usr/local/bin/polaris-server
COPY --from=dashboard /dashboard/dist /usr/share/polaris/dashboard
USER 10001
ENV POLARIS_LISTEN=0.0.0.0:8080 POLARIS_DASHBOARD_DIR=/usr/share/polaris/dashboard
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/polaris-server"]
CMD ["serve", "--roles", "api,relay,projector,worker"]
