"""Mask-LRP reproduction: AOPC / LOdds of 8 baselines, AttnLRP, CP-LRP, IG and Mask-LRP masks.

Protocol (Mask-LRP ``evaluate_explanability.py``, project notes Sec. 1.7): gold-label target;
the explanation forward masks the [SEP] key (for every method); examples with T < 20 tokens are
skipped; the top ``round(g T)`` non-special tokens (g = 1/9 .. 1) are replaced by [PAD] with
attention mask 1; AOPC = mean (p - p_k) (higher is better), LOdds = mean log(p_k / p) (lower
is better). Head masks: positional / syntactic heads of the model on train + validation
snippets (spaCy parses), from ``jaxplain heads`` (``--head-masks``) or computed here.

Writes ``table.md`` and ``table.json`` (summary, paired comparisons, per-example values) to
``--out`` (default ``experiments/mask_lrp/results``).
"""

import argparse
import dataclasses
import functools
import json
import os
import platform
import sys
import time
import typing
import warnings

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from config import Config, get_config  # noqa: E402  pylint: disable=g-import-not-at-top

import jaxplain  # noqa: E402
from jaxplain import data  # noqa: E402
from jaxplain.api import compiled  # noqa: E402
from jaxplain.attribution.heads import (HeadMasks, compute_head_masks, plot_head_masks,  # noqa: E402
                                        random_head_mask)
from jaxplain.attribution.lrp import sep_key_masked  # noqa: E402
from jaxplain.contracts import Batch  # noqa: E402
from jaxplain.metrics import aopc_log_odds, bootstrap_ci  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BASELINES = [("RawAtt", "raw_attention"), ("Rollout", "rollout"), ("Grad", "attention_gradient"),
             ("Att-GradCAM", "att_gradcam"), ("Partial LRP", "partial_lrp"),
             ("Full LRP", "full_lrp"), ("GAE", "gae"), ("AttCAT", "attcat")]
OURS = "Mask-LRP synt_pos"


def pad_to(batch: Batch, t: int) -> Batch:
  """Pads (never truncates) a host batch to ``t`` tokens, so every batch has one shape."""
  extra = t - batch.input_ids.shape[1]
  if extra < 0:
    raise ValueError(f"batch is longer ({batch.input_ids.shape[1]}) than {t}")
  p = lambda x, v: np.pad(np.asarray(x), [(0, 0), (0, extra)] + [(0, 0)] * (np.ndim(x) - 2),
                          constant_values=v)
  return Batch(p(batch.input_ids, 0), p(batch.attention_mask, 0), p(batch.token_type_ids, 0),
               p(batch.word_ids, -1), p(batch.offsets, 0), p(batch.sequence_ids, -1))


def fill_rows(batch: Batch, b: int) -> Batch:
  """Repeats the last row so the batch has ``b`` rows (one compiled shape; extras dropped)."""
  n = batch.input_ids.shape[0]
  take = np.concatenate([np.arange(n), np.full(b - n, n - 1)])
  return jax.tree.map(lambda x: np.asarray(x)[take], batch)


def methods(cfg, masks, random_mask, ig: bool = True):
  out = [(label, name, {}) for label, name in BASELINES]
  out += [("AttnLRP", "attnlrp", {}), ("CP-LRP", "cp_lrp", {}),
          ("Attn x grad (Chefer 2021b)", "attention_x_gradient", {})]
  if ig:
    out.append((f"IG-{cfg.ig_steps}", "integrated_gradients",
                {"steps": cfg.ig_steps, "chunk_size": cfg.ig_chunk}))
  for kind in ("synt", "pos", "synt_pos"):
    out.append((f"Mask-LRP {kind}", "mask_lrp", {"head_mask": masks.mask(kind)}))
  out.append(("Mask-LRP random", "mask_lrp", {"head_mask": random_mask}))
  if cfg.only:  # smoke runs: a subset of the methods
    keep = cfg.only.split(",")
    out = [m for m in out if m[0] in keep]
  return out


