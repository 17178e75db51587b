#!/usr/bin/env python3
"""What bench/chaos.sh checks once its run has ended: nothing was lost.

    chaos_check.py RUN_DIR --steps N --troupe BIN --eval-config CONFIG

- the run finished;
- every metric has each step at most once, and the GRPO metrics (train/loss) have every
  step 0..N-1 exactly once;
- every episode of every step is in the store (grpo.rollouts_logged covers them all):
  prompts_per_step x group_size rows a step, each a rollout or a failure with its error,
  and as many failures as the step's train/failed_episodes says;
- every checkpoint the store lists is on disk and loads: `troupe eval CONFIG
  --checkpoint DIR` (a config of the same policy shape, with a built-in environment).
Prints one line per finding and a summary; exits 1 when anything is lost.
"""
import argparse
import collections
import json
import os
import sqlite3
import subprocess
import sys
import tempfile


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--steps", type=int, required=True, help="the run's grpo.steps")
    ap.add_argument("--troupe", required=True)
    ap.add_argument("--eval-config", required=True)
    a = ap.parse_args()
    problems = []
    db = sqlite3.connect(f"file:{os.path.join(a.run_dir, 'store.sqlite')}?mode=ro", uri=True)

    status = db.execute("SELECT status FROM runs").fetchone()[0]
    if status != "finished":
        problems.append(f"the run's status is {status!r}, not 'finished'")

    twice = db.execute("SELECT name, step, COUNT(*) FROM metrics GROUP BY name, step HAVING COUNT(*) > 1 LIMIT 5").fetchall()
    for name, step, n in twice:
        problems.append(f"metric {name} has step {step} {n} times")
    loss_steps = [s for (s,) in db.execute("SELECT step FROM metrics WHERE name = 'train/loss' ORDER BY step")]
    if loss_steps != list(range(a.steps)):
        missing = sorted(set(range(a.steps)) - set(loss_steps))
        problems.append(f"train/loss has {len(loss_steps)} steps, not 0..{a.steps - 1} once each; missing {missing[:10]}")

    per_step = collections.Counter()
    failed = collections.Counter()
    for step, rewards_json in db.execute("SELECT step, rewards_json FROM rollouts"):
        per_step[step] += 1
        comps = json.loads(rewards_json)
        if "error" in comps:
            if not isinstance(comps["error"], str) or not comps["error"]:
                problems.append(f"step {step}: a failed episode without its error")
            failed[step] += 1
    failures_logged = {s: int(v) for s, v in db.execute("SELECT step, value FROM metrics WHERE name = 'train/failed_episodes'")}
    episodes = set(per_step.values())
    if len(episodes) != 1 or set(per_step) != set(range(a.steps)):
        problems.append(f"episodes per step differ or steps are missing: {sorted(collections.Counter(per_step.values()).items())}")
    for step in range(a.steps):
        if failed[step] != failures_logged.get(step, 0):
            problems.append(f"step {step}: {failed[step]} failed episodes stored, train/failed_episodes says "
                            f"{failures_logged.get(step, 0)}")

    checkpoints = [p for (p,) in db.execute("SELECT path FROM checkpoints ORDER BY step")]
    with tempfile.TemporaryDirectory() as evals:
        for p in checkpoints:
            d = os.path.join(a.run_dir, p)
            r = subprocess.run([a.troupe, "eval", a.eval_config, "--checkpoint", d, "grpo.eval_prompts=4",
                                f"run.dir={evals}", "system.progress=off"], capture_output=True, text=True)
            if r.returncode != 0:
                problems.append(f"checkpoint {p} does not load: {(r.stderr or r.stdout).strip()[-300:]}")

    events = collections.Counter(k for (k,) in db.execute("SELECT kind FROM events"))
    for p in problems:
        print("LOST:", p)
    print(json.dumps({
        "status": status,
        "steps": len(loss_steps),
        "episodes": sum(per_step.values()),
        "failed_episodes": sum(failed.values()),
        "checkpoints_loaded": len(checkpoints) - sum(1 for p in problems if p.startswith("checkpoint ")),
        "events": dict(sorted(events.items())),
        "nothing_lost": not problems,
    }))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
