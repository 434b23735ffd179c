#!/usr/bin/env bash
# Runs one benchmark scenario against a fresh release server.
#
#   bench/run.sh http --connections 64 --seconds 10 --rounds 2
#   bench/run.sh ws-idle --subscriptions 10000 [--distinct]
#   bench/run.sh fanout --subscribers 10000 --messages 5
#   bench/run.sh wallet --connections 32 --seconds 10 --rounds 2
#
# `wallet` gives the server its own Redis (port 6391), measures
# `me { wallet { balance } }` (one read of the wallet row in Postgres)
# against `me { id }`, then stops that Redis and measures again.
#
#   bench/run.sh market --buyers 32 --tills 16 --seconds 20
#   bench/run.sh giveaway --participants 2000 --prizes 100 --concurrency 64
#
# `market` raises the server's rate limits (purchaseCard is 100 per user per
# hour by default) and measures purchaseCard and redeemCard through the API
# against pgbench; it needs pgbench too.
#
# The ledger scenario needs only Postgres (and pgbench), not the server:
#
#   ./target/release/giftdrop-bench ledger --clients 32 --seconds 20 --wallets 1000
#
# BENCH_WRAP prefixes the load generator of the fanout, ws-idle and other
# plain scenarios, e.g. BENCH_WRAP="chrt -b 0" to run it as SCHED_BATCH
# (a diagnostic: its wake-ups then do not preempt the server).
#
# SERVER runs another build of the server against the same load generator
# (an A/B comparison in one session), e.g. SERVER=/tmp/giftdrop-before.
# SERVER_LOG is the server's RUST_LOG (default warn; its log goes to
# /tmp/giftdrop-bench-server.log), e.g. SERVER_LOG=warn,giftdrop_domain::pubsub=debug
# to see live subscribers resynced.
#
# Needs Postgres and Redis as for the tests, and
# `cargo build --release -p giftdrop -p giftdrop-bench` first.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n 20000
source bench/server.sh
redis_url=redis://127.0.0.1:6379
if [ "$1" = wallet ]; then
  redis-server --port 6391 --bind 127.0.0.1 --daemonize yes --save "" --appendonly no >/dev/null
  redis_url=redis://127.0.0.1:6391
fi
if [ "$1" = market ] || [ "$1" = giveaway ]; then
  export RATE_LIMITS=topup=100000/3600,payout=100000/3600,purchase=1000000/3600,attempt=100000/60,join=100000/60,login=100000/300
  # Buyers are funded for the whole run in one top-up each.
  export TOPUP_MAX_AMOUNT=1000000000000
fi
trap 'kill ${server:-} 2>/dev/null; wait ${server:-} 2>/dev/null || true' EXIT
start_giftdrop "$redis_url"
scenario=$1
shift
case "$scenario" in
  http) ./target/release/giftdrop-bench http "$@" --server-pid "$server" ;;
  wallet)
    echo "## with the server's Redis up"
    ./target/release/giftdrop-bench http --pair wallet "$@" --server-pid "$server"
    redis-cli -p 6391 shutdown nosave >/dev/null 2>&1 || true
    echo "## with the server's Redis stopped"
    ./target/release/giftdrop-bench http --pair wallet "$@" --server-pid "$server"
    ;;
  market) ./target/release/giftdrop-bench market --database-url "$pg_server/postgres$pg_options" "$@" --server-pid "$server" ;;
  giveaway) ${BENCH_WRAP:-} ./target/release/giftdrop-bench giveaway --database-url "$pg_server/postgres$pg_options" "$@" --server-pid "$server" ;;
  *) ${BENCH_WRAP:-} ./target/release/giftdrop-bench "$scenario" "$@" --server-pid "$server" ;;
esac
