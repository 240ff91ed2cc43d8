"""The explainer leaderboard: every jaxplain method on the default model, Rotten Tomatoes test split.

    python experiments/leaderboard.py --data-dir ../shared/data --limit 200 --ig-steps 20

For each method of ``jaxplain.methods()`` (those needing trained artefacts are skipped and
listed), on the first ``--limit`` examples of the default model's held-out test split
(``split_by_movie`` with the adapter's ``split_seed``): ERASER comprehensiveness/sufficiency,
Mask-LRP AOPC/log-odds and deletion/insertion curves, each with a 95% bootstrap interval, plus
attribution seconds per example (compile included, on this machine). The target is the predicted
class. Writes ``experiments/results/leaderboard.{md,json,html}``; the HTML is the
``jaxplain report`` page.

Metrics come from :func:`jaxplain.metrics.evaluate` (ERASER and AOPC); deletion/insertion run
through :func:`jaxplain.metrics.run_protocols` on the same scores so their curves are kept.
"""

import argparse
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
from jaxplain.metrics import (CURVE_FRACTIONS, deletion_protocol, evaluate, insertion_protocol,
                              run_protocols)
from jaxplain.metrics.evaluate import HIGHER_IS_BETTER
from jaxplain.viz.report import render_report
from jaxplain.viz.report_data import Curve, ReportData, ReportExample