def encode_set(model, texts, labels, length, b):
  """``[(indices, host Batch [b, length], target [b])]`` in the given (random) order."""
  out = []
  for s in range(0, len(texts), b):
    chunk = list(range(s, min(s + b, len(texts))))
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      enc = model.encode([texts[i] for i in chunk], max_length=length)
    batch = fill_rows(pad_to(enc, length), b)
    target = np.asarray([labels[i] for i in chunk] + [labels[chunk[-1]]] * (b - len(chunk)),
                        np.int32)
    out.append((chunk, batch, target))
  return out


def evaluate_set(model, name, texts, labels, length, b, cfg, method_list, minutes, log):
  """Per-example AOPC/LOdds, seconds per example and compile seconds of every method.

  Every method is compiled first (outside the clock). Then batches run in the given (random)
  order, each through every method, until ``minutes`` of wall time (compiles included) are
  used: all methods see the same examples, and a run cut short is still a random sample.
  """
  t_set = time.time()
  metric = jax.jit(functools.partial(aopc_log_odds, model.forward, min_length=cfg.min_length))
  batches = encode_set(model, texts, labels, length, b)
  sep = model.tokenizer.sep_token_id
  key = jax.random.key(cfg.sample_seed)
  exes, rows = {}, {}
  _, batch0, target0 = batches[0]
  expl0 = sep_key_masked(jax.device_put(batch0.device_part()), sep)
  for label, method, hyper in method_list:
    static = tuple(sorted((k, v) for k, v in hyper.items() if not isinstance(v, np.ndarray)))
    dynamic = {k: jnp.asarray(v) for k, v in hyper.items() if isinstance(v, np.ndarray)}
    t0 = time.perf_counter()
    exe = compiled(method, static, model.forward).lower(
        model.params, expl0, jnp.asarray(target0), key, **dynamic).compile()
    exes[label] = (exe, dynamic)
    rows[label] = {"aopc": [], "log_odds": [], "seconds": 0.0,
                   "compile_seconds": time.perf_counter() - t0}
    log(f"{name}: compiled {label} ({rows[label]['compile_seconds']:.0f} s)")
  done = []
  for idx, batch, target in batches:
    if done and time.time() - t_set > 60 * minutes:
      log(f"{name}: time budget of {minutes} min used; stopping at {len(done)} examples")
      break
    expl = sep_key_masked(jax.device_put(batch.device_part()), sep)
    tgt = jnp.asarray(target)
    full = jax.device_put(batch)
    k = len(idx)
    for label, (exe, dynamic) in exes.items():
      t0 = time.perf_counter()
      scores = jax.block_until_ready(exe(model.params, expl, tgt, key, **dynamic))
      rows[label]["seconds"] += time.perf_counter() - t0
      m = metric(model.params, full, scores, tgt)
      rows[label]["aopc"] += np.asarray(m["aopc"])[:k].tolist()
      rows[label]["log_odds"] += np.asarray(m["log_odds"])[:k].tolist()
    done += idx
    log(f"{name}: {len(done)}/{len(texts)} examples; " + ", ".join(
        f"{lab.replace('Mask-LRP ', 'M-')} {np.nanmean(r['aopc']):.2f}"
        for lab, r in rows.items()))
  for r in rows.values():
    r["seconds_per_example"] = r.pop("seconds") / max(len(done), 1)
  return rows, done


def summarise(rows, cfg):
  table = {}
  for label, r in rows.items():
    a = bootstrap_ci(r["aopc"], resamples=cfg.bootstrap)
    lo = bootstrap_ci(r["log_odds"], resamples=cfg.bootstrap)
    table[label] = dict(aopc=a.mean, aopc_low=a.low, aopc_high=a.high, log_odds=lo.mean,
                        log_odds_low=lo.low, log_odds_high=lo.high, n=a.n,
                        ms_per_example=1e3 * r["seconds_per_example"],
                        compile_seconds=r["compile_seconds"])
  return table


