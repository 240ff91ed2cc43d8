"""The explainer leaderboard: every jaxplain method on the default model, Rotten Tomatoes test split.

    python experiments/leaderboard.py --data-dir ../shared/data --limit 100 --ig-steps 20

For each method of ``jaxplain.methods()`` (those needing trained artefacts are skipped and
listed; LAFA gets a neighbour index over training texts), on the first ``--limit`` examples of
the default model's held-out test split (``split_by_movie`` with the seed in the model's
``adapter.json``): ERASER comprehensiveness/sufficiency, deletion (MoRF/LeRF) and insertion
curves and areas, and plausibility against the VADER lexicon proxy, each with a 95% bootstrap
interval, plus warm attribution seconds per example on this machine. The target is the
predicted class. Writes ``experiments/results/leaderboard.{md,json}`` and ``report.html`` (the
``jaxplain report`` page).

ERASER and plausibility come from :func:`jaxplain.metrics.evaluate`; deletion/insertion run
through :func:`jaxplain.metrics.run_protocols_compact` on the same scores so their curves are kept.
The defaults (100 examples, 20 IG steps, 10 noise samples, 6 curve levels) keep the whole run
to about 25 minutes on 2 shared CPU cores; a larger machine can pass ``--limit 0`` (all).
"""

import argparse
import dataclasses
import functools
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxplain
from jaxplain import Batch
from jaxplain.data import LABELS, read_rotten_tomatoes, split_by_movie
from jaxplain.metrics import deletion_protocol, evaluate, insertion_protocol, run_protocols_compact
from jaxplain.metrics.evaluate import HIGHER_IS_BETTER
from jaxplain.viz.report import render_report
from jaxplain.viz.report_data import Curve, ReportData, ReportExample

HERE = os.path.dirname(os.path.abspath(__file__))
NEEDS_ARTEFACT = {
    "attention_pooling": "needs a trained selector (jaxplain.attribution.selectors)",
    "l2x": "needs a trained selector (jaxplain.attribution.selectors)",
    "diffmask": "needs trained gates (jaxplain diffmask train); the sentiment gates trained here "
                "collapsed (experiments/diffmask_sentiment/README.md)",
}
EVALUATE_METRICS = ("comprehensiveness", "sufficiency")
KEEP_PLAUSIBILITY = ("lexicon_proxy/auprc", "lexicon_proxy/f1")


def hyper_for(name: str, args) -> dict:
  """Per-method hyperparameters: fewer IG steps / noise samples than the defaults (runtime)."""
  if name in ("integrated_gradients", "layer_integrated_gradients"):
    return {"steps": args.ig_steps}
  if name in ("smoothgrad", "smoothgrad_sq", "vargrad"):
    return {"samples": args.samples}
  return {}


