"""The explainer leaderboard: every jaxplain method on the default model, Rotten Tomatoes test split.

    python experiments/leaderboard.py --data-dir ../shared/data --limit 0 --ig-steps 20

For each method of ``jaxplain.methods()``, on the first ``--limit`` examples of the default
model's held-out test split (``split_by_movie`` with the seed in the model's ``adapter.json``;
``--limit 0``: all): ERASER comprehensiveness/sufficiency, deletion (MoRF/LeRF) and insertion
curves and areas, and plausibility against the VADER lexicon proxy, each with a 95% bootstrap
interval, plus warm attribution seconds per example on this machine. The target is the
predicted class. Writes ``experiments/results/leaderboard.{md,json}`` and ``report.html`` (the
``jaxplain report`` page).

Methods that need trained artefacts get them here: LAFA a neighbour index over training texts;
``attention_pooling`` and ``l2x`` selectors trained on ``--selector-train`` training texts over
the frozen encoder to fit the default model's predictions (the class the leaderboard explains;
``experiments/shortcuts`` fits attention pooling to the gold labels instead), L2X with random
attention pretraining, the mitigation that removed the combinatorial shortcut there; ``diffmask`` the gates given by
``--gates`` (skipped, and listed, without them); ``mask_lrp`` the important heads of
``--heads`` (by default those ``experiments/mask_lrp`` found for the default model).

The four faithfulness protocols run in one :func:`jaxplain.metrics.run_protocols_compact` call
per batch (perturbed rows re-bucketed by remaining length, identical rows run once);
plausibility comes from :func:`jaxplain.metrics.evaluate`. Each method's results are kept in
``--work-dir`` as soon as it finishes, so an interrupted run resumes where it stopped (a method
is recomputed only when the settings it depends on changed).
"""

import argparse
import dataclasses
import functools
import hashlib
import json
import os
import pickle
import re
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxplain
from jaxplain import Batch
from jaxplain.data import LABELS, read_rotten_tomatoes, split_by_movie
from jaxplain.metrics import faithfulness as fm
from jaxplain.metrics import evaluate
from jaxplain.metrics.evaluate import HIGHER_IS_BETTER
from jaxplain.viz.report import render_report
from jaxplain.viz.report_data import Curve, HeadGrid, LayerTokenMap, ReportData, ReportExample

HERE = os.path.dirname(os.path.abspath(__file__))
SELECTORS = {"attention_pooling": "attention", "l2x": "l2x"}
KEEP_PLAUSIBILITY = ("lexicon_proxy/auprc", "lexicon_proxy/f1")
CURVES = ("deletion_morf_curve", "deletion_lerf_curve", "insertion_area_curve")


def hyper_for(name: str, args) -> dict:
  """Per-method hyperparameters: fewer IG steps / noise samples than the defaults (runtime)."""
  if name in ("integrated_gradients", "layer_integrated_gradients"):
    return {"steps": args.ig_steps}
  if name in ("smoothgrad", "smoothgrad_sq", "vargrad"):
    return {"samples": args.samples}
  if name == "lafa":
    return {"pool": args.lafa_pool, "base": "gradient_sq", "layer": 2}
  if name in SELECTORS:
    return {"selector_train": args.selector_train, "selector_steps": args.selector_steps,
            "k": 5, **({"mitigation": "random attention pretraining"} if name == "l2x" else {})}
  if name == "diffmask":
    return {"gates": os.path.abspath(args.gates)}
  if name == "mask_lrp" and args.heads:
    return {"head_mask": "synt_pos of " + os.path.abspath(args.heads)}
  return {}


class Recorder:
  """A ``(batch, target) -> scores`` callable for ``evaluate`` that also runs the faithfulness
  protocols on the same scores and keeps what the report needs.

  ``evaluate`` walks the texts in order, ``batch_size`` at a time, padding the last batch with
  repeats; the cursor maps each batch row back to its example. The first call at each padded
  length includes jit compilation: it is timed apart (``compile_seconds``), and
  :meth:`seconds_per_example` is the warm time of the other calls.
  """

  def __init__(self, model, name, kwargs, texts, curve_fn):
    self.model, self.name, self.kwargs, self.texts = model, name, kwargs, texts
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
                             **self.kwargs)
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
      words, scores = att.word_scores(j)
      self.words[i] = (list(words), np.asarray(scores, np.float32))
    print(f"  {self.name}: {shape} {spent:.1f} s", flush=True)
    return att.scores


