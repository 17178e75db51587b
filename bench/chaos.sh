#!/usr/bin/env bash
# Chaos: nothing is lost. The flagship's GRPO (bench/chaos.yaml) runs on a head with two
# workers (gen-a: a generator, an env host and trainer rank 1; gen-b: a generator and an
# env host) against the reference Python environment server, while this script kills,
# with SIGKILL:
#   gen    the generator worker gen-b: the run goes on with gen-a;
#   env    the environment server, started again a few seconds later on its port: the
#          episodes in between fail with their error, and the run goes on;
#   rank   the trainer-rank worker gen-a: the ranks' collective fails, the run stops
#          at its last checkpoint, and this script resumes it (troupe run --resume);
#   head   the head itself, then resumed the same way.
# After a head ends, its workers leave; the next head gets two fresh ones.
# At the end bench/chaos_check.py checks the store: every step exactly once, every
# episode a rollout or a failure with its error, every checkpoint loads, the run
# finished. Exit 0 when it all holds.
#
#   bench/chaos.sh [--minutes M] [--seed S] [--out DIR]   kills at random times for M
#                                                         minutes (default 20), then
#                                                         lets the run finish
#   bench/chaos.sh --ci [--out DIR]                       a fixed schedule, one kill of
#                                                         each kind, in a few minutes
# TROUPE names the binary (default build/cli/troupe). The run is in DIR (default
# build/chaos, emptied first), with every process's output.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
troupe=${TROUPE:-$root/build/cli/troupe}
py=/usr/bin/python3  # pyzmq and msgpack, as the server needs (scripts/setup.sh)
minutes=20 mode=random out=$root/build/chaos seed=$((RANDOM))
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --ci) mode=fixed; shift ;;
    *) echo "chaos.sh: unknown argument '$1' (see the comment at its top)" >&2; exit 2 ;;
  esac
done
[ -x "$troupe" ] || { echo "chaos.sh: no troupe binary at $troupe (build first, or set TROUPE)" >&2; exit 2; }
rm -rf "$out" && mkdir -p "$out" && cd "$out" || exit 2
RANDOM=$seed
# bash reports each job that a kill ended ("line N: PID Killed ..."); the kills are
# this script's own, and chaos.log says which.
exec 2> >(grep --line-buffered -v '^bench/chaos.sh: line [0-9]*: *[0-9]* Killed' >&2)

if [ "$mode" = fixed ]; then
  # gen-b at step 6, the env server at 10 (down 5 s), gen-a at 20 (resume from 16), the
  # head at 30 (resume from 24), done at 48.
  sizes="sft.steps=40 grpo.steps=48 grpo.checkpoint_every=8"
  steps=48 env_down=5  # longer than the env's timeout_ms: episodes fail meanwhile
  schedule=(6:gen 10:env 20:rank 30:head)
else
  # About 2.7 GRPO steps a second on 2 cores, fewer with the kills: 200 a minute is
  # long enough that the kills stop (after M minutes) before the run ends.
  steps=$((minutes * 200)) env_down=4
  sizes="grpo.steps=$steps"
  schedule=()
fi

say() { echo "chaos: $*" | tee -a chaos.log; }
declare -A kills=([gen]=0 [env]=0 [rank]=0 [head]=0)
declare -A pid=()
segment=0 env_port=0 port=""

# The last GRPO step the current head printed ("grpo 12/48 ..."), 0 before any.
current_step() { grep -o '^grpo [0-9]*/' "head-$segment.txt" 2>/dev/null | tail -1 | tr -dc 0-9 || true; }
alive() { [ -n "${pid[$1]:-}" ] && kill -0 "${pid[$1]}" 2>/dev/null; }
# Waits (polling, this is a script) until $2 holds or process $1 has ended.
wait_for() { until eval "$2" || ! alive "$1"; do sleep 0.1; done; eval "$2"; }

start_env() {
  local n=$((kills[env]))
  "$py" "$root/examples/python_env/server.py" --port "$env_port" >"env-$n.txt" 2>&1 &
  pid[env]=$!
  wait_for env "grep -q 'listening on' env-$n.txt" || { say "the environment server did not start"; cat "env-$n.txt"; exit 1; }
  env_port=$(grep -o 'listening on tcp://127.0.0.1:[0-9]*' "env-$n.txt" | grep -o '[0-9]*$')
}

