#!/usr/bin/env bash
# Every feature of fuli end to end with curl, as the README's "Using it" section shows it:
# keys, earning, reading, member tokens, a perk redeemed for a code, a blind box draw and its
# proof, a red-packet pool and a member's packet, a tier policy and a member's tier, a team-buy
# campaign, a group report, groups as a tree with their trends, and tasks: a chained blind-box
# onboarding and a 7-day check-in streak.
#
#   FULI_ADMIN_KEY=fuli_... examples/walkthrough.sh      # against `make run` on :8000
#
# FULI_URL (default http://127.0.0.1:8000) and FULI_ADMIN_KEY (the admin key `make run` printed)
# say where and as whom. Every id is fresh on each run, so it can run again against the same
# data. It stops with a non-zero exit status at the first unexpected answer.
set -euo pipefail

FULI_URL=${FULI_URL:-http://127.0.0.1:8000}
ADMIN=${FULI_ADMIN_KEY:?set FULI_ADMIN_KEY to the admin key printed by make run}
R=$(date +%s)$RANDOM          # this run's suffix for every id
ALICE=alice-$R BOB=bob-$R CAROL=carol-$R

# call METHOD PATH STATUS KEY: send the request (body on stdin for POST and PUT; empty for none),
# leave the answer in $REPLY and stop unless the status is STATUS.
call() {
  local method=$1 path=$2 expected=$3 key=$4 body="" status
  if [[ $method == POST || $method == PUT ]]; then body=$(cat); fi
  local args=(-sS -X "$method" "$FULI_URL$path" -H "Authorization: Bearer $key"
              -o /dev/stdout -w '\n%{http_code}')
  if [[ -n $body ]]; then args+=(-H 'Content-Type: application/json' --data-binary "$body"); fi
  local out
  out=$(curl "${args[@]}")
  status=${out##*$'\n'}
  REPLY=${out%$'\n'*}
  if [[ $status != "$expected" ]]; then
    echo "FAILED: $method $path answered $status, expected $expected: $REPLY" >&2
    exit 1
  fi
}

# field EXPR: a value of the last answer (a Python expression over `r`), e.g. field 'r["key"]'
field() { python3 -c 'import json, sys; r = json.loads(sys.argv[1]); print(eval(sys.argv[2]))' \
            "$REPLY" "$1"; }

# check EXPR: stop unless the Python expression over the last answer `r` is true (it may span
# lines)
check() {
  if ! python3 -c 'import json, sys; r = json.loads(sys.argv[1]); sys.exit(not eval(f"({sys.argv[2]}\n)"))' \
      "$REPLY" "$1"; then
    echo "FAILED: expected $1 of: $REPLY" >&2
    exit 1
  fi
}

# wait_until PATH KEY EXPR: GET until EXPR holds (the worker applies events in the
# background, usually within a second); stop after 30 s
wait_until() {
  for _ in $(seq 150); do
    call GET "$1" 200 "$2"
    if python3 -c 'import json, sys; r = json.loads(sys.argv[1]); sys.exit(not eval(f"({sys.argv[2]}\n)"))' \
        "$REPLY" "$3"; then return 0; fi
    sleep 0.2
  done
  echo "FAILED: $1 never showed $3: $REPLY" >&2
  exit 1
}

step() { echo "== $*"; }

# days_ago N: the time N days (of 24 hours) before the run started, RFC 3339, for back-dated
# events; one starting time for all, so they fall on consecutive days even across a midnight
STARTED=$(date +%s)
days_ago() { python3 -c 'import datetime as d, sys
start = d.datetime.fromtimestamp(int(sys.argv[2]), d.timezone.utc)
print((start - d.timedelta(days=int(sys.argv[1]))).isoformat())' "$1" "$STARTED"; }

# --8<-- [start:keys]
step "API keys: the admin key makes an ingest key (a brand's backend) and an operator key"
call POST /points/v1/keys 201 "$ADMIN" <<JSON
{"role": "ingest", "label": "brand backend"}
JSON
INGEST=$(field 'r["key"]')
call POST /points/v1/keys 201 "$ADMIN" <<JSON
{"role": "operator", "label": "campaign team"}
JSON
OPERATOR=$(field 'r["key"]')
# --8<-- [end:keys]

# --8<-- [start:tier-policy]
step "tier policy: silver from 100 points earned, gold from 1000 (admin)"
call PUT /tiers/v1/policy 200 "$ADMIN" <<JSON
{"mode": "threshold", "window_days": 365,
 "tiers": [{"name": "member"},
           {"name": "silver", "min": {"points_earned": 100}},
           {"name": "gold", "min": {"points_earned": 1000},
            "benefits": {"earn_multiplier": 1.5}}]}
JSON
# --8<-- [end:tier-policy]

# --8<-- [start:earn]
step "earn: a purchase of 129.00 gives 129 points (built-in rule: 1 point per 100 cents)"
call POST /points/v1/events 201 "$INGEST" <<JSON
{"event_id": "order-$R-1", "member_id": "$ALICE", "action": "purchase", "amount_cents": 12900}
JSON
check 'r["status"] == "awarded" and r["points"] == 129 and r["balance"] == 129'
call POST /points/v1/events 201 "$INGEST" <<JSON
{"event_id": "chat-$R-1", "member_id": "$ALICE", "action": "speak"}
JSON
check 'r["points"] == 1 and r["balance"] == 130'
step "the same event again is a replay: same answer, nothing earned twice"
call POST /points/v1/events 201 "$INGEST" <<JSON
{"event_id": "chat-$R-1", "member_id": "$ALICE", "action": "speak"}
JSON
check 'r["balance"] == 130'
# --8<-- [end:earn]

# --8<-- [start:grant]
step "grant: an operator gives Bob and Carol 500 points each (all or nothing, audited)"
call POST /points/v1/grants 201 "$OPERATOR" <<JSON
{"grant_id": "welcome-$R", "reason": "welcome gift",
 "items": [{"member_id": "$BOB", "points": 500}, {"member_id": "$CAROL", "points": 500}]}
JSON
# --8<-- [end:grant]

# --8<-- [start:read]
step "read: balances, then the ledger history newest first"
call GET "/points/v1/members/$ALICE" 200 "$INGEST"
check 'r["available"] == 130 and r["lifetime_earned"] == 130'
call GET "/points/v1/members/$ALICE/entries?limit=10" 200 "$INGEST"
check 'len(r["items"]) == 2'
# --8<-- [end:read]

# --8<-- [start:member-token]
step "member token: the brand's backend signs Alice in; her app then calls as her"
call POST /points/v1/member-tokens 201 "$INGEST" <<JSON
{"member_id": "$ALICE", "ttl_s": 3600}
JSON
ALICE_TOKEN=$(field 'r["token"]')
call GET "/points/v1/members/$ALICE" 200 "$ALICE_TOKEN"
check 'r["available"] == 130'
call GET "/points/v1/members/$BOB" 403 "$ALICE_TOKEN"
check 'r["error"]["code"] == "forbidden"'
call POST /points/v1/member-tokens 201 "$INGEST" <<JSON
{"member_id": "$BOB"}
JSON
BOB_TOKEN=$(field 'r["token"]')
call POST /points/v1/member-tokens 201 "$INGEST" <<JSON
{"member_id": "$CAROL"}
JSON
CAROL_TOKEN=$(field 'r["token"]')
# --8<-- [end:member-token]

# --8<-- [start:perk]
step "perk: a coupon perk with codes; Alice redeems it and gets a code"
call PUT "/rewards/v1/perks/coffee-$R" 200 "$OPERATOR" <<JSON
{"name": "Free coffee", "cost_points": 50, "fulfilment": "code", "stock": 2,
 "per_member_limit": 1, "coupon_valid_days": 30}
JSON
call POST "/rewards/v1/perks/coffee-$R/codes" 201 "$OPERATOR" <<JSON
{"codes": ["CAFE-$R-A", "CAFE-$R-B"]}
JSON
check 'r["added"] == 2'
call POST /rewards/v1/redemptions 201 "$ALICE_TOKEN" <<JSON
{"redemption_id": "redeem-$R-1", "member_id": "$ALICE", "sku": "coffee-$R", "quantity": 1}
JSON
check 'r["status"] == "completed" and r["points"] == 50 and len(r["codes"]) == 1'
step "a second one is over the per-member limit: 409 with a code"
call POST /rewards/v1/redemptions 409 "$ALICE_TOKEN" <<JSON
{"redemption_id": "redeem-$R-2", "member_id": "$ALICE", "sku": "coffee-$R"}
JSON
check 'r["error"]["code"] == "limit_reached"'
call GET "/rewards/v1/members/$ALICE/coupons" 200 "$ALICE_TOKEN"
check 'len(r["items"]) == 1'
# --8<-- [end:perk]

# --8<-- [start:box]
step "blind box: published odds, a draw paid with points, its proof"
call PUT "/rewards/v1/boxes/box-$R" 200 "$OPERATOR" <<JSON
{"name": "Lucky box", "cost_points": 20,
 "prizes": [{"prize_id": "big", "name": "100 points", "kind": "points", "points": 100,
             "weight": 1, "stock": 10},
            {"prize_id": "small", "name": "10 points", "kind": "points", "points": 10,
             "weight": 9},
            {"prize_id": "none", "name": "Thank you", "kind": "nothing", "weight": 90}]}
JSON
call GET "/rewards/v1/boxes/box-$R/odds" 200 "$ALICE_TOKEN"
check 'len(r["prizes"]) == 3 and len(r["commitment"]) == 64'
call POST "/rewards/v1/boxes/box-$R/draws" 201 "$ALICE_TOKEN" <<JSON
{"draw_id": "draw-$R-1", "member_id": "$ALICE"}
JSON
check 'r["prize"]["prize_id"] in ("big", "small", "none")'
call GET "/rewards/v1/boxes/box-$R/draws/draw-$R-1/proof" 200 "$ALICE_TOKEN"
check 'r["draw_id"] == "draw-'$R'-1"'
step "rotating the seed reveals it: anyone can recompute the draw"
call POST "/rewards/v1/boxes/box-$R/seed/rotate" 200 "$OPERATOR" </dev/null
call GET "/rewards/v1/boxes/box-$R/draws/draw-$R-1/proof" 200 "$ALICE_TOKEN"
check 'r["seed"] is not None'
python3 - "$REPLY" <<'PY'
import hashlib, hmac, json, sys
proof = json.loads(sys.argv[1])
seed = bytes.fromhex(proof["seed"])
assert hashlib.sha256(seed).hexdigest() == proof["commitment"], "seed does not match its commitment"
digest = hmac.new(seed, proof["draw_id"].encode(), hashlib.sha256).digest()
point = int.from_bytes(digest[:8], "big") * sum(c["weight"] for c in proof["candidates"]) // 2**64
for candidate in proof["candidates"]:  # the weights laid end to end; the roll falls in one
    if point < candidate["weight"]:
        break
    point -= candidate["weight"]
assert candidate["prize_id"] == proof["prize_id"], "the draw does not recompute"
print("   recomputed: HMAC-SHA256(seed, draw_id) picks", candidate["prize_id"])
PY
# --8<-- [end:box]

# --8<-- [start:pool]
step "red-packet pool: an operator funds 1000 points in 10 lucky packets; Bob opens one"
call POST /rewards/v1/pools 201 "$OPERATOR" <<JSON
{"pool_id": "pool-$R", "name": "Lunar new year", "total_points": 1000, "packets": 10,
 "split": "lucky", "ends_at": "2099-01-01T00:00:00Z"}
JSON
call POST "/rewards/v1/pools/pool-$R/opens" 201 "$BOB_TOKEN" <<JSON
{"open_id": "open-$R-1", "member_id": "$BOB"}
JSON
check 'r["points"] > 0'
# --8<-- [end:pool]

# --8<-- [start:packet]
step "member packet: Bob shares 100 of his points in 2 equal shares; Carol grabs one"
call POST /rewards/v1/packets 201 "$BOB_TOKEN" <<JSON
{"packet_id": "packet-$R", "member_id": "$BOB", "total_points": 100, "shares": 2,
 "split": "equal"}
JSON
call POST "/rewards/v1/packets/packet-$R/grabs" 201 "$INGEST" <<JSON
{"grab_id": "grab-$R-1", "member_id": "$CAROL"}
JSON
check 'r["points"] == 50'
# --8<-- [end:packet]

# --8<-- [start:tier-read]
step "tier: Alice earned 130 points, so she is silver (the worker applies events at once)"
wait_until "/tiers/v1/members/$ALICE/tier" "$ALICE_TOKEN" 'r["tier"] == "silver"'
check 'r["next"]["tier"] == "gold"'
# --8<-- [end:tier-read]

# --8<-- [start:campaign]
step "team-buy: a campaign, a team of two, a purchase, the leaderboard"
call PUT "/rewards/v1/campaigns/teambuy-$R" 200 "$OPERATOR" <<JSON
{"name": "Spring team-buy", "team_sizes": [2, 3],
 "starts_at": "2020-01-01T00:00:00Z", "ends_at": "2099-01-01T00:00:00Z",
 "prizes": [{"rank_from": 1, "rank_to": 1, "points": 300}]}
JSON
call POST "/rewards/v1/campaigns/teambuy-$R/teams" 201 "$INGEST" <<JSON
{"team_id": "team-$R", "captain_member_id": "$BOB", "size": 2, "name": "Bob's team"}
JSON
call POST "/rewards/v1/campaigns/teambuy-$R/teams/team-$R/members" 201 "$CAROL_TOKEN" <<JSON
{"member_id": "$CAROL"}
JSON
check 'len(r["members"]) == 2 and r["full"]'
call POST /points/v1/events 201 "$INGEST" <<JSON
{"event_id": "order-$R-2", "member_id": "$CAROL", "action": "purchase", "amount_cents": 5000}
JSON
wait_until "/rewards/v1/campaigns/teambuy-$R/leaderboard" "$INGEST" \
  'r["items"] and r["items"][0]["score"] == 5000'
# --8<-- [end:campaign]

# --8<-- [start:group]
step "community group: a silver member group, Alice joins, this week's report"
call PUT "/tiers/v1/groups/group-$R" 200 "$OPERATOR" <<JSON
{"name": "Silver coffee lovers", "tier": "silver", "kind": "member"}
JSON
call PUT "/tiers/v1/groups/group-$R/members/$ALICE" 200 "$OPERATOR" </dev/null
call GET "/tiers/v1/groups/group-$R/report?period=week" 200 "$OPERATOR"
check 'r["members"] == 1'
# --8<-- [end:group]

# --8<-- [start:group-tree]
step "groups as a tree: a city and a grid below it, run by Dana; the city's trends roll up the grid"
call PUT "/tiers/v1/groups/city-$R" 200 "$OPERATOR" <<JSON
{"name": "Shanghai", "tier": "silver", "kind": "member", "owner": "dana", "tags": ["city"]}
JSON
call PUT "/tiers/v1/groups/grid-$R" 200 "$OPERATOR" <<JSON
{"name": "Jing'an grid 3", "tier": "silver", "kind": "member", "owner": "dana",
 "tags": ["grid", "region:east"], "parent": "city-$R"}
JSON
call PUT "/tiers/v1/groups/grid-$R/members/$ALICE" 200 "$OPERATOR" </dev/null
call GET "/tiers/v1/groups?parent=city-$R" 200 "$OPERATOR"
check 'r["items"][0]["group_id"] == "grid-'$R'" and r["items"][0]["members"] == 1'
FROM=$(days_ago 1 | cut -c1-10) TO=$(days_ago -1 | cut -c1-10)   # today's local week(s)
call GET "/tiers/v1/groups/city-$R/trends?from=$FROM&to=$TO&by=week" 200 "$OPERATOR"
check 'r["group_count"] == 2 and sum(p["joins"] for p in r["periods"]) == 1
       and sum(p["new_groups"] for p in r["periods"]) == 2'
call POST "/tiers/v1/groups/grid-$R/dissolution" 200 "$OPERATOR" </dev/null
check 'r["status"] == "dissolved" and r["members"] == 0'
# --8<-- [end:group-tree]

# --8<-- [start:tasks-onboarding]
step "tasks: a three-step onboarding, each step one ticket for the welcome box, chained"
call PUT "/rewards/v1/boxes/welcome-$R" 200 "$OPERATOR" <<JSON
{"name": "Welcome box", "cost_points": 30,
 "prizes": [{"prize_id": "sample", "name": "20 points", "kind": "points", "points": 20,
             "weight": 1},
            {"prize_id": "none", "name": "Thank you", "kind": "nothing", "weight": 3}]}
JSON
call PUT /points/v1/rules/guide_followed 200 "$ADMIN" <<JSON
{"points": 5, "limits": [{"period": "lifetime", "max_events": 1}]}
JSON
call PUT "/tiers/v1/groups/newcomers-$R" 200 "$OPERATOR" <<JSON
{"name": "Newcomers", "tier": "member", "kind": "fan"}
JSON
call PUT "/rewards/v1/tasks/guide-$R" 200 "$OPERATOR" <<JSON
{"name": "Follow the brand's guide", "kind": "once",
 "condition": {"action": "guide_followed"},
 "reward": {"tickets": {"box_id": "welcome-$R", "count": 1}}}
JSON
call PUT "/rewards/v1/tasks/profile-$R" 200 "$OPERATOR" <<JSON
{"name": "Basic questionnaire: skin type, star sign", "kind": "once", "after": "guide-$R",
 "condition": {"action": "survey", "attributes": {"form": "basic"}},
 "reward": {"tickets": {"box_id": "welcome-$R", "count": 1}}}
JSON
call PUT "/rewards/v1/tasks/join-$R" 200 "$OPERATOR" <<JSON
{"name": "Join the newcomers' group", "kind": "once", "after": "profile-$R",
 "condition": {"action": "group_joined", "attributes": {"group_id": "newcomers-$R"}},
 "reward": {"tickets": {"box_id": "welcome-$R", "count": 1}}}
JSON
call GET "/rewards/v1/members/$CAROL/tasks" 200 "$CAROL_TOKEN"
check "[(t['status'], t['unlocked_by']) for t in r['items'] if t['task_id'] == 'profile-$R']
       == [('locked', 'guide-$R')]"
# --8<-- [end:tasks-onboarding]

# --8<-- [start:tasks-chain]
step "Carol does the steps last first, each twice: they count, but wait for the first step"
call PUT "/tiers/v1/groups/newcomers-$R/members/$CAROL" 200 "$OPERATOR" </dev/null
call PUT "/tiers/v1/groups/newcomers-$R/members/$CAROL" 200 "$OPERATOR" </dev/null
for n in 1 2; do
  call POST /points/v1/events 201 "$INGEST" <<JSON
{"event_id": "form-$R-$n", "member_id": "$CAROL", "action": "survey",
 "attributes": {"form": "basic"}}
JSON
done
wait_until "/rewards/v1/members/$CAROL/tasks" "$CAROL_TOKEN" \
  "[(t['status'], t['progress']) for t in r['items'] if t['task_id'] in ('profile-$R', 'join-$R')]
   == [('locked', 1)] * 2"
for n in 1 2; do
  call POST /points/v1/events 201 "$INGEST" <<JSON
{"event_id": "guide-$R-$n", "member_id": "$CAROL", "action": "guide_followed"}
JSON
done
step "the first step unlocks the others at once: all three done and paid (claimed)"
wait_until "/rewards/v1/members/$CAROL/tasks" "$CAROL_TOKEN" \
  "[t['status'] for t in r['items'] if t['task_id'].endswith('-$R')] == ['claimed'] * 3"
step "exactly three tickets: three draws with a ticket, the fourth finds none"
for n in 1 2 3; do
  call POST "/rewards/v1/boxes/welcome-$R/draws" 201 "$CAROL_TOKEN" <<JSON
{"draw_id": "welcome-$R-$n", "member_id": "$CAROL", "use_ticket": true}
JSON
  check 'r["paid_with"] == "ticket"'
done
call POST "/rewards/v1/boxes/welcome-$R/draws" 409 "$CAROL_TOKEN" <<JSON
{"draw_id": "welcome-$R-4", "member_id": "$CAROL", "use_ticket": true}
JSON
check 'r["error"]["code"] == "no_ticket"'
call GET "/rewards/v1/tasks/join-$R/stats" 200 "$OPERATOR"
check 'r["completed"] == 1 and [s["completed"] for s in r["chain"]] == [1, 1, 1]'
# --8<-- [end:tasks-chain]

# --8<-- [start:tasks-streak]
step "streak: check in 7 days running for 70 points; back-dated check-ins, one day missed"
call PUT /points/v1/rules/check_in 200 "$ADMIN" <<JSON
{"points": 1, "limits": [{"period": "day", "max_events": 1}]}
JSON
call PUT "/rewards/v1/tasks/checkin-$R" 200 "$OPERATOR" <<JSON
{"name": "Check in 7 days running", "kind": "streak", "streak_days": 7,
 "condition": {"action": "check_in"}, "reward": {"points": 70}}
JSON
for ago in 6 5 4 2 1 0; do
  call POST /points/v1/events 201 "$INGEST" <<JSON
{"event_id": "checkin-$R-$ago", "member_id": "$BOB", "action": "check_in",
 "occurred_at": "$(days_ago $ago)"}
JSON
done
wait_until "/rewards/v1/members/$BOB/tasks" "$BOB_TOKEN" \
  "[(t['status'], t['progress'], t['target']) for t in r['items'] if t['task_id'] == 'checkin-$R']
   == [('open', 3, 7)]"
step "the missed day arrives late: the days make a 7-day run, paid once"
call POST /points/v1/events 201 "$INGEST" <<JSON
{"event_id": "checkin-$R-3", "member_id": "$BOB", "action": "check_in",
 "occurred_at": "$(days_ago 3)"}
JSON
wait_until "/rewards/v1/tasks/checkin-$R/stats" "$OPERATOR" 'r["rewarded"] == 1'
check 'r["completed"] == 1 and r["rewards_paid"]["points"] == 70'
# --8<-- [end:tasks-streak]

echo "walkthrough: every step answered as expected"
