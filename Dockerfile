# Diglett: one image with the gateway, the worker and the command-line client.
# The model weights are compiled into the binaries (include_bytes!), so nothing is downloaded at
# run time. Build: docker build -t diglett .   (the compose file builds it for you)

# --- build stage -----------------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p diglett-gateway -p diglett-worker -p diglett-client --bins

# --- run stage -------------------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/diglett --create-home diglett
COPY --from=build /src/target/release/diglett-gateway /src/target/release/diglett-worker /src/target/release/diglett-client /usr/local/bin/
USER 10001:10001
WORKDIR /var/lib/diglett
# Embedded mode's profile store, if the gateway runs without Redis.
ENV DIGLETT_DATA_DIR=/var/lib/diglett/data
EXPOSE 8080
CMD ["diglett-gateway"]