start_worker() {  # name
  "$troupe" worker --join "127.0.0.1:$port" --name "$1" --timeout 120 >"$1-$segment.txt" 2>&1 &
  pid[$1]=$!
}

start_head() {
  segment=$((segment + 1))
  if [ "$segment" = 1 ]; then
    # shellcheck disable=SC2086
    "$troupe" run "$root/bench/chaos.yaml" "env.options.endpoint=tcp://127.0.0.1:$env_port" \
      "env.options.tasks_file=$root/examples/python_env/tasks.jsonl" "run.seed=$seed" $sizes >"head-$segment.txt" 2>&1 &
  else
    "$troupe" run --resume runs/chaos >"head-$segment.txt" 2>&1 &
  fi
  pid[head]=$!
  wait_for head "grep -q 'troupe worker --join' head-$segment.txt" || return 0
  port=$(grep -o 'troupe worker --join 127.0.0.1:[0-9]*' "head-$segment.txt" | grep -o '[0-9]*$')
  start_worker gen-a
  start_worker gen-b
}

hit() {  # kind
  kills[$1]=$((kills[$1] + 1))
  say "kill $1 at grpo step $(current_step) (head $segment)"
  case "$1" in
    gen) kill -KILL "${pid[gen-b]}" ;;
    rank) kill -KILL "${pid[gen-a]}" ;;
    head) kill -KILL "${pid[head]}" ;;
    env)
      kill -KILL "${pid[env]}"
      wait "${pid[env]}" 2>/dev/null
      sleep "$env_down"  # the outage
      start_env
      ;;
  esac
}

# The next kill in random mode: any kind whose target is up; gen-b only while gen-a is
# up too (with both gone the head has no generator left).
pick() {
  local kinds=(env head)
  alive gen-a && kinds+=(rank)
  alive gen-a && alive gen-b && kinds+=(gen)
  echo "${kinds[RANDOM % ${#kinds[@]}]}"
}

started=$SECONDS
deadline=$((started + minutes * 60))
start_env
start_head
while :; do
  if ! alive head; then
    wait "${pid[head]}"
    code=$?
    [ "$code" = 0 ] && break
    # A kill ended this head (1: a trainer rank lost; 137: SIGKILL). Anything else is a
    # failure the chaos did not cause.
    if [ "$code" != 1 ] && [ "$code" != 137 ]; then
      say "head $segment exited $code:"; tail -20 "head-$segment.txt"; exit 1
    fi
    for w in gen-a gen-b; do alive "$w" && { kill -KILL "${pid[$w]}"; wait "${pid[$w]}" 2>/dev/null; }; done
    [ "$segment" -ge 100 ] && { say "100 heads and no end"; exit 1; }
    say "head $segment ended ($code); resuming"
    start_head
    continue
  fi
  step=$(current_step)
  step=${step:-0}
  if [ "$mode" = fixed ]; then
    if [ ${#schedule[@]} -gt 0 ] && [ "$step" -ge "${schedule[0]%%:*}" ]; then
      hit "${schedule[0]#*:}"
      schedule=("${schedule[@]:1}")
    fi
  elif [ "$SECONDS" -lt "$deadline" ] && [ "$step" -ge 1 ] && [ "$SECONDS" -ge "${next_kill:=$((SECONDS + 10 + RANDOM % 50))}" ]; then
    hit "$(pick)"
    next_kill=$((SECONDS + 10 + RANDOM % 50))
  fi
  sleep 0.2
done
elapsed=$((SECONDS - started))
kill -KILL "${pid[env]}" 2>/dev/null
for w in gen-a gen-b; do alive "$w" && wait "${pid[$w]}" 2>/dev/null; done
say "finished after $elapsed s and $segment heads; kills: gen ${kills[gen]}, env ${kills[env]}, rank ${kills[rank]}, head ${kills[head]}"
"$py" "$root/bench/chaos_check.py" runs/chaos --steps "$steps" --troupe "$troupe" \
  --eval-config "$root/examples/grpo_arithmetic.yaml" | tee -a chaos.log
exit "${PIPESTATUS[0]}"
