# syntax=docker/dockerfile:1
# Multi-stage build: compile with the full toolchain, run on a slim image.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin giftdrop \
    && cp target/release/giftdrop /giftdrop

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /app giftdrop \
    && mkdir -p /app/mail && chown giftdrop /app/mail
WORKDIR /app
COPY --from=build /giftdrop /usr/local/bin/giftdrop
USER giftdrop
ENV HTTP_ADDR=0.0.0.0:8000 MAIL_DIR=/app/mail
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD curl -fsS http://127.0.0.1:8000/health/live || exit 1
ENTRYPOINT ["giftdrop"]
CMD ["all"]
