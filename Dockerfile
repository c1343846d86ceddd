# infra-operator image: a static-TLS (rustls) Rust binary on a distroless, non-root base.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY policies ./policies
COPY benches ./benches
COPY tests/stack ./tests/stack
RUN cargo build --release --locked --bin infra-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/infra-operator /usr/local/bin/infra-operator
USER 65532:65532
EXPOSE 8443 8080
ENTRYPOINT ["/usr/local/bin/infra-operator"]
CMD ["run", "--cert-dir=/etc/infra-operator/certs"]
