"""The library's CPU compiler options vs XLA's defaults, on bench_gradients' workload.

    python experiments/benchmarks/ab_compiler_options.py [--n 256] [--methods ig50,smoothgrad10]
        [--data CSV]

jaxplain compiles its kernels with ``jaxplain._compile.compiler_options()`` (on the CPU:
``xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT``). For each method
this compiles the same registered kernel twice, once that way and once with XLA's defaults
(``jax.jit`` of the same function), on the first ``--n`` Rotten Tomatoes snippets in the
benchmark's length-bucketed batches of 32, and times both interleaved batch by batch (the
first execution of every shape excluded), so the machine's drift hits both alike. It prints
examples/s for each, the ratio, and the largest difference between their scores.
"""

import argparse
import os
import sys
import time

import jax
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

import bench_gradients as bg  # noqa: E402
from _common import load_texts  # noqa: E402
from jaxplain import _compile  # noqa: E402


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--data", default="/work/shared/data/rotten_tomatoes_corpus_full.csv.bz2")
  p.add_argument("--n", type=int, default=256)
  p.add_argument("--methods", default="ig50,smoothgrad10")
  args = p.parse_args()
  options = _compile.compiler_options()
  print(f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} | jax {jax.__version__} "
        f"{jax.devices()} | load average {os.getloadavg()[0]:.1f}\nlibrary options: {options}")
  if not options:
    sys.exit("no compiler options on this backend or jaxlib: nothing to compare.")
  model, note = bg.load_model()
  texts = load_texts(args.data, args.n)
  batches, _ = bg.bucketed_batches(model, texts, 32)
  print(f"model: {note}; {len(texts)} snippets, padded lengths "
        f"{sorted({b.input_ids.shape[1] for _, b in batches})}")
  for method in args.methods.split(","):
    name, hyper, _ = bg.METHODS[method]
    library = bg.jaxplain_fn(model, name, hyper)
    programs = {"library options": library, "XLA defaults": jax.jit(library.__wrapped__)}
    runners = {k: bg.prepare_jaxplain(model, batches, name, hyper, fn=fn)[0]
               for k, fn in programs.items()}
    totals = bg.interleaved(runners, settle=0.2)
    diff = scale = 0.0
    for ours, theirs in zip(*runners.values()):
      ours, theirs = np.asarray(ours()), np.asarray(theirs())
      diff, scale = max(diff, float(np.abs(ours - theirs).max())), max(
          scale, float(np.abs(theirs).max()))
    (lw, lc), (dw, dc) = totals["library options"], totals["XLA defaults"]
    print(f"[{method}] library options {len(texts) / lw:.2f} ex/s ({lw:.1f} s, CPU {lc:.1f} s) | "
          f"XLA defaults {len(texts) / dw:.2f} ex/s ({dw:.1f} s, CPU {dc:.1f} s) | speed-up "
          f"{dw / lw:.3f}x | max |score difference| {diff:.1e} (max |score| {scale:.2f})",
          flush=True)


if __name__ == "__main__":
  main()
