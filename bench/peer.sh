#!/usr/bin/env bash
# giftdrop against PostGraphile v5 and v4 on the same database and data:
# `event(id)` with its prizes, winners and host, read with the same wrk
# script from each server in turn.
#
#   bench/peer.sh                      # 12 s rounds, 2 rounds, 8 and 64 connections
#   SECONDS_PER_ROUND=5 ROUNDS=1 CONNECTIONS="64" bench/peer.sh
#
# What it does, in order (each step is idempotent: it installs only what is
# missing, and starts from an empty database every time):
#  1. installs wrk (apt, as root or with sudo) if missing, PostGraphile v5
#     with the Node 22 runtime it needs (npm package `node`; the system Node
#     may be older) into bench/peer/v5, and PostGraphile v4 into
#     bench/peer/v4 (npm ci from the committed lock files; node_modules is
#     git-ignored), and builds the release server and giftdrop-bench;
#  2. starts giftdrop on a fresh database as bench/run.sh does;
#  3. seeds through the API (giftdrop-bench peer-seed): for the same-event
#     case one event per measurement window (10 prize lines, 100 winners
#     already announced, units left for the winners announced during the
#     window), and EVENTS events of 10-20 winners for the random case;
#  4. starts PostGraphile v5 (2 node:cluster workers, bench/peer/v5/server.mjs)
#     and v4 (its --cluster-workers 2) on that database: NODE_ENV=production,
#     no watch, no GraphiQL, no query log, a pool of PG_POOL (20, giftdrop's
#     own pool size) per worker, schemas giveaway, giftcard and identity;
#  5. checks that the three servers return the same event: ids, amounts,
#     counts, host, and the winners in order (participant and prize ids);
#  6. once giftdrop is idle (its background jobs done), for each
#     connection count and round, runs wrk (bench/peer/graphql.lua)
#     against giftdrop, v5 and v4 in turn (the order rotates each round), on
#     the same event for every request and on a random event per request,
#     then, on giftdrop, `{ platform { currency } }`, `GET /health/live`
#     and the floor of a POST (the same request as text/plain, refused
#     with 415 once its body is read: no GraphQL), in an order that
#     rotates each round; prints req/s, p50 and p99 (means over the
#     rounds) and the ratios.
#
# During each same-event window, giftdrop-bench peer-announce announces a
# winner on that window's event every 100 ms (ANNOUNCE=0 turns it off):
# the page at the start of a giveaway, 100 winners growing to about
# 100 + 10 per second of the round. The attempts go through giftdrop
# whichever server is being read, so every server is read under the same
# write load (on the same 2 cores as the load generator).
#
# PostGraphile exposes the tables as they are: no masking of display names,
# no viewer-dependent fields, no permission checks; giftdrop does all of
# these. The comparison is of the page a front end needs, not of equal work.
#
# Settings (environment): SECONDS_PER_ROUND (12), ROUNDS (2),
# CONNECTIONS ("8 64"), EVENTS (300), ANNOUNCE (1), PG_POOL (20),
# WRK_THREADS (2), SKIP_BUILD (set: use the binaries already built).
# Binaries come from $CARGO_TARGET_DIR (default target/).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_ROUND=${SECONDS_PER_ROUND:-12}
ROUNDS=${ROUNDS:-2}
CONNECTIONS=${CONNECTIONS:-"8 64"}
EVENTS=${EVENTS:-300}
ANNOUNCE=${ANNOUNCE:-1}
PG_POOL=${PG_POOL:-20}
WRK_THREADS=${WRK_THREADS:-2}
target=${CARGO_TARGET_DIR:-target}/release
bench=$target/giftdrop-bench
export SERVER=${SERVER:-$target/giftdrop}
work=/tmp/giftdrop-peer
peer=bench/peer
ulimit -n 20000

# --- 1. tools ---------------------------------------------------------------
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
# The load generator, the answers' check, and npm (for PostGraphile and the
# Node 22 runtime); the first apt-get install may need a fresh package list.
for tool in wrk jq npm; do
  command -v $tool >/dev/null && continue
  as_root apt-get install -y $tool || { as_root apt-get update && as_root apt-get install -y $tool; }
done
for v in v5 v4; do
  # npm ci reinstalls from the lock file only when node_modules is missing.
  [ -d "$peer/$v/node_modules" ] || (cd "$peer/$v" && npm ci --no-audit --no-fund)
done
# The npm package `node` fetches its runtime in an install script: an npm
# that skips install scripts leaves no binary.
node22=$peer/v5/node_modules/node/bin/node
"$node22" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 22 ? 0 : 1)' || {
  echo "no Node >= 22 at $node22: remove $peer/v5/node_modules and rerun with npm allowing install scripts" >&2
  exit 1
}
if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --release -p giftdrop -p giftdrop-bench
fi

