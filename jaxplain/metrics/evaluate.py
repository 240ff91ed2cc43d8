"""``evaluate``: every requested metric for every explainer over a set of texts, with intervals.

Texts are encoded ``batch_size`` at a time (the last batch is padded with repeats, so a corpus
compiles one program per length bucket); each explainer scores the batch; all faithfulness
protocols run in one jitted forward per batch; plausibility is computed against rationales or a
lexicon proxy. The table has, per (method, metric), the mean over examples, a seeded 95%
bootstrap interval, the number of examples, and the seconds spent explaining and measuring.

The data reader lives here until the corpus layer takes it over.
"""

import dataclasses
import inspect
import json
import os
import time
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxplain.contracts import Batch
from jaxplain.errors import InputError
from jaxplain.metrics import faithfulness as fm
from jaxplain.metrics.lexicon import lexicon_rationale, read_vader_lexicon
from jaxplain.metrics.plausibility import (plausibility, rationale_from_spans,
                                           rationale_from_words)
from jaxplain.metrics.stats import bootstrap_ci

FAITHFULNESS = ("comprehensiveness", "sufficiency", "aopc_log_odds", "deletion", "insertion",
                "auac", "au_mse")
METRICS = FAITHFULNESS + ("plausibility",)
DEFAULT_METRICS = ("comprehensiveness", "sufficiency", "aopc_log_odds")

HIGHER_IS_BETTER = {
    "comprehensiveness": True, "sufficiency": False, "aopc": True, "log_odds": False,
    "deletion_morf_area": False, "deletion_lerf_area": True, "deletion_gap": True,
    "insertion_area": True, "auac": True, "au_mse": False,
}

ScoreFn = Callable[..., Any]


@dataclasses.dataclass
class Evaluation:
  """What :func:`evaluate` returns.

  Attributes:
    table: a pandas DataFrame, one row per (method, metric): ``mean``, ``ci_low``, ``ci_high``,
      ``n``, ``higher_is_better``, ``explain_seconds``, ``metric_seconds``.
    per_example: ``{method: {metric: float32 [N]}}`` (NaN where a metric excludes an example).
    seconds: ``{method: {"explain": s, "metrics": s}}``, compile time included.
    files: paths written (markdown, CSV, JSON), empty without ``output_dir``.
  """

  table: Any
  per_example: dict[str, dict[str, np.ndarray]]
  seconds: dict[str, dict[str, float]]
  files: list[str]

  def to_markdown(self) -> str:
    return _markdown(self.table)


def _metric_protocols(names: Sequence[str], tokenizer: Any, replacement_id: int | None,
                      options: Mapping[str, Mapping[str, Any]]) -> tuple[fm.Protocol, ...]:
  def tok_id(attr: str) -> int:
    value = getattr(tokenizer, attr, None) if tokenizer is not None else None
    if value is None:
      raise InputError(f"the model's tokenizer has no {attr}; pass the id in "
                       "metric_options, e.g. {'auac': {'unk_id': 100}}.")
    return int(value)

  protos = []
  for name in names:
    opt = dict(options.get(name, {}))
    if name == "comprehensiveness":
      protos.append(fm.comprehensiveness_protocol(replacement_id=replacement_id, **opt))
    elif name == "sufficiency":
      protos.append(fm.sufficiency_protocol(replacement_id=replacement_id, **opt))
    elif name == "aopc_log_odds":
      opt.setdefault("replacement_id", tok_id("pad_token_id"))
      protos.append(fm.aopc_log_odds_protocol(**opt))
    elif name == "deletion":
      protos.append(fm.deletion_protocol(replacement_id=replacement_id, **opt))
    elif name == "insertion":
      protos.append(fm.insertion_protocol(replacement_id=replacement_id, **opt))
    elif name == "auac":
      protos.append(fm.auac_protocol(opt.pop("unk_id", None) or tok_id("unk_token_id"), **opt))
    elif name == "au_mse":
      protos.append(fm.au_mse_protocol(opt.pop("unk_id", None) or tok_id("unk_token_id"), **opt))
  return tuple(protos)