def paired(rows, a, b, key, cfg):
  """Bootstrap interval of the per-example difference a - b (same examples)."""
  x = np.asarray(rows[a][key], np.float64) - np.asarray(rows[b][key], np.float64)
  return bootstrap_ci(x, resamples=cfg.bootstrap)


def markdown(table, title):
  lines = [f"#### {title}", "", "| method | AOPC (higher better) [95% CI] | LOdds (lower better) "
           "[95% CI] | n | ms / example | compile s |", "|---|---|---|---|---|---|"]
  for label, r in table.items():
    lines.append(f"| {label} | {r['aopc']:.3f} [{r['aopc_low']:.3f}, {r['aopc_high']:.3f}] | "
                 f"{r['log_odds']:.3f} [{r['log_odds_low']:.3f}, {r['log_odds_high']:.3f}] | "
                 f"{r['n']} | {r['ms_per_example']:.1f} | {r['compile_seconds']:.0f} |")
  return "\n".join(lines)


def claim(rows, table, cfg, ours=OURS):
  """``ours`` vs each of the 8 baselines: relative change and paired intervals.

  Relative improvement: AOPC ``(ours - base) / |base|``; LOdds ``(base - ours) / |base|`` (so
  positive is better for both). Significant: the paired 95% interval excludes 0.
  """
  out = []
  for label, _ in BASELINES:
    if label not in rows or ours not in rows:
      continue
    da = paired(rows, ours, label, "aopc", cfg)
    dl = paired(rows, ours, label, "log_odds", cfg)
    base_a, base_l = table[label]["aopc"], table[label]["log_odds"]
    out.append(dict(baseline=label, aopc_rel=(table[ours]["aopc"] - base_a) / abs(base_a),
                    aopc_diff=da.mean, aopc_diff_low=da.low, aopc_diff_high=da.high,
                    log_odds_rel=(base_l - table[ours]["log_odds"]) / abs(base_l),
                    log_odds_diff=dl.mean, log_odds_diff_low=dl.low,
                    log_odds_diff_high=dl.high))
  return out


def verdict(claims):
  """One line per data set: how many baselines Mask-LRP beats, significantly, on each metric."""
  better_a = sum(c["aopc_diff_low"] > 0 for c in claims)
  worse_a = sum(c["aopc_diff_high"] < 0 for c in claims)
  better_l = sum(c["log_odds_diff_high"] < 0 for c in claims)
  worse_l = sum(c["log_odds_diff_low"] > 0 for c in claims)
  in_range = sum(c["aopc_rel"] >= 0.03 and c["log_odds_rel"] >= 0.03 for c in claims)
  return dict(aopc_better=better_a, aopc_worse=worse_a, log_odds_better=better_l,
              log_odds_worse=worse_l, improves_3pct_both=in_range, baselines=len(claims))


def claim_markdown(claims, ours=OURS):
  md = [f"{ours} vs each baseline (relative improvement, positive = better for both metrics; "
        "paired 95% bootstrap CI of the per-example difference ours - baseline):", "",
        "| baseline | AOPC rel. | AOPC diff [CI] | LOdds rel. | LOdds diff [CI] |",
        "|---|---|---|---|---|"]
  for c in claims:
    md.append(f"| {c['baseline']} | {100 * c['aopc_rel']:+.1f}% | {c['aopc_diff']:+.3f} "
              f"[{c['aopc_diff_low']:+.3f}, {c['aopc_diff_high']:+.3f}] | "
              f"{100 * c['log_odds_rel']:+.1f}% | {c['log_odds_diff']:+.3f} "
              f"[{c['log_odds_diff_low']:+.3f}, {c['log_odds_diff_high']:+.3f}] |")
  return md