class Recorder:
  """A ``(batch, target) -> scores`` callable for ``evaluate`` that also keeps what the report needs.

  ``evaluate`` walks the texts in order, ``batch_size`` at a time, padding the last batch with
  repeats; the cursor maps each batch row back to its example. The first call at each padded
  length includes jit compilation: it is timed apart (``compile_seconds``), and
  :meth:`seconds_per_example` is the warm time of the other calls.
  """

  def __init__(self, model, name, hyper, texts, curve_fn, arrays=None):
    self.model, self.name, self.hyper, self.texts = model, name, hyper, texts
    self.arrays = arrays or {}  # array hyperparameters (a LAFA index): not printed
    self.curve_fn = curve_fn
    self.cursor, self.compile_seconds, self.warm_seconds, self.warm_examples = 0, 0.0, 0.0, 0
    self.shapes = set()
    self.words, self.curves, self.areas = {}, {}, {}

  def seconds_per_example(self) -> float:
    """Warm seconds per example; with no warm call (one batch per shape), the first calls'."""
    if self.warm_examples:
      return self.warm_seconds / self.warm_examples
    return self.compile_seconds / max(1, self.cursor)

  def __call__(self, batch, target):
    t0 = time.perf_counter()
    att = jaxplain.attribute(self.model, batch, self.name, target=np.asarray(target), seed=0,
                             **self.hyper, **self.arrays)
    jax.block_until_ready(att.scores)
    spent = time.perf_counter() - t0
    shape = tuple(np.shape(batch.input_ids))
    if shape in self.shapes:
      self.warm_seconds += spent
      self.warm_examples += shape[0]
    else:
      self.shapes.add(shape)
      self.compile_seconds += spent
    rows = range(self.cursor, min(self.cursor + len(att), len(self.texts)))
    self.cursor += len(att)
    with_words = Batch(*(jnp.asarray(x) for x in (batch.input_ids, batch.attention_mask,
                                                  batch.token_type_ids, batch.word_ids)))
    out = jax.device_get(self.curve_fn(self.model.params, with_words, jnp.asarray(att.scores),
                                       jnp.asarray(target)))
    for j, i in enumerate(rows):
      for k, v in out.items():
        if k.endswith("_curve"):
          self.curves.setdefault(k, {})[i] = np.asarray(v)[:, j]
        elif np.ndim(v) == 1 and k not in ("target", "probability"):
          self.areas.setdefault(k, {})[i] = float(np.asarray(v)[j])
      att.texts[j] = self.texts[i]  # offsets index the original text
      self.words[i] = att.word_scores(j)
    print(f"  {self.name}: {shape} {spent:.1f} s", flush=True)
    return att.scores


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--data-dir", default=os.path.join(HERE, "..", "..", "shared", "data"))
  p.add_argument("--limit", type=int, default=100, help="test examples (first N of the split)")
  p.add_argument("--max-tokens", type=int, default=None,
                 help="keep only test examples of at most this many tokens (before --limit)")
  p.add_argument("--ig-steps", type=int, default=20, help="IG / layer IG steps (default 50)")
  p.add_argument("--samples", type=int, default=10, help="SmoothGrad/VarGrad noise samples")
  p.add_argument("--batch-size", type=int, default=25)
  p.add_argument("--curve-levels", type=int, default=6,
                 help="deletion/insertion levels, linspace(0, 1, N) (library default 11)")
  p.add_argument("--aopc", action="store_true",
                 help="also Mask-LRP's AOPC / log-odds (9 more forwards per example)")
  p.add_argument("--methods", default=None, help="comma-separated subset (default: all)")
  p.add_argument("--model", default=None, help="model path (default: the default model)")
  p.add_argument("--lafa-pool", type=int, default=256,
                 help="training texts in LAFA's neighbour index")
  p.add_argument("--report-examples", type=int, default=100, help="heatmaps in the HTML")
  p.add_argument("--cache-dir", default="",
                 help="a persistent jit cache directory (reruns skip compiling)")
  p.add_argument("--out", default=os.path.join(HERE, "results"))
  args = p.parse_args()
  if args.cache_dir:
    jax.config.update("jax_compilation_cache_dir", os.path.abspath(args.cache_dir))

  t_start = time.perf_counter()
  if args.model is None:
    from jaxplain.models.default import default_model, split_seed
    model, seed = default_model(), split_seed()
  else:
    model, seed = jaxplain.load_model(args.model), 0
  df = read_rotten_tomatoes(os.path.join(args.data_dir, "rotten_tomatoes_corpus_full.csv.bz2"))
  full_test = split_by_movie(df, seed)[2]
  test = full_test
  if args.max_tokens:
    n_tok = np.asarray([len(x) for x in model.tokenizer(test.text.tolist())["input_ids"]])
    test = test[n_tok <= args.max_tokens]
  test = test.iloc[:args.limit] if args.limit else test
  # Examples run shortest first, padded to two lengths (32 and the subset's longest rounded up
  # to 8): two compiles per method instead of one per bucket, and little padding.
  lengths = np.asarray([len(x) for x in model.tokenizer(test.text.tolist())["input_ids"]])
  order = np.argsort(lengths, kind="stable")
  longest = min(int(-(-lengths.max() // 8) * 8), model.max_length)
  model = dataclasses.replace(model, buckets=(32,) if longest <= 32 else (32, longest))
  texts = test.text.iloc[order].tolist()
  gold = test.label.to_numpy()[order]
  n = len(texts)

  wanted = args.methods.split(",") if args.methods else list(jaxplain.methods())
  skipped = {m: why for m, why in NEEDS_ARTEFACT.items() if m in wanted}
  names = [m for m in wanted if m not in NEEDS_ARTEFACT]

  fractions = tuple(float(f) for f in np.linspace(0.0, 1.0, args.curve_levels))
  protos = (deletion_protocol(fractions), insertion_protocol(fractions))
  pad_id = int(getattr(model.tokenizer, "pad_token_id", 0) or 0)
  curve_fn = functools.partial(  # rows re-bucketed by remaining length; forwards shared by methods
      lambda fwd, params, batch, scores, target: run_protocols_compact(
          fwd, params, batch, scores, protos, target, pad_id=pad_id), model.forward)
  arrays, lafa_index_seconds = {}, 0.0
  if "lafa" in names:
    from jaxplain.attribution import build_index
    t0 = time.perf_counter()
    pool = [t for t in split_by_movie(df, seed)[0].text.tolist()  # padded like the queries
            if len(model.tokenizer(t)["input_ids"]) <= max(model.buckets)][:args.lafa_pool]
    batches = [model.encode(pool[i:i + args.batch_size])
               for i in range(0, len(pool), args.batch_size)]
    arrays["lafa"] = {"index": build_index(model.forward, model.params, batches, layer=2,
                                           base="gradient_sq")}
    lafa_index_seconds = time.perf_counter() - t0
    print(f"LAFA index over {len(pool)} training texts: {lafa_index_seconds:.1f} s", flush=True)
  recorders = {m: Recorder(model, m, hyper_for(m, args), texts, curve_fn, arrays.get(m))
               for m in names}
  lexicon = os.path.join(args.data_dir, "vader_lexicon.txt")
  metrics_wanted = EVALUATE_METRICS + (("aopc_log_odds",) if args.aopc else ()) + (
      ("plausibility",) if os.path.exists(lexicon) else ())
  ev = evaluate(model, texts, gold.tolist(), recorders, metrics_wanted,
                batch_size=args.batch_size, target="predicted", seed=0,
                lexicon_path=lexicon if os.path.exists(lexicon) else None)

  back = np.argsort(order)  # sorted position of each example, in split order
  metrics = {m: {k: np.asarray(v, np.float64)[back] for k, v in ev.per_example[m].items()
                 if k in KEEP_PLAUSIBILITY or not k.startswith("lexicon_proxy/")
                 and k != "probability"}  # probability: the model's, not an explainer's
             for m in names}
  for m, rec in recorders.items():
    for k, d in rec.areas.items():
      metrics[m][k] = np.asarray([d.get(i, np.nan) for i in range(n)], np.float64)[back]
  curves = []
  for k in ("deletion_morf_curve", "deletion_lerf_curve", "insertion_area_curve"):
    values = {m: np.stack([rec.curves[k][i] for i in range(n)])[back]
              for m, rec in recorders.items() if k in rec.curves}
    if values:
      curves.append(Curve(k.replace("_area", ""), np.asarray(fractions), values,
                          xlabel="fraction of tokens " + ("inserted" if "insertion" in k
                                                          else "removed"),
                          ylabel="p(predicted class)"))
  shown = min(n, args.report_examples)
  split_texts = test.text.tolist()[:shown]
  probs = np.asarray(jax.nn.softmax(model(model.encode(split_texts)), -1))
  labels = tuple(model.labels) or LABELS
  examples = []
  for i in range(shown):
    pred = int(probs[i].argmax())
    examples.append(ReportExample(
        id=str(i), text=split_texts[i], label=labels[int(test.label.iloc[i])],
        prediction=labels[pred], probability=float(probs[i, pred]),
        words={m: rec.words[back[i]] for m, rec in recorders.items() if back[i] in rec.words}))
  hyper = {m: hyper_for(m, args) for m in names if hyper_for(m, args)}
  if "lafa" in names:
    hyper["lafa"] = {"pool": args.lafa_pool, "base": "gradient_sq", "layer": 2}
  seconds = {m: rec.seconds_per_example() for m, rec in recorders.items()}
  compile_seconds = {m: round(rec.compile_seconds, 2) for m, rec in recorders.items()}
  if "lafa" in recorders:
    compile_seconds["lafa_index"] = round(lafa_index_seconds, 2)
  if args.max_tokens:
    fits = int(sum(len(x) <= args.max_tokens for x in
                   model.tokenizer(full_test.text.tolist())["input_ids"]))
    subset = (f"Rotten Tomatoes test split (split_by_movie seed {seed}): the first {n} "
              f"examples of at most {args.max_tokens} tokens ({fits} of the split's "
              f"{len(full_test)} examples are that short)")
  else:
    subset = (f"Rotten Tomatoes test split (split_by_movie seed {seed}): the first {n} of "
              f"{len(full_test)} examples")
  data = ReportData(
      title="jaxplain explainer leaderboard: default model, Rotten Tomatoes test split",
      methods=names, metrics=metrics, higher_is_better=dict(HIGHER_IS_BETTER),
      seconds_per_example=seconds, examples=examples, curves=curves, num_examples=n,
      meta={"model": model.name, "data": subset, "target": "predicted class",
            "hyperparameters": json.dumps(hyper, sort_keys=True),
            "metrics": f"ERASER comprehensiveness/sufficiency (bins 1-50%, deletion); "
                       f"deletion (MoRF, LeRF) and insertion curves over {args.curve_levels} "
                       "levels; plausibility against the VADER lexicon proxy (|valence| >= "
                       "1.5), not human rationales",
            "skipped": "; ".join(f"{m}: {why}" for m, why in skipped.items()) or "none",
            "s / example": "attribution time per example on "
                           f"{os.cpu_count()} CPU cores: warm calls (jit compile "
                           "excluded) when a padded shape ran more than once, else the first "
                           "call (compile, or loading it from --cache-dir, included); first-"
                           "call seconds per method are in leaderboard.json"})
  write(args.out, data, skipped, time.perf_counter() - t_start, vars(args), seed, subset,
        compile_seconds)


def write(out_dir, data, skipped, wall, args, seed, subset, compile_seconds):
  """``leaderboard.md``, ``leaderboard.json`` and ``report.html`` in ``out_dir``."""
  os.makedirs(out_dir, exist_ok=True)
  table = data.leaderboard()
  metric_names = data.metric_names()
  lines = ["| method | " + " | ".join(f"{k} {'↑' if data.higher_is_better.get(k, True) else '↓'}"
                                       for k in metric_names) + " | s / example |",
           "|---|" + "---|" * (len(metric_names) + 1)]
  for m in data.methods:
    cells = []
    for k in metric_names:
      r = table[(table.method == m) & (table.metric == k)]
      cells.append("–" if r.empty or not np.isfinite(r["mean"].iloc[0]) else
                   f"{r['mean'].iloc[0]:.3f} [{r.ci_low.iloc[0]:.3f}, {r.ci_high.iloc[0]:.3f}]")
    lines.append(f"| {m} | " + " | ".join(cells) + f" | {data.seconds_per_example[m]:.4f} |")
  md = [f"# {data.title}", "",
        f"{subset}; model {data.meta['model']}; target: the predicted class. Mean [95% "
        f"bootstrap CI]; ↑ higher / ↓ lower is better. Metrics: {data.meta['metrics']}. "
        f"Hyperparameters: {data.meta['hyperparameters']}. s / example: "
        f"{data.meta['s / example']}. Wall time {wall / 60:.1f} min.", "",
        *lines, "", "Skipped: " + ("; ".join(f"`{m}` ({why})" for m, why in skipped.items())
                                   or "none"), "",
        "Command: `python experiments/leaderboard.py " +
        " ".join(f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}")
                 for k, v in args.items()
                 if v is not None and v is not False and k not in ("out", "cache_dir"))
        + "`", ""]
  with open(os.path.join(out_dir, "leaderboard.md"), "w") as f:
    f.write("\n".join(md))
  with open(os.path.join(out_dir, "leaderboard.json"), "w") as f:
    json.dump({"config": {**args, "split_seed": seed, "wall_seconds": round(wall, 1),
                          "subset": subset, **{k: v for k, v in data.meta.items()
                                               if k in ("metrics", "hyperparameters")}},
               "skipped": skipped, "seconds_per_example": data.seconds_per_example,
               "compile_seconds": compile_seconds,
               "rows": json.loads(table.to_json(orient="records"))}, f, indent=1)
  with open(os.path.join(out_dir, "report.html"), "w", encoding="utf-8") as f:
    f.write(render_report(data))
  print("\n".join(md))


if __name__ == "__main__":
  main()