def shown_path(value):
  """``value`` with its absolute paths made relative to the repository root (for the results)."""
  if not isinstance(value, str):
    return value
  root = os.path.dirname(HERE)
  return re.sub(r"(?<!\S)/\S+", lambda m: os.path.relpath(m.group(0), root), value)


def fingerprint(*parts) -> str:
  """A short digest of everything a cached result depends on."""
  return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def train_selectors(model, train_texts, args, work_dir) -> dict:
  """Attention pooling and L2X (random attention pretraining) fitted to the model's predictions
  over its frozen encoder, saved in ``work_dir`` (a rerun loads them)."""
  from jaxplain.attribution import selectors as S  # pylint: disable=g-import-not-at-top
  key = fingerprint(model.name, args.selector_train, args.selector_steps, 5, "v1")
  out, todo = {}, []
  for name, kind in SELECTORS.items():
    path = os.path.join(work_dir, f"selector_{name}_{key}")
    if os.path.exists(os.path.join(path, "selector.json")):
      out[name] = S.load_selector(path)
    else:
      todo.append((name, kind, path))
  if not todo:
    return out
  t0 = time.perf_counter()
  texts = [t for t in train_texts if len(model.tokenizer(t)["input_ids"]) >= 7][
      :args.selector_train]
  fwd = jax.jit(lambda p, b: model.forward(p, b))
  ctx, tok, masks, preds = [], [], [], []
  for i in range(0, len(texts), 64):
    b = model.encode(texts[i:i + 64], max_length=64)
    o = fwd(model.params, b.device_part())
    ctx.append(np.asarray(o.hidden[-1]))
    tok.append(np.asarray(o.hidden[0]))
    masks.append(np.asarray(b.attention_mask))
    preds.append(np.asarray(o.logits.argmax(-1)))
  width = max(x.shape[1] for x in masks)
  pad = lambda xs: np.concatenate([np.pad(x, [(0, 0), (0, width - x.shape[1])] +
                                          [(0, 0)] * (x.ndim - 2)) for x in xs])
  context, tokens, mask = jnp.asarray(pad(ctx)), jnp.asarray(pad(tok)), jnp.asarray(pad(masks))
  predicted = jnp.asarray(np.concatenate(preds))
  for name, kind, path in todo:
    cfg = S.TrainConfig(kind=kind, k=5, steps=args.selector_steps)
    trainer = S.train if name == "attention_pooling" else S.train_random_pretrained
    params = trainer(context, tokens, mask, predicted, cfg, key=jax.random.key(0))
    sel = S.Selector(jax.tree.map(np.asarray, params), kind=kind, k=5,
                     hidden=int(context.shape[-1]), classes=2)
    S.save_selector(path, sel)
    out[name] = S.load_selector(path)
  print(f"selectors trained on {len(texts)} training texts: {time.perf_counter() - t0:.0f} s",
        flush=True)
  return out


