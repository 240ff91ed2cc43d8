"""Time of a process's first ``jaxplain.attribute`` calls, compile included, per checkout.

    python experiments/benchmarks/bench_first_call.py [--method ig] [--repeats 3]
        [--target predicted|margin] [--tree OTHER_CHECKOUT ...]

Each repeat runs a fresh Python process that loads the default model, then times
``attribute(model, "an utterly charming film", method)`` (one text: unpacked) and, right after,
``attribute(model, three_texts, method)`` (packed where the method packs). Both are first calls
of their shapes, so they include tracing and compiling; the persistent compilation cache is off.
Then it loads the default model again (``default_model.cache_clear()``, as a notebook cell run
twice would) and times the one-text call on that copy ("reloaded": no new shape, so it measures
whether the programs compiled for the first copy serve the second).
``--target margin`` explains a callable target, ``logits[:, 1] - logits[:, 0]`` (one function
for both calls; a callable target never packs), instead of the predicted class.
With ``--tree``, the same child imports jaxplain from each checkout given (for example a
``git worktree`` of an older commit) as well as from this one, interleaved repeat by repeat, so
the checkouts are compared on the same host at the same time. Prints the median and every run.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHILD = """
import json, sys, time
import jax
jax.config.update("jax_enable_compilation_cache", False)
import jaxplain
model = jaxplain.default_model()
method = sys.argv[1]
target = None if sys.argv[2] == "predicted" else (lambda o: o.logits[:, 1] - o.logits[:, 0])
t0 = time.perf_counter()
jaxplain.attribute(model, "an utterly charming film", method, target)
t1 = time.perf_counter()
jaxplain.attribute(model, ["a dull, lifeless mess", "great fun", "not good at all, sadly"],
                   method, target)
t2 = time.perf_counter()
jaxplain.default_model.cache_clear()
again = jaxplain.default_model()
t3 = time.perf_counter()
jaxplain.attribute(again, "an utterly charming film", method, target)
t4 = time.perf_counter()
print(json.dumps({"one": t1 - t0, "three": t2 - t1, "reload": t4 - t3, "file": jaxplain.__file__}))
"""


def _child(tree: str, method: str, target: str) -> dict:
  env = dict(os.environ, PYTHONPATH=tree + os.pathsep + os.environ.get("PYTHONPATH", ""))
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  proc = subprocess.run([sys.executable, "-c", CHILD, method, target], env=env, cwd=tree,
                        capture_output=True, text=True)
  if proc.returncode != 0:
    sys.exit(f"the child in {tree} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  if not out["file"].startswith(os.path.realpath(tree)):
    sys.exit(f"the child in {tree} imported jaxplain from {out['file']}, not from that tree.")
  return out


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--method", default="ig")
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--target", choices=("predicted", "margin"), default="predicted")
  ap.add_argument("--tree", action="append", default=[],
                  help="another checkout to time as well (repeatable)")
  args = ap.parse_args()
  trees = [REPO] + [os.path.realpath(t) for t in args.tree]
  runs = {t: {"one": [], "three": [], "reload": []} for t in trees}
  for _ in range(args.repeats):
    for tree in trees:
      out = _child(tree, args.method, args.target)
      for k in ("one", "three", "reload"):
        runs[tree][k].append(out[k])
  print(f"method {args.method}, target {args.target}; python {sys.version.split()[0]}, {os.cpu_count()} cores, load "
        f"average {os.getloadavg()[0]:.1f}; median of {args.repeats} fresh processes (seconds)\n")
  print("| checkout | first call, 1 text | runs | first call, 3 texts | runs | "
        "1 text on the model loaded again | runs |")
  print("|---|---|---|---|---|---|---|")
  for tree, r in runs.items():
    head = subprocess.run(["git", "-C", tree, "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip() or "?"
    name = f"{tree} ({head})"
    cells = [f"{statistics.median(r[k]):.2f} | {', '.join(f'{x:.2f}' for x in r[k])}"
             for k in ("one", "three", "reload")]
    print(f"| {name} | {' | '.join(cells)} |")


if __name__ == "__main__":
  main()
