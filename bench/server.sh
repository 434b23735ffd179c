# Sourced by bench/run.sh and bench/peer.sh: starts the release server on
# a fresh database, as every benchmark does.
#
# start_giftdrop REDIS_URL starts it on 127.0.0.1:8100 with the bench
# settings, sets `server` to its pid and returns once it is ready. SERVER,
# SERVER_LOG and PG_OPTIONS are described in bench/run.sh.

# Postgres connection options of the server (and, for `market`, of pgbench,
# which is compared over the same kind of connection): by default TCP on
# loopback with TLS negotiated (sslmode=prefer); PG_OPTIONS='?sslmode=disable'
# skips TLS, as in docker-compose, whose Postgres has none.
pg_server=postgres://postgres@127.0.0.1:5432
pg_options=${PG_OPTIONS:-}

start_giftdrop() {
  redis-cli --scan --pattern 'bench:*' | xargs -r redis-cli del >/dev/null
  # Every run starts from an empty database, as pgbench starts from a fresh
  # `pgbench -i`: rows left by earlier runs would make later runs work
  # against ever larger tables (the server creates and migrates it).
  psql -q -h 127.0.0.1 -U postgres -d postgres -c 'DROP DATABASE IF EXISTS giftdrop_bench WITH (FORCE)'
  REDIS_URL=$1 DATABASE_URL=$pg_server/giftdrop_bench$pg_options HTTP_ADDR=127.0.0.1:8100 \
    REDIS_NAMESPACE=bench: JWT_SECRET=bench-secret-0123456789abcdef \
    ADMIN_EMAIL=admin@bench.local ADMIN_PASSWORD=admin-password-1 MAIL_DIR=/tmp/benchmail \
    RUST_LOG=${SERVER_LOG:-warn} "${SERVER:-./target/release/giftdrop}" all >/tmp/giftdrop-bench-server.log 2>&1 &
  server=$!
  for _ in $(seq 1 150); do
    curl -sf http://127.0.0.1:8100/health/ready >/dev/null && return 0
    sleep 0.2
  done
  echo "the server did not become ready; see /tmp/giftdrop-bench-server.log" >&2
  return 1
}
