"""Throughput of the LRP kernels: AttnLRP vs IG-50, and Mask-LRP batched vs one at a time.

    python experiments/benchmarks/bench_lrp.py --data /work/shared/data/rotten_tomatoes_corpus_full.csv.bz2 [--n 64]

The setting of ``bench_gradients.py``: ``--n`` Rotten Tomatoes critic snippets (fresh/rotten rows,
duplicates dropped, ``sample(n, random_state=0)``), the default model, sorted by length into
batches of ``--batch`` (32) padded to ``jaxplain.models.BUCKETS``, the predicted class as target,
kernels jitted through ``jaxplain.api.compiled``; every bucket shape is compiled first (compile
time reported apart, excluded from examples/s). It times ``attnlrp`` and ``cp_lrp`` (one forward +
one backward), ``integrated_gradients`` (50 Gauss-Legendre steps, as the gradient benchmark, with
the library's ``chunk_size="auto"`` or chunks of ``--ig-chunk`` steps; runs before 2026-11-24
used ``--ig-chunk 5``),
``gae`` and ``mask_lrp`` (a forward, a backward to the attention maps, and the explicit relprop
vmapped over the batch), and Mask-LRP one example at a time (batch 1, each padded to its own
bucket). Each shape is compiled ahead of time and run once untimed (the first execution builds
its runtime kernels: 1-2 s, as much as a whole AttnLRP batch; runs before 2026-11-24 timed it),
then every batch runs once, timed. It prints
examples/s (wall) and CPU seconds per example of this process (all threads),
which is steadier than wall time on a shared machine.
"""

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

import jaxplain  # noqa: E402
from jaxplain.api import compiled  # noqa: E402
from jaxplain.attribution.heads import HeadMasks  # noqa: E402
from _common import bucketed_batches, load_texts  # noqa: E402

METHODS = ("attnlrp", "cp_lrp", "ig50", "gae", "mask_lrp")


def kernel(model, label, head_mask, chunk="auto"):
  tok = model.tokenizer
  if label == "ig50":
    special = tuple(sorted(set(tok.all_special_ids) - {tok.pad_token_id, tok.mask_token_id,
                                                       tok.unk_token_id}))
    static = dict(steps=50, chunk_size=chunk, pad_id=tok.pad_token_id, mask_id=tok.mask_token_id,
                  unk_id=tok.unk_token_id, special_ids=special)
    return compiled("integrated_gradients", tuple(sorted(static.items())), model.forward), {}
  if label == "mask_lrp":
    return compiled("mask_lrp", (("sep_token_id", tok.sep_token_id),), model.forward), {
        "head_mask": head_mask}
  return compiled(label, (), model.forward), {}


