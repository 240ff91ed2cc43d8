"""Mask-LRP reproduction: AOPC / LOdds of 8 baselines, AttnLRP, CP-LRP, IG and Mask-LRP masks.

Protocol (Mask-LRP ``evaluate_explanability.py``, project notes Sec. 1.7): gold-label target;
the explanation forward masks the [SEP] key (for every method); examples with T < 20 tokens are
skipped; the top ``round(g T)`` non-special tokens (g = 1/9 .. 1) are replaced by [PAD] with
attention mask 1; AOPC = mean (p - p_k) (higher is better), LOdds = mean log(p_k / p) (lower
is better). Head masks: positional / syntactic heads of the model on train + validation
snippets (spaCy parses). See README.md for the command and the results.
"""

import argparse
import dataclasses
import functools
import json
import os
import sys
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from config import get_config  # noqa: E402  pylint: disable=g-import-not-at-top

import jaxplain  # noqa: E402
from jaxplain import data  # noqa: E402
from jaxplain.api import compiled  # noqa: E402
from jaxplain.attribution.heads import compute_head_masks, plot_head_masks, random_head_mask  # noqa: E402
from jaxplain.attribution.lrp import sep_key_masked  # noqa: E402
from jaxplain.contracts import Batch  # noqa: E402
from jaxplain.metrics import aopc_log_odds, bootstrap_ci  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BASELINES = [("RawAtt", "raw_attention"), ("Rollout", "rollout"), ("Grad", "attention_gradient"),
             ("Att-GradCAM", "att_gradcam"), ("Partial LRP", "partial_lrp"),
             ("Full LRP", "full_lrp"), ("GAE", "gae"), ("AttCAT", "attcat")]


def pad_to(batch: Batch, t: int) -> Batch:
  """Pads (never truncates) a host batch to ``t`` tokens, so every batch has one shape."""
  extra = t - batch.input_ids.shape[1]
  if extra < 0:
    raise ValueError(f"batch is longer ({batch.input_ids.shape[1]}) than {t}")
  p = lambda x, v: np.pad(np.asarray(x), [(0, 0), (0, extra)] + [(0, 0)] * (np.ndim(x) - 2),
                          constant_values=v)
  return Batch(p(batch.input_ids, 0), p(batch.attention_mask, 0), p(batch.token_type_ids, 0),
               p(batch.word_ids, -1), p(batch.offsets, 0), p(batch.sequence_ids, -1))


def methods(cfg, masks, random_mask):
  out = [(label, name, {}) for label, name in BASELINES]
  out += [("AttnLRP", "attnlrp", {}), ("CP-LRP", "cp_lrp", {}),
          ("Attn x grad (Chefer 2021b)", "attention_x_gradient", {}),
          (f"IG-{cfg.ig_steps}", "integrated_gradients", {"steps": cfg.ig_steps})]
  for kind in ("synt", "pos", "synt_pos"):
    out.append((f"Mask-LRP {kind}", "mask_lrp", {"head_mask": masks.mask(kind)}))
  out.append(("Mask-LRP random", "mask_lrp", {"head_mask": random_mask}))
  return out


def evaluate_set(model, name, texts, labels, length, cfg, method_list, log):
  """Per-example AOPC/LOdds and seconds per example of every method on one padded shape."""
  metric = jax.jit(functools.partial(aopc_log_odds, model.forward, min_length=cfg.min_length))
  rows = {label: {"aopc": [], "log_odds": [], "seconds": []} for label, _, _ in method_list}
  key = jax.random.key(cfg.sample_seed)
  b = cfg.batch_size
  for start in range(0, len(texts), b):
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      batch = pad_to(model.encode(texts[start:start + b], max_length=length), length)
    target = jnp.asarray(labels[start:start + b], jnp.int32)
    expl = sep_key_masked(batch.device_part(), model.tokenizer.sep_token_id)
    for label, method, hyper in method_list:
      static = tuple(sorted((k, v) for k, v in hyper.items() if not isinstance(v, np.ndarray)))
      dynamic = {k: jnp.asarray(v) for k, v in hyper.items() if isinstance(v, np.ndarray)}
      fn = compiled(method, static, model.forward)
      if start == 0:  # compile outside the clock
        jax.block_until_ready(fn(model.params, expl, target, key, **dynamic))
      t0 = time.perf_counter()
      scores = jax.block_until_ready(fn(model.params, expl, target, key, **dynamic))
      rows[label]["seconds"].append((time.perf_counter() - t0) / b)
      m = metric(model.params, batch, scores, target)
      rows[label]["aopc"] += np.asarray(m["aopc"]).tolist()
      rows[label]["log_odds"] += np.asarray(m["log_odds"]).tolist()
    log(f"{name}: {min(start + b, len(texts))}/{len(texts)} examples")
  return rows