HERE = os.path.dirname(os.path.abspath(__file__))
NEEDS_ARTEFACT = {
    "lafa": "needs a neighbour index over a labelled pool (build_index; experiments/lafa.py)",
    "attention_pooling": "needs a trained selector (jaxplain.attribution.selectors)",
    "l2x": "needs a trained selector (jaxplain.attribution.selectors)",
}
NOT_IN_METHODS = {"diffmask": "needs trained gates (jaxplain diffmask train); not in methods()"}
EVALUATE_METRICS = ("comprehensiveness", "sufficiency", "aopc_log_odds")


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
  repeats; the cursor maps each batch row back to its example.
  """

  def __init__(self, model, name, hyper, texts, curve_fn, keep_words):
    self.model, self.name, self.hyper, self.texts = model, name, hyper, texts
    self.curve_fn, self.keep_words = curve_fn, keep_words
    self.cursor, self.seconds = 0, 0.0
    self.words, self.curves, self.areas = {}, {}, {}

  def __call__(self, batch, target):
    t0 = time.perf_counter()
    att = jaxplain.attribute(self.model, batch, self.name, target=np.asarray(target), seed=0,
                             **self.hyper)
    self.seconds += time.perf_counter() - t0
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
      if i < self.keep_words:
        att.texts[j] = self.texts[i]  # offsets index the original text
        words, scores = att.word_scores(j)
        self.words[i] = (words, scores)
    return att.scores


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--data-dir", default=os.path.join(HERE, "..", "..", "shared", "data"))
  p.add_argument("--limit", type=int, default=200, help="test examples (first N of the split)")
  p.add_argument("--ig-steps", type=int, default=20, help="IG / layer IG steps (default 50)")
  p.add_argument("--samples", type=int, default=10, help="SmoothGrad/VarGrad noise samples")
  p.add_argument("--batch-size", type=int, default=32)
  p.add_argument("--methods", default=None, help="comma-separated subset (default: all)")
  p.add_argument("--model", default=None, help="model path (default: the default model)")
  p.add_argument("--report-examples", type=int, default=60, help="heatmaps in the HTML")
  p.add_argument("--out", default=os.path.join(HERE, "results"))
  args = p.parse_args()

  t_start = time.perf_counter()
  if args.model is None:
    from jaxplain.models.default import ADAPTER_DIR, default_model
    model = default_model()
    with open(os.path.join(ADAPTER_DIR, "adapter.json")) as f:
      seed = int(json.load(f).get("split_seed", 0))
  else:
    model, seed = jaxplain.load_model(args.model), 0
  df = read_rotten_tomatoes(os.path.join(args.data_dir, "rotten_tomatoes_corpus_full.csv.bz2"))
  test = split_by_movie(df, seed)[2].iloc[:args.limit]
  texts, gold = test.text.tolist(), test.label.to_numpy()

  wanted = args.methods.split(",") if args.methods else list(jaxplain.methods())
  skipped = {m: why for m, why in NEEDS_ARTEFACT.items() if m in wanted}
  skipped.update(NOT_IN_METHODS if args.methods is None else {})
  names = [m for m in wanted if m not in NEEDS_ARTEFACT]

  protos = (deletion_protocol(), insertion_protocol())
  pad_id = int(getattr(model.tokenizer, "pad_token_id", 0) or 0)
  curve_fn = jax.jit(functools.partial(
      lambda fwd, params, batch, scores, target: run_protocols(
          fwd, params, batch, scores, protos, target, pad_id=pad_id), model.forward))
  recorders = {m: Recorder(model, m, hyper_for(m, args), texts, curve_fn, args.report_examples)
               for m in names}
  ev = evaluate(model, texts, gold.tolist(), recorders, EVALUATE_METRICS,
                batch_size=args.batch_size, target="predicted", seed=0)

  n = len(texts)
  metrics = {m: {k: v for k, v in ev.per_example[m].items() if k != "probability"}
             for m in names}  # probability: the model's, not an explainer's
  for m, rec in recorders.items():
    for k, d in rec.areas.items():
      metrics[m][k] = np.asarray([d.get(i, np.nan) for i in range(n)], np.float64)
  curves = []
  for k in ("deletion_morf_curve", "deletion_lerf_curve", "insertion_area_curve"):
    values = {m: np.stack([rec.curves[k][i] for i in range(n)]) for m, rec in recorders.items()
              if k in rec.curves}
    if values:
      curves.append(Curve(k.replace("_area", ""), np.asarray(CURVE_FRACTIONS), values,
                          xlabel="fraction of tokens " + ("inserted" if "insertion" in k
                                                          else "removed"),
                          ylabel="p(predicted class)"))
  probs = np.asarray(jax.nn.softmax(model(model.encode(texts[:args.report_examples])), -1))
  labels = tuple(model.labels) or LABELS
  examples = []
  for i in range(min(n, args.report_examples)):
    pred = int(probs[i].argmax())
    examples.append(ReportExample(
        id=str(i), text=texts[i], label=labels[int(gold[i])], prediction=labels[pred],
        probability=float(probs[i, pred]),
        words={m: rec.words[i] for m, rec in recorders.items() if i in rec.words}))
  data = ReportData(
      title="jaxplain explainer leaderboard: default model, Rotten Tomatoes test split",
      methods=names, metrics=metrics, higher_is_better=dict(HIGHER_IS_BETTER),
      seconds_per_example={m: rec.seconds / n for m, rec in recorders.items()},
      examples=examples, curves=curves, num_examples=n,
      meta={"model": model.name, "data": f"Rotten Tomatoes test split (split_by_movie seed "
            f"{seed}), first {n} examples", "target": "predicted class",
            "hyperparameters": json.dumps({m: hyper_for(m, args) for m in names
                                           if hyper_for(m, args)}),
            "skipped": "; ".join(f"{m}: {why}" for m, why in skipped.items()) or "none",
            "seconds per example": "attribution only, jit compile included, "
                                   f"{os.cpu_count()} CPU cores shared"})
  write(args.out, data, skipped, time.perf_counter() - t_start, vars(args), seed)


def write(out_dir, data, skipped, wall, args, seed):
  """``leaderboard.md``, ``leaderboard.json`` and ``leaderboard.html`` in ``out_dir``."""
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
    lines.append(f"| {m} | " + " | ".join(cells) + f" | {data.seconds_per_example[m]:.3f} |")
  md = [f"# {data.title}", "",
        f"{data.num_examples} examples, split seed {seed}; mean [95% bootstrap CI]; "
        f"↑ higher / ↓ lower is better. Wall time {wall / 60:.1f} min.", "",
        *lines, "", "Skipped: " + ("; ".join(f"`{m}` ({why})" for m, why in skipped.items())
                                   or "none"), "",
        "Command: `python experiments/leaderboard.py " +
        " ".join(f"--{k.replace('_', '-')} {v}" for k, v in args.items()
                 if v is not None and k != "out") + "`", ""]
  with open(os.path.join(out_dir, "leaderboard.md"), "w") as f:
    f.write("\n".join(md))
  with open(os.path.join(out_dir, "leaderboard.json"), "w") as f:
    json.dump({"config": {**args, "split_seed": seed, "wall_seconds": round(wall, 1)},
               "skipped": skipped, "seconds_per_example": data.seconds_per_example,
               "rows": json.loads(table.to_json(orient="records"))}, f, indent=1)
  with open(os.path.join(out_dir, "leaderboard.html"), "w", encoding="utf-8") as f:
    f.write(render_report(data))
  print("\n".join(md))


if __name__ == "__main__":
  main()
