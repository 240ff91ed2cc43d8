"""The library's CPU compiler options vs XLA's defaults, on bench_gradients' workload.

    python experiments/benchmarks/ab_compiler_options.py [--n 256] [--methods ig50,smoothgrad10]
        [--data CSV] [--compare options|gelu-remat]

jaxplain compiles its kernels with ``jaxplain._compile.compiler_options()`` (on the CPU:
``xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT``). For each method
this compiles the same registered kernel twice, once that way and once with XLA's defaults
(``jax.jit`` of the same function), on the first ``--n`` Rotten Tomatoes snippets in the
benchmark's length-bucketed batches of 32, and times both interleaved batch by batch (the
first execution of every shape excluded), so the machine's drift hits both alike. It prints
examples/s for each, the ratio, and the largest difference between their scores.

``--compare gelu-remat`` measures another library choice the same way: the exact GELU wrapped in
``jax.checkpoint`` (``jaxplain.models.rules.gelu_exact``, the library's) against the same custom-JVP
GELU without it, both with the library's compiler options.
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
from _common import load_texts, swapped_activation  # noqa: E402
from jaxplain import _compile  # noqa: E402
from jaxplain.models import rules  # noqa: E402


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--data", default="/work/shared/data/rotten_tomatoes_corpus_full.csv.bz2")
  p.add_argument("--n", type=int, default=256)
  p.add_argument("--methods", default="ig50,smoothgrad10")
  p.add_argument("--compare", choices=("options", "gelu-remat"), default="options",
                 help="options: the library's compiler options vs XLA's defaults; gelu-remat: "
                      "the exact GELU under jax.checkpoint (the library's) vs without")
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
    if args.compare == "options":
      labels = ("library options", "XLA defaults")
      runners = {k: bg.prepare_jaxplain(model, batches, name, hyper, fn=fn)[0] for k, fn in
                 zip(labels, (library, jax.jit(library.__wrapped__)))}
    else:
      labels = ("GELU under jax.checkpoint", "GELU without")
      runners = {labels[0]: bg.prepare_jaxplain(model, batches, name, hyper, fn=library)[0]}
      with swapped_activation("gelu", rules._gelu_exact):  # pylint: disable=protected-access
        runners[labels[1]] = bg.prepare_jaxplain(
            model, batches, name, hyper, fn=bg.jaxplain_fn(model, name, hyper))[0]
    totals = bg.interleaved(runners, settle=0.2)
    diff = scale = 0.0
    for ours, theirs in zip(*runners.values()):
      ours, theirs = np.asarray(ours()), np.asarray(theirs())
      diff, scale = max(diff, float(np.abs(ours - theirs).max())), max(
          scale, float(np.abs(theirs).max()))
    (lw, lc), (dw, dc) = totals[labels[0]], totals[labels[1]]
    print(f"[{method}] {labels[0]} {len(texts) / lw:.2f} ex/s ({lw:.1f} s, CPU {lc:.1f} s) | "
          f"{labels[1]} {len(texts) / dw:.2f} ex/s ({dw:.1f} s, CPU {dc:.1f} s) | speed-up "
          f"{dw / lw:.3f}x | max |score difference| {diff:.1e} (max |score| {scale:.2f})",
          flush=True)


if __name__ == "__main__":
  main()