# --- 2. giftdrop --------------------------------------------------------------
pids=()
cleanup() {
  for pid in "${pids[@]}" ${server:-}; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
rm -rf "$work" && mkdir -p "$work"
# The seeding joins and attempts thousands of times as a few users.
export RATE_LIMITS=topup=100000/3600,payout=100000/3600,purchase=1000000/3600,attempt=100000/60,join=100000/60,login=100000/300
source bench/server.sh
start_giftdrop redis://127.0.0.1:6379

# --- 3. data, through the API ---------------------------------------------------
set -- $CONNECTIONS
windows=$(( $# * ROUNDS * 3 ))
# Each window announces one winner per 100 ms on its own event: enough
# units for them (10 lines), on top of the 100 winners already there.
announced=$(( ANNOUNCE == 1 ? SECONDS_PER_ROUND * 10 : 0 ))
units=$(( (100 + announced + 9) / 10 ))
"$bench" peer-seed --out "$work" --same-events "$windows" --same-lines 10 --same-units "$units" \
  --same-winners 100 --events "$EVENTS"
mapfile -t same_events <"$work/same.txt"
head -n 1 "$work/random.txt" >"$work/one-random.txt"

# --- 4. PostGraphile ------------------------------------------------------------
db_url=$pg_server/giftdrop_bench$pg_options
(cd $peer/v5 && NODE_ENV=production WORKERS=2 PORT=8105 PG_POOL=$PG_POOL DATABASE_URL=$db_url \
  exec node_modules/node/bin/node server.mjs) >$work/v5.log 2>&1 &
pids+=($!)
(cd $peer/v4 && NODE_ENV=production exec node node_modules/.bin/postgraphile -c "$db_url" \
  -s giveaway,giftcard,identity --host 127.0.0.1 -p 8104 --cluster-workers 2 \
  --max-pool-size "$PG_POOL" --disable-graphiql --disable-query-log) >$work/v4.log 2>&1 &
pids+=($!)
declare -A url=([giftdrop]=http://127.0.0.1:8100/graphql [v5]=http://127.0.0.1:8105/graphql [v4]=http://127.0.0.1:8104/graphql)
declare -A query=([giftdrop]=$peer/q-giftdrop.graphql [v5]=$peer/q-v5.graphql [v4]=$peer/q-v4.graphql)
ask() { # ask SERVER EVENT_ID: the server's answer to its event query
  jq -n --rawfile q "${query[$1]}" --arg id "$2" '{query: $q, variables: {id: $id}}' |
    curl -sf -H 'content-type: application/json' -d @- "${url[$1]}"
}
for server_name in v5 v4; do
  for _ in $(seq 1 100); do
    ask "$server_name" "${same_events[0]}" >/dev/null 2>&1 && break
    sleep 0.3
  done
done

# --- 5. the same answer from every server ----------------------------------------
# Each answer, reduced to what the three must agree on.
normalize() {
  jq -S '.data | (.event // .eventByRowId // .eventById) as $e | {
    id: ($e.id // $e.rowId), awarded: $e.prizesAwarded, prizeCount: $e.prizeCount,
    host: ($e.host.id // $e.identityUserByHostId.rowId // $e.userByHostId.id),
    prizes: ([($e.prizes // $e.prizesByEventId.nodes)[] | {id: (.id // .rowId), faceValue, quantity, awarded,
      product: (.cardProduct.id // .giftcardCardProductByCardProductId.rowId // .cardProductByCardProductId.id)}] | sort_by(.id)),
    winners: [($e.winners // $e.winnersByEventId.nodes)[] | {sequence,
      participant: (.participant.id // .participantByParticipantId.rowId // .participantByParticipantId.id),
      prize: (.prize.id // .prizeByPrizeId.rowId // .prizeByPrizeId.id)}] }'
}
for event in "${same_events[0]}" $(shuf -n 5 "$work/random.txt"); do
  for server_name in giftdrop v5 v4; do
    ask "$server_name" "$event" | normalize >"$work/answer-$server_name.json"
  done
  jq -e '.winners | length > 0' "$work/answer-giftdrop.json" >/dev/null
  cmp -s "$work/answer-giftdrop.json" "$work/answer-v5.json" &&
    cmp -s "$work/answer-giftdrop.json" "$work/answer-v4.json" || {
    echo "the servers disagree on event $event:" >&2
    diff "$work/answer-giftdrop.json" "$work/answer-v5.json" >&2 || true
    diff "$work/answer-giftdrop.json" "$work/answer-v4.json" >&2 || true
    exit 1
  }
done
echo "checked: giftdrop, PostGraphile v5 and v4 return the same prizes and winners for 6 events"

# --- 6. measure ----------------------------------------------------------------
# settle: returns once the giftdrop server has used under 5% of a core for
# a second (two minutes at most). Seeding and announcing leave jobs behind
# (win emails, verifications); a round must not pay for the previous one's.
settle() {
  local ticks before after
  for _ in $(seq 1 120); do
    before=$(awk '{ print $14 + $15 }' "/proc/$server/stat")
    sleep 1
    after=$(awk '{ print $14 + $15 }' "/proc/$server/stat")
    ticks=$(( (after - before) * 100 / $(getconf CLK_TCK) ))
    [ "$ticks" -lt 5 ] && return 0
  done
  echo "giftdrop still busy ($ticks% of a core); measuring anyway" >&2
}
# wrk_run CASE CONNECTIONS ROUND SERVER URL [env...]: one wrk round,
# appended to results.tsv; any bad response fails the run.
wrk_run() {
  local case=$1 conns=$2 round=$3 name=$4 target_url=$5
  shift 5
  local line
  # A slow answer counts in the latencies rather than as wrk's timeout (2 s
  # by default): PostGraphile's p99 at 64 connections comes close to it.
  line=$(env "$@" wrk -t "$WRK_THREADS" -c "$conns" -d "${SECONDS_PER_ROUND}s" --timeout 10s --latency \
    -s $peer/graphql.lua "$target_url" | grep '^RESULT')
  echo "$case $conns $round $name ${line#RESULT }"
  case "$line" in *" bad=0 socket_errors=0"*) ;; *) echo "bad responses in: $line" >&2; exit 1 ;; esac
  echo "$case $conns $round $name $line" | tr -s ' ' '\t' >>"$work/results.tsv"
}
window=0
rotation=(giftdrop v5 v4)
trivial=(currency post live)
for conns in $CONNECTIONS; do
  for round in $(seq 1 "$ROUNDS"); do
    for name in "${rotation[@]}"; do
      event=${same_events[$window]}
      window=$((window + 1))
      echo "$event" >"$work/same-now.txt"
      announcer=
      settle
      if [ "$ANNOUNCE" = 1 ]; then
        "$bench" peer-announce --event "$event" --tokens "$work/announce-$event.tokens" \
          --every-ms 100 >>"$work/announce.log" 2>&1 &
        announcer=$!
        pids+=("$announcer")
      fi
      wrk_run same "$conns" "$round" "$name" "${url[$name]}" \
        QUERY_FILE="${query[$name]}" IDS_FILE="$work/same-now.txt"
      [ -z "$announcer" ] || kill "$announcer" 2>/dev/null || true
    done
    for name in "${rotation[@]}"; do
      settle
      wrk_run random "$conns" "$round" "$name" "${url[$name]}" \
        QUERY_FILE="${query[$name]}" IDS_FILE="$work/random.txt"
    done
    for name in "${trivial[@]}"; do
      settle
      case $name in
        currency) wrk_run trivial "$conns" "$round" currency "${url[giftdrop]}" QUERY_FILE=$peer/q-currency.graphql ;;
        post) wrk_run trivial "$conns" "$round" post "${url[giftdrop]}" QUERY_FILE=$peer/q-currency.graphql \
          CONTENT_TYPE=text/plain EXPECT_STATUS=415 ;;
        live) wrk_run trivial "$conns" "$round" live http://127.0.0.1:8100/health/live GET_PATH=/health/live ;;
      esac
    done
    trivial=("${trivial[@]:1}" "${trivial[0]}")
    # The next round starts with the next server.
    rotation=("${rotation[@]:1}" "${rotation[0]}")
  done
done

# --- report ------------------------------------------------------------------
# Means over the rounds per case, connections and server; then the ratios.
echo
awk '
  { for (i = 5; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    k = $1 " " $2 " " $4; n[k]++; rps[k] += v["rps"]; p50[k] += v["p50_ms"]; p99[k] += v["p99_ms"]
    if (!(($1 " " $2) in seen)) { seen[$1 " " $2] = 1; order[++m] = $1 " " $2 } }
  END {
    print "| case | connections | server | req/s | p50 ms | p99 ms |"
    print "|---|---|---|---|---|---|"
    for (i = 1; i <= m; i++) {
      split(order[i], cc, " ")
      split("giftdrop v5 v4 currency post live", names, " ")
      for (j = 1; j <= 6; j++) if ((k = order[i] " " names[j]) in n)
        printf "| %s | %s | %s | %.0f | %.2f | %.2f |\n", cc[1], cc[2], names[j], rps[k]/n[k], p50[k]/n[k], p99[k]/n[k]
    }
    print ""
    for (i = 1; i <= m; i++) {
      split(order[i], cc, " "); g = order[i] " giftdrop"
      if (cc[1] == "trivial") {
        c = rps[order[i] " currency"]; p = rps[order[i] " post"]; l = rps[order[i] " live"]
        printf "RATIO %s conns=%s currency/live = %.2f  (floor: post/live = %.2f; currency/post = %.2f)\n", cc[1], cc[2], c / l, p / l, c / p
      } else {
        printf "RATIO %s conns=%s giftdrop/v5 = %.2f  giftdrop/v4 = %.2f  (p99 giftdrop %.2f ms, v5 %.2f ms, v4 %.2f ms)\n",
          cc[1], cc[2], rps[g] / rps[order[i] " v5"], rps[g] / rps[order[i] " v4"],
          p99[g]/n[g], p99[order[i] " v5"]/n[order[i] " v5"], p99[order[i] " v4"]/n[order[i] " v4"]
      }
    }
  }' "$work/results.tsv"
echo "errors=0 (every response checked; raw rounds in $work/results.tsv)"