def run(model, batches, fn, dynamic):
  """``(wall s, process CPU s, compile s, shapes)`` over all batches, compile and each shape's
  first run excluded (counted in the compile seconds)."""
  key = jax.random.key(0)
  t0 = time.perf_counter()
  exes = {}
  for _, b in batches:  # ahead-of-time compile of every shape, and one untimed first run
    if b.input_ids.shape not in exes:
      exes[b.input_ids.shape] = fn.lower(model.params, b, None, key, **dynamic).compile()
      jax.block_until_ready(exes[b.input_ids.shape](model.params, b, None, key, **dynamic))
  compile_s = time.perf_counter() - t0
  t0, c0 = time.perf_counter(), time.process_time()
  for _, b in batches:
    jax.block_until_ready(exes[b.input_ids.shape](model.params, b, None, key, **dynamic))
  return time.perf_counter() - t0, time.process_time() - c0, compile_s, sorted(exes)


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--data", default="/work/shared/data/rotten_tomatoes_corpus_full.csv.bz2")
  p.add_argument("--n", type=int, default=64)
  p.add_argument("--batch", type=int, default=32, help="examples per batch (bench_gradients)")
  p.add_argument("--single-n", type=int, default=None,
                 help="examples for Mask-LRP one at a time (default: all --n)")
  p.add_argument("--head-masks", default=os.path.join(
      os.path.dirname(HERE), "mask_lrp", "results", "heads", "head_masks.json"),
                 help="head_masks.json for mask_lrp (synt_pos); all ones when missing")
  p.add_argument("--methods", default=",".join(METHODS))
  p.add_argument("--ig-chunk", type=int, default=None,
                 help="IG steps per vmapped chunk (default: the library's chunk_size='auto'; "
                 "unchunked IG-50 on 32 x 64 tokens asks for 29 GB on CPU)")
  args = p.parse_args()
  t_start = time.time()
  model = jaxplain.default_model()
  shape = (model.config.num_layers, model.config.num_heads)
  if os.path.exists(args.head_masks):
    head_mask = jnp.asarray(HeadMasks.load(args.head_masks, model).synt_pos)
    mask_note = f"synt_pos mask from {os.path.relpath(args.head_masks)}"
  else:
    head_mask, mask_note = jnp.ones(shape, jnp.float32), "all-ones mask"
  texts = load_texts(args.data, args.n)
  batches, lengths = bucketed_batches(model, texts, args.batch)
  device = jax.devices()[0]
  print(f"{model.name}\n{len(texts)} RT snippets, tokens: mean {lengths.mean():.1f}, max "
        f"{lengths.max()}; {len(batches)} batches of <= {args.batch}, buckets "
        f"{sorted({b.input_ids.shape[1] for _, b in batches})}; {device.platform} "
        f"({device.device_kind}), {os.cpu_count()} cores visible, load average "
        f"{os.getloadavg()[0]:.1f}; mask_lrp: {mask_note}", flush=True)
  rows = {}
  for label in args.methods.split(","):
    fn, dyn = kernel(model, label, head_mask, args.ig_chunk or "auto")
    wall, cpu, comp, shapes = run(model, batches, fn, dyn)
    rows[label + " (batched)" if label == "mask_lrp" else label] = dict(
        eps=len(texts) / wall, cpu_ms=1e3 * cpu / len(texts), compile_s=comp,
        shapes=[list(s) for s in shapes])
    print(f"  {label:26s} {len(texts) / wall:8.2f} examples/s  {1e3 * cpu / len(texts):8.1f} "
          f"CPU ms/example  (compile {comp:.0f} s, {len(shapes)} shapes)", flush=True)
  if "mask_lrp" in args.methods.split(","):
    n1 = args.single_n or len(texts)
    singles = [(np.array([j]), model.encode([texts[j]], max_length=512).device_part())
               for j in range(n1)]
    fn, dyn = kernel(model, "mask_lrp", head_mask)
    wall, cpu, comp, shapes = run(model, singles, fn, dyn)
    rows["mask_lrp (one at a time)"] = dict(eps=n1 / wall, cpu_ms=1e3 * cpu / n1,
                                            compile_s=comp, shapes=[list(s) for s in shapes])
    print(f"  {'mask_lrp (one at a time)':26s} {n1 / wall:8.2f} examples/s  "
          f"{1e3 * cpu / n1:8.1f} CPU ms/example  (compile {comp:.0f} s, {len(shapes)} shapes)")
  if "attnlrp" in rows and "ig50" in rows:
    print(f"  attnlrp / ig-50: {rows['attnlrp']['eps'] / rows['ig50']['eps']:.1f}x examples/s, "
          f"{rows['ig50']['cpu_ms'] / rows['attnlrp']['cpu_ms']:.1f}x less CPU per example")
  if "mask_lrp (batched)" in rows and "mask_lrp (one at a time)" in rows:
    b, o = rows["mask_lrp (batched)"], rows["mask_lrp (one at a time)"]
    print(f"  mask_lrp batched / one at a time: {b['eps'] / o['eps']:.1f}x examples/s, "
          f"{o['cpu_ms'] / b['cpu_ms']:.1f}x less CPU per example")
  print(f"  total {time.time() - t_start:.0f} s")
  print(json.dumps({k: {kk: round(vv, 3) if isinstance(vv, float) else vv
                        for kk, vv in v.items()} for k, v in rows.items()}))


if __name__ == "__main__":
  main()