def summarise(rows, cfg):
  table = {}
  for label, r in rows.items():
    a = bootstrap_ci(r["aopc"], resamples=cfg.bootstrap)
    lo = bootstrap_ci(r["log_odds"], resamples=cfg.bootstrap)
    table[label] = dict(aopc=a.mean, aopc_low=a.low, aopc_high=a.high, log_odds=lo.mean,
                        log_odds_low=lo.low, log_odds_high=lo.high, n=a.n,
                        ms_per_example=1e3 * float(np.mean(r["seconds"])))
  return table


def paired(rows, a, b, key, cfg):
  """Bootstrap interval of the per-example difference a - b (same examples)."""
  x = np.asarray(rows[a][key], np.float64) - np.asarray(rows[b][key], np.float64)
  return bootstrap_ci(x, resamples=cfg.bootstrap)


def markdown(table, title):
  lines = [f"### {title}", "", "| method | AOPC (higher better) [95% CI] | LOdds (lower better) "
           "[95% CI] | n | ms / example |", "|---|---|---|---|---|"]
  for label, r in table.items():
    lines.append(f"| {label} | {r['aopc']:.3f} [{r['aopc_low']:.3f}, {r['aopc_high']:.3f}] | "
                 f"{r['log_odds']:.3f} [{r['log_odds_low']:.3f}, {r['log_odds_high']:.3f}] | "
                 f"{r['n']} | {r['ms_per_example']:.1f} |")
  return "\n".join(lines)