def run_method(model, name, kwargs, texts, gold, curve_fn, lexicon, args) -> dict:
  """One method's attributions, faithfulness, plausibility and timings (a picklable dict)."""
  rec = Recorder(model, name, kwargs, texts, curve_fn)
  load_before = os.getloadavg()
  t0 = time.perf_counter()
  ev = evaluate(model, texts, gold.tolist(), {name: rec},
                ("plausibility",) if lexicon else (), batch_size=args.batch_size,
                target="predicted", seed=0, lexicon_path=lexicon) if lexicon else None
  if ev is None:  # no lexicon: run the recorder over the batches ourselves
    for i in range(0, len(texts), args.batch_size):
      chunk = texts[i:i + args.batch_size]
      chunk = chunk + [chunk[0]] * (args.batch_size - len(chunk))
      b = model.encode(chunk)
      rec(b, np.asarray(model(b)).argmax(-1))
  n = len(texts)
  metrics = {k: np.asarray(v, np.float64) for k, v in (ev.per_example[name].items() if ev else ())
             if k in KEEP_PLAUSIBILITY}
  for k, d in rec.areas.items():
    metrics[k] = np.asarray([d.get(i, np.nan) for i in range(n)], np.float64)
  return {"metrics": metrics,
          "curves": {k: np.stack([d[i] for i in range(n)]) for k, d in rec.curves.items()},
          "words": rec.words, "seconds_per_example": rec.seconds_per_example(),
          "compile_seconds": rec.compile_seconds, "wall_seconds": time.perf_counter() - t0,
          "loadavg_1min": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
          "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--data-dir", default=os.path.join(HERE, "..", "..", "shared", "data"))
  p.add_argument("--limit", type=int, default=100, help="test examples (first N; 0: all)")
  p.add_argument("--max-tokens", type=int, default=None,
                 help="keep only test examples of at most this many tokens (before --limit)")
  p.add_argument("--ig-steps", type=int, default=20, help="IG / layer IG steps (default 50)")
  p.add_argument("--samples", type=int, default=10, help="SmoothGrad/VarGrad noise samples")
  p.add_argument("--batch-size", type=int, default=25)
  p.add_argument("--curve-levels", type=int, default=6,
                 help="deletion/insertion levels, linspace(0, 1, N) (library default 11)")
  p.add_argument("--methods", default=None, help="comma-separated subset (default: all)")
  p.add_argument("--model", default=None, help="model path (default: the default model)")
  p.add_argument("--lafa-pool", type=int, default=256,
                 help="training texts in LAFA's neighbour index")
  p.add_argument("--selector-train", type=int, default=2000,
                 help="training texts for the attention-pooling / L2X selectors")
  p.add_argument("--selector-steps", type=int, default=600)
  p.add_argument("--gates", default=None,
                 help="trained DiffMask gates (jaxplain diffmask train); without: skipped")
  p.add_argument("--heads", default=os.path.join(HERE, "mask_lrp", "results", "heads",
                                                  "head_masks.json"),
                 help="Mask-LRP's important heads (jaxplain heads); '' for none (= all heads)")
  p.add_argument("--report-examples", type=int, default=100, help="heatmaps in the HTML")
  p.add_argument("--cache-dir", default="",
                 help="a persistent jit cache directory (reruns skip compiling)")
  p.add_argument("--work-dir", default=os.path.join(HERE, "results", "leaderboard_work"),
                 help="per-method results (and trained selectors), kept so an interrupted "
                 "run resumes; keyed on the model's name, the texts and the settings, not on "
                 "weights or gate contents: empty it after retraining either")
  p.add_argument("--out", default=os.path.join(HERE, "results"))
  args = p.parse_args()
  if args.cache_dir:
    jax.config.update("jax_compilation_cache_dir", os.path.abspath(args.cache_dir))
  os.makedirs(args.work_dir, exist_ok=True)

  t_start = time.perf_counter()
  if args.model is None:
    from jaxplain.models.default import default_model, split_seed
    model, seed = default_model(), split_seed()
  else:
    model, seed = jaxplain.load_model(args.model), 0
  df = read_rotten_tomatoes(os.path.join(args.data_dir, "rotten_tomatoes_corpus_full.csv.bz2"))
  train_split, _, full_test = split_by_movie(df, seed)
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
  skipped = {}
  if "diffmask" in wanted and not args.gates:
    skipped["diffmask"] = ("needs trained gates: pass --gates (jaxplain diffmask train, or "
                           "experiments/diffmask_sentiment.py)")
  names = [m for m in wanted if m not in skipped]

  fractions = tuple(float(f) for f in np.linspace(0.0, 1.0, args.curve_levels))
  protos = (fm.comprehensiveness_protocol(), fm.sufficiency_protocol(),
            fm.deletion_protocol(fractions), fm.insertion_protocol(fractions))
  pad_id = int(getattr(model.tokenizer, "pad_token_id", 0) or 0)
  curve_fn = functools.partial(  # rows re-bucketed by remaining length; forwards shared by methods
      lambda fwd, params, batch, scores, target: fm.run_protocols_compact(
          fwd, params, batch, scores, protos, target, pad_id=pad_id), model.forward)
  lexicon = os.path.join(args.data_dir, "vader_lexicon.txt")
  lexicon = lexicon if os.path.exists(lexicon) else None
  common = fingerprint(model.name, texts, args.batch_size, args.curve_levels, lexicon is not None,
                       "v2")
  results, extra_seconds = {}, {}
  for name in names:
    hyper = hyper_for(name, args)
    path = os.path.join(args.work_dir, f"{name}_{fingerprint(common, hyper)}.pkl")
    if os.path.exists(path):
      with open(path, "rb") as f:
        results[name] = pickle.load(f)
      print(f"{name}: cached ({results[name]['finished']})", flush=True)
      continue
    kwargs = {k: v for k, v in hyper.items() if k in ("steps", "samples", "gates")}
    if name == "lafa":
      from jaxplain.attribution import build_index  # pylint: disable=g-import-not-at-top
      t0 = time.perf_counter()
      pool = [t for t in train_split.text.tolist()  # padded like the queries
              if len(model.tokenizer(t)["input_ids"]) <= max(model.buckets)][:args.lafa_pool]
      batches = [model.encode(pool[i:i + args.batch_size])
                 for i in range(0, len(pool), args.batch_size)]
      kwargs["index"] = build_index(model.forward, model.params, batches, layer=2,
                                    base="gradient_sq")
      extra_seconds["lafa_index"] = round(time.perf_counter() - t0, 2)
      print(f"LAFA index over {len(pool)} training texts: {extra_seconds['lafa_index']} s",
            flush=True)
    if name == "mask_lrp" and args.heads:
      from jaxplain.attribution.heads import HeadMasks  # pylint: disable=g-import-not-at-top
      kwargs["head_mask"] = jnp.asarray(HeadMasks.load(args.heads, model).synt_pos)
    if name in SELECTORS:
      t0 = time.perf_counter()
      kwargs["selector"] = train_selectors(model, train_split.text.tolist(), args,
                                           args.work_dir)[name]
      extra_seconds.setdefault("selectors", round(time.perf_counter() - t0, 2))
    print(f"{name}: running on {n} examples", flush=True)
    results[name] = run_method(model, name, kwargs, texts, gold, curve_fn, lexicon, args)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
      pickle.dump(results[name], f)
    os.replace(tmp, path)

  back = np.argsort(order)  # sorted position of each example, in split order
  first = ("comprehensiveness", "sufficiency") + KEEP_PLAUSIBILITY  # then the curve areas
  rank = lambda k: (first.index(k) if k in first else len(first), k)
  metrics = {m: {k: r["metrics"][k][back] for k in sorted(r["metrics"], key=rank)}
             for m, r in results.items()}
  curves = []
  for k in CURVES:
    values = {m: r["curves"][k][back] for m, r in results.items() if k in r["curves"]}
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
        words={m: r["words"][back[i]] for m, r in results.items() if back[i] in r["words"]}))
  diffmask_maps, head_grids = [], []
  if "diffmask" in results:  # the layer x token maps of the first few shown examples
    from jaxplain.attribution import diffmask as dm  # pylint: disable=g-import-not-at-top
    few = split_texts[:6]
    b = model.encode(few)
    keep = np.asarray(dm.explain(model, b, args.gates)["keep"])
    for i, toks in enumerate(model.tokens(b)):
      diffmask_maps.append(LayerTokenMap(str(i), list(toks), keep[i, :len(toks)],
                                         title=f"example {i}: {few[i][:80]}"))
  if "mask_lrp" in results and args.heads:
    from jaxplain.attribution.heads import HeadMasks  # pylint: disable=g-import-not-at-top
    masks = HeadMasks.load(args.heads, model)
    head_grids.append(HeadGrid(
        title=f"Mask-LRP's important heads (syntactic or positional): "
              f"{int(masks.synt_pos.sum())} of {masks.synt_pos.size}",
        values=masks.synt_pos, label="head mask", masks=masks))
  hyper = {m: {k: shown_path(v) for k, v in h.items()}
           for m in names if (h := hyper_for(m, args))}
  seconds = {m: r["seconds_per_example"] for m, r in results.items()}
  timing = {m: {"compile_seconds": round(r["compile_seconds"], 2),
                "wall_seconds": round(r["wall_seconds"], 1), "loadavg_1min": r["loadavg_1min"],
                "finished": r["finished"]} for m, r in results.items()}
  if args.max_tokens:
    fits = int(sum(len(x) <= args.max_tokens for x in
                   model.tokenizer(full_test.text.tolist())["input_ids"]))
    subset = (f"Rotten Tomatoes test split (split_by_movie seed {seed}): the first {n} "
              f"examples of at most {args.max_tokens} tokens ({fits} of the split's "
              f"{len(full_test)} examples are that short)")
  elif n == len(full_test):
    subset = f"Rotten Tomatoes test split (split_by_movie seed {seed}): all {n} examples"
  else:
    subset = (f"Rotten Tomatoes test split (split_by_movie seed {seed}): the first {n} of "
              f"{len(full_test)} examples")
  data = ReportData(
      title="jaxplain explainer leaderboard: default model, Rotten Tomatoes test split",
      methods=list(results), metrics=metrics, higher_is_better=dict(HIGHER_IS_BETTER),
      seconds_per_example=seconds, examples=examples, curves=curves, num_examples=n,
      diffmask=diffmask_maps, head_grids=head_grids,
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
                           "call (compile, or loading it from --cache-dir, included); per "
                           "method, first-call seconds, wall time, finishing time and the 1-min "
                           "load average before/after (2 = the two cores busy with this run "
                           "alone) are in leaderboard.json"})
  shown_args = {k: (shown_path(v) if k in ("data_dir", "gates", "heads") else v)
                for k, v in vars(args).items()
                if not (k == "heads" and v == p.get_default("heads"))}
  write(args.out, data, skipped, time.perf_counter() - t_start, shown_args, seed, subset,
        {"per_method": timing, "artefact_seconds_this_invocation": extra_seconds})


