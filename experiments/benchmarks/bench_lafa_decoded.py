"""LAFA and decoded layer saliency: examples/s of each against its base method, same run.

    python experiments/benchmarks/bench_lafa_decoded.py [--n 64] [--pool 128] [--batch 32]
        [--data /work/shared/data/rotten_tomatoes_corpus_full.csv.bz2]

Model: ``jaxplain.default_model()`` (MiniLM + LoRA sentiment adapter). Queries: the first ``--n``
snippets of the test split the default model was not trained on
(``split_by_movie(..., jaxplain.models.default.split_seed())``); LAFA's reference pool: the
first ``--pool`` snippets of the training split. Both are sorted by token length and cut into
batches of ``--batch``, padded to the model's length buckets; every method sees the same batches
(with ``word_ids``, so special tokens get no score where a method says so), is jitted once per
padded shape, compiled on an untimed first pass, and timed on a second pass over all queries.

- LAFA (``jaxplain.attribution.lafa``, indicator kernel, 10 neighbours, lambda 0.44, neighbours
  from hidden layer 2, cut-off at the 0.95 quantile of sampled pool distances, as
  ``experiments/lafa.py``) against its base method alone (``lafa.base_scores``: ``gradient_sq``,
  the paper's SimpleGrad, and ``smoothgrad_sq`` with 10 samples). The pool's index
  (``build_index``: pooled hidden states and the pool's base scores) is built once and timed
  apart; the table gives LAFA's per-query rate without it and with it amortised over the
  ``--n`` queries.
- Decoded layer saliency (``decoded_layer_saliency``, tied-embedding decoder, tau 10) at the
  automatic layer (all layers decoded, per-example choice) and at a fixed layer (``--layer``),
  against ``layer_gradient_x_activation`` (every layer, one backward pass: its Grad-CAM input)
  and ``gradient_x_input`` (the plain gradient baseline).

CPU only as written; on a machine shared with other jobs compare the ratios, which are measured
in the same run, and not the absolute rates across runs.
"""

import argparse
import functools
import importlib
import os
import sys
import time

import jax
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

import jaxplain  # noqa: E402
from jaxplain.api import compiled  # noqa: E402
from jaxplain.contracts import Batch  # noqa: E402
from jaxplain.data import read_rotten_tomatoes, split_by_movie  # noqa: E402
from jaxplain.models.default import split_seed  # noqa: E402

# the package re-exports the function ``lafa`` under the module's name
lafa_lib = importlib.import_module("jaxplain.attribution.lafa")


def sorted_batches(model, texts, size):
  """Texts sorted by token length, ``size`` per batch, as Batches with ``word_ids``."""
  lengths = [len(ids) for ids in model.tokenizer(texts)["input_ids"]]
  order = np.argsort(lengths, kind="stable")
  out = []
  for s in range(0, len(order), size):
    b = model.encode([texts[j] for j in order[s:s + size]], max_length=512)
    out.append(Batch(b.input_ids, b.attention_mask, b.token_type_ids, b.word_ids))
  return out, np.asarray(lengths)