def _runner(forward, protocols: tuple[fm.Protocol, ...], pad_id: int, rows: int):
  """All protocols for one batch: perturbed rows built on device, re-bucketed by length, run."""
  def run(params, batch, scores, target):
    return fm.run_protocols_compact(forward, params, batch, scores, protocols, target,
                                    pad_id=pad_id, rows=rows)
  return run


def _score_fn(model, name: str, method: str | ScoreFn, hyper: Mapping[str, Any]) -> ScoreFn:
  if callable(method):
    params = [p for p in inspect.signature(method).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(params) >= 2:
      return method
    return lambda batch, target: method(batch)
  if isinstance(method, str):
    def by_name(batch, target):
      import jaxplain  # pylint: disable=g-import-not-at-top  (attribute() lives above metrics)
      return jaxplain.attribute(model, batch, method, target=np.asarray(target),
                                **hyper.get(name, {})).scores
    return by_name
  raise InputError(f"method {name!r} is a {type(method).__name__}; pass a jaxplain method name "
                   "or a callable batch -> scores [B, T].")


def _labels_to_ids(labels: Sequence[Any], model_labels: Sequence[str]) -> np.ndarray:
  out = []
  lower = [str(l).lower() for l in model_labels]
  for i, y in enumerate(labels):
    if isinstance(y, (int, np.integer)):
      out.append(int(y))
    elif str(y).lower() in lower:
      out.append(lower.index(str(y).lower()))
    else:
      raise InputError(f"label {y!r} of example {i} is neither a class index nor one of the "
                       f"model's labels {list(model_labels)}; map labels first (label_map=).")
  ids = np.asarray(out, np.int32)
  c = len(model_labels)
  if ids.size and (ids.min() < 0 or ids.max() >= c):
    raise InputError(f"labels must be in 0..{c - 1} for this model; got {ids.min()}..{ids.max()}.")
  return ids


def evaluate(model, texts: Sequence[str], labels: Sequence[Any],
             methods: Mapping[str, str | ScoreFn], metrics: Sequence[str] = DEFAULT_METRICS, *,
             batch_size: int = 32, target: str = "predicted", replacement_id: int | None = None,
             rationales: Sequence[Sequence[Any]] | None = None, rationale_kind: str = "spans",
             lexicon_path: str | os.PathLike | None = None, lexicon_threshold: float = 1.5,
             plausibility_options: Mapping[str, Any] | None = None,
             metric_options: Mapping[str, Mapping[str, Any]] | None = None,
             method_options: Mapping[str, Mapping[str, Any]] | None = None,
             max_length: int | None = None, chunk_size: int | None = None,
             resamples: int = 1000, seed: int = 0, output_dir: str | os.PathLike | None = None
             ) -> Evaluation:
  """Faithfulness (and plausibility) of several explainers on ``texts``, with 95% intervals.

  Args:
    model: a classification :class:`~jaxplain.models.Model` (``load_model``/``default_model``).
    texts, labels: the examples; labels are class indices or names from ``model.labels``.
    methods: ``{name: method}``; a method is a jaxplain method name (run lazily through
      :func:`jaxplain.attribute`) or a callable ``batch -> scores [B, T]`` (or
      ``(batch, target [B]) -> scores``).
    metrics: from :data:`METRICS`; all faithfulness protocols share one forward per batch.
    batch_size: texts per compiled call (the last batch is padded with repeats).
    target: ``"predicted"`` (explain and measure the predicted class; ERASER) or ``"gold"``
      (the label; Mask-LRP, Ali et al.).
    replacement_id: what ERASER, deletion and insertion removal writes (``None``: delete, as
      ERASER); Mask-LRP always uses [PAD] and Ali et al. [UNK] from the tokenizer.
    rationales: per example, character spans ``[(start, end), ...]`` (``rationale_kind=
      "spans"``) or word indices (``"words"``) for plausibility.
    lexicon_path: a VADER lexicon file: plausibility against a lexicon proxy instead (its
      metric names start with ``lexicon_proxy/``).
    lexicon_threshold, plausibility_options: see :func:`~jaxplain.metrics.lexicon_rationale`
      and :func:`~jaxplain.metrics.plausibility` (``unit``, ``k``, ``threshold``, ``empty``:
      an empty human rationale is an error; texts without lexicon words are left out, NaN).
    metric_options: per-metric builder options, e.g. ``{"aopc_log_odds": {"min_length": 10}}``.
    method_options: per-method hyperparameters for named methods, e.g. ``{"ig": {"steps": 32}}``.
    max_length: truncate texts to this many tokens.
    chunk_size: removal levels per forward call (bounds memory to ``chunk_size * batch_size``
      rows; default: about :func:`~jaxplain.attribution.auto_token_rows` token rows per call).
      Perturbed rows are grouped by the length they have left after removal and each group
      runs at its own length bucket
      (:func:`~jaxplain.metrics.faithfulness.run_protocols_compact`).
    resamples, seed: the bootstrap.
    output_dir: when given, writes ``metrics.md``, ``metrics.csv`` and ``metrics.json`` there.
  Returns:
    An :class:`Evaluation`.
  Raises:
    InputError: unknown metrics or methods, mismatched lengths, bad labels, NaN scores, an
      unwritable output directory.
  """
  import pandas as pd  # pylint: disable=g-import-not-at-top

  texts = list(texts)
  if len(texts) != len(labels):
    raise InputError(f"{len(texts)} texts but {len(labels)} labels; pass one label per text.")
  if not texts:
    raise InputError("no texts to evaluate.")
  unknown = [m for m in metrics if m not in METRICS]
  if unknown:
    raise InputError(f"unknown metrics {unknown}; choose from {', '.join(METRICS)}.")
  if not methods:
    raise InputError("no methods given; pass {name: method name or callable}.")
  if target not in ("predicted", "gold"):
    raise InputError(f"target must be 'predicted' or 'gold', not {target!r}.")
  if batch_size < 1:
    raise InputError(f"batch_size must be >= 1, got {batch_size}.")
  if chunk_size is not None and int(chunk_size) < 1:
    raise InputError(f"chunk_size must be >= 1 removal levels per call, got {chunk_size}.")
  wants_plaus = "plausibility" in metrics
  if wants_plaus and rationales is None and lexicon_path is None:
    raise InputError("plausibility needs rationales=[...] or lexicon_path= (a lexicon proxy).")
  if rationales is not None and len(rationales) != len(texts):
    raise InputError(f"{len(rationales)} rationales for {len(texts)} texts.")
  if output_dir is not None:
    _check_writable(output_dir)
  gold = _labels_to_ids(labels, model.labels)
  lexicon = read_vader_lexicon(lexicon_path) if wants_plaus and lexicon_path else None
  protos = _metric_protocols([m for m in metrics if m in FAITHFULNESS], model.tokenizer,
                             replacement_id, metric_options or {})
  pad_id = int(getattr(model.tokenizer, "pad_token_id", 0) or 0)
  rows = None if chunk_size is None else int(chunk_size) * batch_size
  run = _runner(model.forward, protos, pad_id, rows) if protos else None
  fns = {name: _score_fn(model, name, m, method_options or {}) for name, m in methods.items()}
  per = {name: {} for name in fns}
  seconds = {name: {"explain": 0.0, "metrics": 0.0} for name in fns}
  n = len(texts)
  for start in range(0, n, batch_size):
    idx = np.arange(start, min(start + batch_size, n))
    rows = np.concatenate([idx, np.full(batch_size - idx.size, idx[0])])  # pad with repeats
    chunk = [texts[i] for i in rows]
    batch = model.encode(chunk, max_length=max_length)
    logits = np.asarray(model.outputs(batch).logits).reshape(len(rows), -1)
    tgt = gold[rows] if target == "gold" else logits.argmax(-1).astype(np.int32)
    device_batch = Batch(*(jnp.asarray(x) for x in (batch.input_ids, batch.attention_mask,
                                                     batch.token_type_ids, batch.word_ids)))
    rationale = None
    if wants_plaus:
      rationale = _rationale(batch, chunk, rows, rationales, rationale_kind, lexicon,
                             lexicon_threshold)
    for name, fn in fns.items():
      t0 = time.perf_counter()
      scores = np.asarray(jax.block_until_ready(fn(batch, tgt)), np.float32)
      t1 = time.perf_counter()
      seconds[name]["explain"] += t1 - t0
      _check_method_scores(name, batch, scores, idx.size)
      values = {}
      if run is not None:
        out = jax.block_until_ready(run(model.params, device_batch, jnp.asarray(scores),
                                        jnp.asarray(tgt)))
        values.update({k: np.asarray(v) for k, v in out.items()
                       if np.ndim(v) == 1 and k not in ("target",)})
      if rationale is not None:
        prefix = "lexicon_proxy/" if lexicon is not None else ""
        opts = {"empty": "nan" if lexicon is not None else "error",
                **dict(plausibility_options or {})}
        values.update({prefix + k: v for k, v in plausibility(
            scores, rationale, batch, **opts).items()})
      seconds[name]["metrics"] += time.perf_counter() - t1
      for k, v in values.items():
        per[name].setdefault(k, []).append(np.asarray(v, np.float32)[:idx.size])
  per = {m: {k: np.concatenate(v) for k, v in d.items()} for m, d in per.items()}
  records = []
  for name, d in per.items():
    for k, v in d.items():
      ci = bootstrap_ci(v, resamples=resamples, seed=seed)
      records.append({"method": name, "metric": k, "mean": ci.mean, "ci_low": ci.low,
                      "ci_high": ci.high, "n": ci.n,
                      "higher_is_better": HIGHER_IS_BETTER.get(k.split("/")[-1], True),
                      "explain_seconds": seconds[name]["explain"],
                      "metric_seconds": seconds[name]["metrics"]})
  table = pd.DataFrame.from_records(records)
  files = _write(table, per, seconds, output_dir, dict(
      n=n, metrics=list(metrics), target=target, batch_size=batch_size, model=model.name,
      replacement_id=replacement_id, resamples=resamples, seed=seed,
      lexicon_proxy=lexicon is not None)) if output_dir is not None else []
  return Evaluation(table, per, seconds, files)


def _rationale(batch, chunk, rows, rationales, kind, lexicon, threshold):
  if lexicon is not None:
    return lexicon_rationale(chunk, batch, lexicon, threshold=threshold).mask
  picked = [rationales[i] for i in rows]
  if kind == "spans":
    return rationale_from_spans(batch, picked)
  if kind == "words":
    return rationale_from_words(batch, picked)
  raise InputError(f"rationale_kind must be 'spans' or 'words', not {kind!r}.")


def _check_method_scores(name: str, batch: Batch, scores: np.ndarray, real_rows: int) -> None:
  from jaxplain.metrics._removal import check_scores  # pylint: disable=g-import-not-at-top
  del real_rows  # padded rows repeat real ones
  check_scores(batch, scores, f"scores of method {name!r}")


def _check_writable(path) -> None:
  try:
    os.makedirs(path, exist_ok=True)
    probe = os.path.join(path, ".jaxplain_write_test")
    with open(probe, "w"):
      pass
    os.remove(probe)
  except OSError as e:
    raise InputError(f"cannot write to {path} ({e.strerror}); pass a writable output_dir.") from None


def _markdown(table) -> str:
  lines = ["| method | metric | mean | 95% CI | n | better | explain s | metric s |",
           "|---|---|---|---|---|---|---|---|"]
  for r in table.itertuples():
    lines.append(f"| {r.method} | {r.metric} | {r.mean:.4f} | [{r.ci_low:.4f}, {r.ci_high:.4f}] "
                 f"| {r.n} | {'higher' if r.higher_is_better else 'lower'} | "
                 f"{r.explain_seconds:.2f} | {r.metric_seconds:.2f} |")
  return "\n".join(lines) + "\n"


def _write(table, per, seconds, output_dir, config) -> list[str]:
  os.makedirs(output_dir, exist_ok=True)
  paths = [os.path.join(output_dir, f) for f in ("metrics.md", "metrics.csv", "metrics.json")]
  note = ("\nPlausibility rows prefixed `lexicon_proxy/` are measured against a sentiment-"
          "lexicon proxy, not human rationales.\n" if config.get("lexicon_proxy") else "")
  with open(paths[0], "w") as f:
    f.write(_markdown(table) + note)
  table.to_csv(paths[1], index=False)
  with open(paths[2], "w") as f:
    json.dump({"config": config, "seconds": seconds,
               "rows": json.loads(table.to_json(orient="records"))}, f, indent=2)
  return paths


def read_dataset(source: str | os.PathLike, *, text_column: str = "text",
                 label_column: str = "label", split: str = "test", limit: int | None = None,
                 label_map: Mapping[Any, Any] | None = None) -> tuple[list[str], list[Any]]:
  """Texts and labels from a local csv / jsonl / parquet file (compressed too) or a hub data set.

  Args:
    source: a file path (``.csv``, ``.csv.bz2``, ``.jsonl``, ``.json``, ``.parquet``) or a
      Hugging Face data set name (needs a network; ``split`` picks the split).
    text_column, label_column: column names.
    limit: keep the first ``limit`` rows (after mapping).
    label_map: maps raw labels to class indices or names; rows whose label is not in it are
      dropped (e.g. ``{"rotten": 0, "fresh": 1}`` drops Rotten Tomatoes' "plot" rows).
  Returns:
    ``(texts, labels)``.
  Raises:
    InputError: missing file or columns, unreadable format, unreachable hub.
  """
  import pandas as pd  # pylint: disable=g-import-not-at-top

  path = os.fspath(source)
  if os.path.exists(path):
    base = path.lower()
    for ext in (".bz2", ".gz", ".xz", ".zip"):
      base = base.removesuffix(ext)
    try:
      if base.endswith(".csv") or base.endswith(".tsv"):
        df = pd.read_csv(path, sep="\t" if base.endswith(".tsv") else ",")
      elif base.endswith(".jsonl"):
        df = pd.read_json(path, lines=True)
      elif base.endswith(".json"):
        df = pd.read_json(path)
      elif base.endswith(".parquet"):
        df = pd.read_parquet(path)
      else:
        raise InputError(f"{path}: unknown format; use .csv, .tsv, .jsonl, .json or .parquet.")
    except InputError:
      raise
    except Exception as e:
      raise InputError(f"could not read {path} ({type(e).__name__}: {e}).") from None
  elif path.startswith((".", "/", "~")):
    raise InputError(f"no data file at {path}; pass a csv/jsonl/parquet path or a hub name.")
  else:
    try:
      import datasets  # pylint: disable=g-import-not-at-top
      df = datasets.load_dataset(path, split=split).to_pandas()
    except Exception as e:
      raise InputError(f"{path} is not a local file and could not be loaded from the Hugging "
                       f"Face hub ({type(e).__name__}); check the name or pass a local file.") from None
  missing = [c for c in (text_column, label_column) if c not in df.columns]
  if missing:
    raise InputError(f"{path} has no column(s) {', '.join(missing)}; it has "
                     f"{', '.join(map(str, df.columns))}. Name the columns with text_column= "
                     "and label_column= (--text-column / --label-column on the command line).")
  df = df[[text_column, label_column]].dropna()
  df = df[df[text_column].astype(str).str.strip() != ""]
  if label_map is not None:
    df = df[df[label_column].isin(list(label_map))]
    df = df.assign(**{label_column: df[label_column].map(dict(label_map))})
  if limit is not None:
    df = df.head(int(limit))
  return df[text_column].astype(str).tolist(), df[label_column].tolist()