def _parse_args(argv):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  hints = typing.get_type_hints(Config)
  for f in dataclasses.fields(Config):
    kind = hints[f.name]
    if kind is bool:
      p.add_argument("--" + f.name.replace("_", "-"), default=None,
                     type=lambda s: s.lower() in ("1", "true", "yes"))
    else:
      base = int if "int" in str(kind) else float if "float" in str(kind) else str
      p.add_argument("--" + f.name.replace("_", "-"), type=base, default=None)
  p.add_argument("--out", default=os.path.join(HERE, "results"))
  args = p.parse_args(argv)
  cfg = get_config(**{k: v for k, v in vars(args).items() if k != "out" and v is not None})
  return cfg, args.out


def load(cfg):
  if cfg.model == "base":  # smoke runs: MiniLM with a random classifier, before fine-tuning
    from jaxplain.models import default  # pylint: disable=g-import-not-at-top
    config, pure, tok = default.load_base()
    return default._to_model(config, pure, tok, default.LABELS, "base (untuned)"), 0  # pylint: disable=protected-access
  if cfg.model is None:
    from jaxplain.models import default  # pylint: disable=g-import-not-at-top
    return jaxplain.default_model(), default.split_seed()
  return jaxplain.load_model(cfg.model, head=cfg.head), 0