def timed_passes(fn, batches):
  """Untimed first pass (compiles every shape), then ``(wall s, CPU s)`` of a second pass."""
  for i, b in enumerate(batches):
    jax.block_until_ready(fn(i, b))
  t, c = time.perf_counter(), time.process_time()
  for i, b in enumerate(batches):
    jax.block_until_ready(fn(i, b))
  return time.perf_counter() - t, time.process_time() - c


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--data", default="/work/shared/data/rotten_tomatoes_corpus_full.csv.bz2")
  p.add_argument("--n", type=int, default=64, help="query snippets (test split)")
  p.add_argument("--pool", type=int, default=128, help="LAFA reference pool (train split)")
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--samples", type=int, default=10, help="SmoothGrad samples of the LAFA base")
  p.add_argument("--layer", type=int, default=3, help="fixed layer for decoded saliency")
  p.add_argument("--bases", default="gradient_sq,smoothgrad_sq")
  args = p.parse_args()

  started = time.time()
  print(f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} | jax {jax.__version__} "
        f"{jax.devices()} | cores {os.cpu_count()} | load average {os.getloadavg()[0]:.1f}")
  model = jaxplain.default_model()
  fwd, params = model.forward, model.params
  train, _, test = split_by_movie(read_rotten_tomatoes(args.data), split_seed())
  queries, q_len = sorted_batches(model, test.text.tolist()[:args.n], args.batch)
  pool, p_len = sorted_batches(model, train.text.tolist()[:args.pool], args.batch)
  n = int(sum(len(b) for b in queries))
  print(f"model: {model.name}\nqueries: {n} test-split snippets, {len(queries)} batches of <= "
        f"{args.batch}, padded lengths {sorted({b.input_ids.shape[1] for b in queries})}, "
        f"mean {q_len.mean():.1f} real tokens; pool: {len(p_len)} train-split snippets",
        flush=True)
  key = jax.random.key(0)
  rows = []  # (group, method, wall s, CPU s, extra note)

  def row(group, name, seconds, note=""):
    rows.append((group, name, seconds[0], seconds[1], note))
    print(f"  {name}: {n / seconds[0]:.2f} ex/s ({seconds[0]:.1f} s, CPU {seconds[1]:.1f} s) "
          f"{note}", flush=True)

  # --- LAFA against its base method -------------------------------------------------------------
  for base in args.bases.split(","):
    hyper = dict(samples=args.samples, stdev=0.15) if base == "smoothgrad_sq" else {}
    label = {"gradient_sq": "SimpleGrad (gradient_sq)", "input_gradient_sq":
             "InputGrad (input_gradient_sq)", "smoothgrad_sq":
             f"SmoothGrad-{args.samples} (smoothgrad_sq)"}[base]
    group = f"LAFA, base {label}"
    print(f"[{group}]", flush=True)
    base_fn = jax.jit(functools.partial(lafa_lib.base_scores, fwd, base=base, **hyper))
    row(group, f"base: {label}", timed_passes(
        lambda i, b: base_fn(params, b, None, key=jax.random.fold_in(key, i)), queries))
    score_fn = jax.jit(lambda prm, b, tg, k: lafa_lib.base_scores(fwd, prm, b, tg, base=base,
                                                                 key=k, **hyper))
    build = lambda: lafa_lib.build_index(fwd, params, pool, layer=2, base=base, quantile=0.95,
                                         key=key, score_fn=score_fn)
    jax.block_until_ready(build().scores)  # compile
    t, c = time.perf_counter(), time.process_time()
    index = build()
    jax.block_until_ready(index.scores)
    build_s = (time.perf_counter() - t, time.process_time() - c)
    print(f"  index build ({len(p_len)} pool texts, once): {build_s[0]:.1f} s", flush=True)
    static = tuple(sorted(dict(neighbours=10, lam=0.44, kernel="indicator", base=base,
                               **hyper).items()))
    lafa_fn = compiled("lafa", static, fwd)
    lafa_s = timed_passes(
        lambda i, b: lafa_fn(params, b, None, jax.random.fold_in(key, i), index=index), queries)
    row(group, "LAFA (queries only)", lafa_s)
    row(group, f"LAFA + index build amortised over {n} queries",
        (lafa_s[0] + build_s[0], lafa_s[1] + build_s[1]))

  # --- Decoded layer saliency against the gradient family ---------------------------------------
  group = "decoded layer saliency"
  print(f"[{group}]", flush=True)
  for name, method, static in (
      ("gradient_x_input", "gradient_x_input", ()),
      ("layer_gradient_x_activation (all layers)", "layer_gradient_x_activation", ()),
      ("decoded_layer_saliency (auto layer)", "decoded_layer_saliency", (("tau", 10),)),
      (f"decoded_layer_saliency (layer {args.layer})", "decoded_layer_saliency",
       (("layer", args.layer), ("tau", 10)))):
    fn = compiled(method, static, fwd)
    row(group, name, timed_passes(lambda i, b: fn(params, b, None, key), queries))

  # --- Table --------------------------------------------------------------------------------------
  wall_of = {(g, m): (w, c) for g, m, w, c, _ in rows}
  gxi = wall_of[("decoded layer saliency", "gradient_x_input")]
  print("\n| group | method | examples/s | CPU s | speed vs its base | (by CPU s) | "
        "speed vs gradient_x_input | (by CPU s) |")
  print("|---|---|---:|---:|---:|---:|---:|---:|")
  for group, name, wall, cpu, _ in rows:
    if group.startswith("LAFA"):
      base = next(v for (g, m), v in wall_of.items() if g == group and m.startswith("base:"))
    else:
      base = wall_of[(group, "layer_gradient_x_activation (all layers)")]
    print(f"| {group} | {name} | {n / wall:.2f} | {cpu:.1f} | {base[0] / wall:.2f}x | "
          f"{base[1] / cpu:.2f}x | {gxi[0] / wall:.2f}x | {gxi[1] / cpu:.2f}x |")
  print("\nspeed vs X = time of X / time of the method (1.00x: as fast; 0.50x: half as fast), "
        "from wall time and from process CPU time. Base of a LAFA row: the same base method "
        "alone; of a decoded-saliency row: layer_gradient_x_activation.")
  print(f"\nqueries N={n}, pool {len(p_len)}; wall time {time.time() - started:.0f} s; load "
        f"average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
  main()
