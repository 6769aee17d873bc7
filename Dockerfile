# The hub and the simulated departmental systems, for docker-compose.yml.
# The embedded broker (hub-broker) is not built: in this image the hub talks to Kafka.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake zlib1g-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p hub -p hub-simulator

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /src/target/release/hub /src/target/release/hub-sim /usr/local/bin/
COPY config /app/config
ENV HUB__DATA_DIR=/var/lib/hub
VOLUME /var/lib/hub
EXPOSE 8080
CMD ["hub", "run", "--config", "/app/config/docker-compose.toml", "--listen", "0.0.0.0:8080"]