def claim(rows, table, cfg):
  """Mask-LRP (synt_pos) vs each of the 8 baselines: relative change and paired intervals."""
  ours = "Mask-LRP synt_pos"
  out = []
  for label, _ in BASELINES:
    da = paired(rows, ours, label, "aopc", cfg)
    dl = paired(rows, ours, label, "log_odds", cfg)
    base_a, base_l = table[label]["aopc"], table[label]["log_odds"]
    out.append(dict(baseline=label, aopc_rel=(table[ours]["aopc"] - base_a) / abs(base_a),
                    aopc_diff=da.mean, aopc_diff_low=da.low, aopc_diff_high=da.high,
                    log_odds_rel=(base_l - table[ours]["log_odds"]) / abs(base_l),
                    log_odds_diff=dl.mean, log_odds_diff_low=dl.low,
                    log_odds_diff_high=dl.high))
  return out


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  for f in dataclasses.fields(get_config()):
    p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default) if f.default is not None
                   else str, default=None)
  p.add_argument("--out", default=os.path.join(HERE, "results"))
  args = p.parse_args(argv)
  cfg = get_config(**{k: v for k, v in vars(args).items() if k != "out" and v is not None})
  os.makedirs(args.out, exist_ok=True)
  t_start = time.time()
  log = lambda msg: print(f"[{time.time() - t_start:7.1f}s] {msg}", flush=True)
  if cfg.model == "base":  # smoke runs: MiniLM with a random classifier, before fine-tuning
    from jaxplain.models import default  # pylint: disable=g-import-not-at-top
    config, pure, tok = default.load_base()
    model = default._to_model(config, pure, tok, default.LABELS, "base (untuned)")  # pylint: disable=protected-access
  else:
    model = (jaxplain.default_model() if cfg.model is None
             else jaxplain.load_model(cfg.model, head=cfg.head))
  log(f"model {model.name}")
  rt = data.read_rotten_tomatoes(os.path.join(cfg.data_dir, "rotten_tomatoes_corpus_full.csv.bz2"))
  train, val, test = data.split_by_movie(rt, cfg.split_seed)
  pool = list(train.text) + list(val.text)
  pick = np.random.default_rng(cfg.sample_seed).permutation(len(pool))[:cfg.head_texts]
  masks = compute_head_masks(model, [pool[i] for i in pick], batch_size=32, max_length=128)
  with open(os.path.join(args.out, "head_masks.json"), "w", encoding="utf-8") as f:
    f.write(masks.to_json())
  plot_head_masks(masks).savefig(os.path.join(args.out, "head_masks.png"), dpi=150)
  count = int(masks.synt_pos.sum())
  rand = random_head_mask(jax.random.key(cfg.sample_seed), *masks.synt_pos.shape, count)
  log(f"heads: {int(masks.pos.sum())} positional, {int(masks.synt.sum())} syntactic, "
      f"{count} union of {masks.synt_pos.size}")
  method_list = methods(cfg, masks, rand)
  # RT test snippets, 20 <= T <= rt_length tokens
  lengths = np.array([len(x) for x in model.tokenizer(list(test.text))["input_ids"]])
  ok = np.where((lengths >= cfg.min_length) & (lengths <= cfg.rt_length))[0]
  rng = np.random.default_rng(cfg.sample_seed)
  sel = np.sort(rng.permutation(ok)[:cfg.rt_examples])
  log(f"RT test: {len(test)} snippets, {len(ok)} with 20 <= T <= {cfg.rt_length}; using "
      f"{len(sel)}")
  results = {"config": dataclasses.asdict(cfg), "heads": dict(
      positional=int(masks.pos.sum()), syntactic=int(masks.synt.sum()), union=count,
      total=int(masks.synt_pos.size), baseline=masks.baseline)}
  sets = [("rt_test", [test.text[i] for i in sel], [int(test.label[i]) for i in sel],
           cfg.rt_length)]
  if cfg.review_examples:
    rev = data.read_pang_lee_reviews(os.path.join(cfg.data_dir,
                                                  "pang_lee_polarity_reviews.csv.bz2"))
    ridx = np.sort(rng.permutation(len(rev))[:cfg.review_examples])
    sets.append(("pang_lee_reviews", [rev.text[i] for i in ridx], [int(rev.label[i]) for i in
                                                                   ridx], cfg.review_length))
  md = [f"Model: {model.name}. Head masks from {masks.texts} train+val snippets: "
        f"{results['heads']}.", ""]
  for name, texts, labels, length in sets:
    rows = evaluate_set(model, name, texts, labels, length, cfg, method_list, log)
    table = summarise(rows, cfg)
    results[name] = dict(table=table, claim=claim(rows, table, cfg), per_example=rows)
    md += [markdown(table, f"{name} ({len(texts)} examples, T <= {length})"), ""]
    md += ["Mask-LRP synt_pos vs each baseline (relative improvement; paired 95% CI of the "
           "per-example difference):", "", "| baseline | AOPC rel. | AOPC diff [CI] | "
           "LOdds rel. | LOdds diff [CI] |", "|---|---|---|---|---|"]
    for c in results[name]["claim"]:
      md.append(f"| {c['baseline']} | {100 * c['aopc_rel']:+.1f}% | {c['aopc_diff']:+.3f} "
                f"[{c['aopc_diff_low']:+.3f}, {c['aopc_diff_high']:+.3f}] | "
                f"{100 * c['log_odds_rel']:+.1f}% | {c['log_odds_diff']:+.3f} "
                f"[{c['log_odds_diff_low']:+.3f}, {c['log_odds_diff_high']:+.3f}] |")
    md.append("")
    with open(os.path.join(args.out, "results.json"), "w", encoding="utf-8") as f:
      json.dump(results, f, indent=1)
    with open(os.path.join(args.out, "results.md"), "w", encoding="utf-8") as f:
      f.write("\n".join(md))
    log(f"{name} done")
  print("\n".join(md))


if __name__ == "__main__":
  main()