def busy_note(timing) -> list[str]:
  """A warning naming the methods timed while the 1-min load average exceeded the core count."""
  cores = os.cpu_count() or 1
  busy = {m: max(t["loadavg_1min"]) for m, t in timing["per_method"].items()
          if max(t["loadavg_1min"]) > cores + 0.5}
  if not busy:
    return []
  listed = ", ".join(f"{m} ({v:.1f})" for m, v in busy.items())
  return [f"Timed while other work shared the {cores} cores (1-min load average above "
          f"{cores + 0.5:g}; their s / example is inflated): {listed}.", ""]


def write(out_dir, data, skipped, wall, args, seed, subset, timing):
  """``leaderboard.md``, ``leaderboard.json`` and ``report.html`` in ``out_dir``."""
  os.makedirs(out_dir, exist_ok=True)
  table = data.leaderboard()
  metric_names = data.metric_names()
  method_minutes = sum(t["wall_seconds"] for t in timing["per_method"].values()) / 60
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
        f"{data.meta['s / example']}. Compute: the methods' own wall times (attribution, "
        f"metrics, compile) sum to {method_minutes:.1f} min; methods finished by an earlier, "
        f"interrupted invocation of the same command were loaded from --work-dir (this "
        f"invocation: {wall / 60:.1f} min).", "",
        *lines, "", *busy_note(timing), "Skipped: " + (
            "; ".join(f"`{m}` ({why})" for m, why in skipped.items()) or "none"), "",
        "Command: `python experiments/leaderboard.py " +
        " ".join(f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}")
                 for k, v in args.items()
                 if v is not None and v is not False and v != ""
                 and k not in ("out", "cache_dir", "work_dir"))
        + "`", ""]
  with open(os.path.join(out_dir, "leaderboard.md"), "w") as f:
    f.write("\n".join(md))
  with open(os.path.join(out_dir, "leaderboard.json"), "w") as f:
    json.dump({"config": {**args, "split_seed": seed, "wall_seconds": round(wall, 1),
                          "method_wall_minutes": round(method_minutes, 1),
                          "subset": subset, **{k: v for k, v in data.meta.items()
                                               if k in ("metrics", "hyperparameters")}},
               "skipped": skipped, "seconds_per_example": data.seconds_per_example,
               "timing": timing,
               "rows": json.loads(table.to_json(orient="records"))}, f, indent=1)
  with open(os.path.join(out_dir, "report.html"), "w", encoding="utf-8") as f:
    f.write(render_report(data))
  print("\n".join(md))


if __name__ == "__main__":
  main()