def main(argv=None):
  cfg, out = _parse_args(argv)
  os.makedirs(out, exist_ok=True)
  t_start = time.time()
  log = lambda msg: print(f"[{time.time() - t_start:7.1f}s] {msg}", flush=True)
  model, seed = load(cfg)
  seed = seed if cfg.split_seed is None else cfg.split_seed
  log(f"model {model.name}; movie split seed {seed}")
  rt = data.read_rotten_tomatoes(os.path.join(cfg.data_dir, "rotten_tomatoes_corpus_full.csv.bz2"))
  train, val, test = data.split_by_movie(rt, seed)
  if cfg.head_masks:
    masks = HeadMasks.load(cfg.head_masks, model)
    log(f"head masks from {cfg.head_masks}")
  else:
    pool = list(train.text) + list(val.text)
    pick = np.random.default_rng(cfg.sample_seed).permutation(len(pool))[:cfg.head_texts]
    masks = compute_head_masks(model, [pool[i] for i in pick], batch_size=32, max_length=128)
    with open(os.path.join(out, "head_masks.json"), "w", encoding="utf-8") as f:
      f.write(masks.to_json())
    plot_head_masks(masks).savefig(os.path.join(out, "head_masks.png"), dpi=150)
  count = int(masks.synt_pos.sum())
  rand = random_head_mask(jax.random.key(cfg.sample_seed), *masks.synt_pos.shape, count)
  heads = dict(positional=[f"{l}.{h}" for l, h in zip(*masks.pos.nonzero())],
               syntactic=[f"{l}.{h}" for l, h in zip(*masks.synt.nonzero())],
               random=[f"{l}.{h}" for l, h in zip(*rand.nonzero())], union=count,
               total=int(masks.synt_pos.size), texts=masks.texts, baseline=masks.baseline,
               dependents=masks.count)
  log(f"heads: {len(heads['positional'])} positional {heads['positional']}, "
      f"{len(heads['syntactic'])} syntactic {heads['syntactic']}, {count} union of "
      f"{masks.synt_pos.size}; random {heads['random']}")
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    lengths = np.array([len(x) for x in model.tokenizer(list(test.text))["input_ids"]])
  ok = np.where((lengths >= cfg.min_length) & (lengths <= cfg.rt_length))[0]
  rng = np.random.default_rng(cfg.sample_seed)
  sel = rng.permutation(ok)[:cfg.rt_examples]  # random order: a budget cut stays random
  log(f"RT test: {len(test)} snippets, {int((lengths >= cfg.min_length).sum())} with T >= "
      f"{cfg.min_length}, {len(ok)} of them with T <= {cfg.rt_length}; up to {len(sel)}")
  device = jax.devices()[0]
  results = {"config": dataclasses.asdict(cfg), "model": model.name, "split_seed": seed,
             "heads": heads, "device": f"{device.platform} ({device.device_kind}), "
             f"{os.cpu_count()} cores visible, {platform.processor() or platform.machine()}",
             "sets": {}}
  if cfg.model is None:
    import hashlib  # pylint: disable=g-import-not-at-top
    from jaxplain.models import default  # pylint: disable=g-import-not-at-top
    with open(os.path.join(default.ADAPTER_DIR, "adapter.safetensors"), "rb") as f:
      results["adapter_sha256"] = hashlib.sha256(f.read()).hexdigest()
  sets = [("rt_test", f"Rotten Tomatoes test split (movie split seed {seed}): random snippets "
           f"of the {len(ok)} with {cfg.min_length} <= T <= {cfg.rt_length}, padded to "
           f"{cfg.rt_length}, batch {cfg.batch_size}",
           [test.text[i] for i in sel], [int(test.label[i]) for i in sel], cfg.rt_length,
           cfg.batch_size, True, cfg.rt_minutes)]
  if cfg.review_examples:
    rev = data.read_pang_lee_reviews(os.path.join(cfg.data_dir,
                                                  "pang_lee_polarity_reviews.csv.bz2"))
    ridx = rng.permutation(len(rev))[:cfg.review_examples]
    sets.append(("pang_lee_reviews", f"Pang & Lee reviews: random reviews of {len(rev)}, "
                 f"truncated to {cfg.review_length} tokens, batch {cfg.review_batch_size}"
                 + ("" if cfg.review_ig else ", no IG"),
                 [rev.text[i] for i in ridx], [int(rev.label[i]) for i in ridx],
                 cfg.review_length, cfg.review_batch_size, cfg.review_ig, cfg.review_minutes))
  for name, desc, texts, labels, length, b, ig, minutes in sets:
    method_list = methods(cfg, masks, rand, ig=ig)
    rows, done = evaluate_set(model, name, texts, labels, length, b, cfg, method_list, minutes,
                              log)
    desc = f"{desc}: n = {len(done)} ({minutes} min budget)"
    table = summarise(rows, cfg)
    claims = claim(rows, table, cfg)
    results["sets"][name] = dict(description=desc, table=table, claim=claims,
                                 verdict=verdict(claims), per_example=rows,
                                 labels=[labels[i] for i in done],
                                 texts=[texts[i] for i in done])
    with open(os.path.join(out, "table.json"), "w", encoding="utf-8") as f:
      json.dump(results, f, indent=1)
    log(f"{name} done")
  results["seconds"] = time.time() - t_start
  with open(os.path.join(out, "table.json"), "w", encoding="utf-8") as f:
    json.dump(results, f, indent=1)
  cmd = "python experiments/mask_lrp.py " + " ".join(sys.argv[1:])
  md = [f"Command: `{cmd}`", "", f"Model: {model.name}. Head masks: {heads['texts']} train+val "
        f"snippets; positional {heads['positional']}, syntactic {heads['syntactic']}, union "
        f"{count} of {heads['total']}; random ({count} heads) {heads['random']}.", ""]
  for name, r in results["sets"].items():
    md += [markdown(r["table"], r["description"]), ""] + claim_markdown(r["claim"]) + [""]
    v = r["verdict"]
    md += [f"Verdict ({name}): Mask-LRP synt_pos is significantly better than "
           f"{v['aopc_better']}/{v['baselines']} baselines on AOPC (worse than "
           f"{v['aopc_worse']}) and {v['log_odds_better']}/{v['baselines']} on LOdds (worse than "
           f"{v['log_odds_worse']}); it improves both metrics by >= 3% over "
           f"{v['improves_3pct_both']}/{v['baselines']}.", ""]
  md.append(f"Total wall time {results['seconds'] / 60:.1f} min on {results['device']}.")
  with open(os.path.join(out, "table.md"), "w", encoding="utf-8") as f:
    f.write("\n".join(md))
  print("\n".join(md))


if __name__ == "__main__":
  main()
