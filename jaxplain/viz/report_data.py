"""What the HTML report shows, as plain host data: :class:`ReportData` and its parts.

The report page (:mod:`jaxplain.viz.report`) and the matplotlib plots (:mod:`jaxplain.viz.plots`)
read only these dataclasses, never files. :func:`load_sweep` adapts a sweep's output directory
(Parquet shards + manifests, ``docs/sweep_schema.md``) to them, reporting what a partial sweep
lacks instead of failing; anything else (an :func:`~jaxplain.metrics.evaluate` run, a test) can
build a :class:`ReportData` directly.
"""

import dataclasses
import json
import math
import os
import re
from typing import Any, Mapping, Sequence

import numpy as np

from jaxplain.errors import InputError


@dataclasses.dataclass
class ReportExample:
  """One example of the sweep: its text, labels and every method's word scores.

  Attributes:
    id: the example's id in the sweep.
    text: the input text (untrusted; the report escapes it).
    label: the gold label's name, or ``None``.
    prediction: the predicted label's name, or ``None``.
    probability: the predicted class's probability, or ``None``.
    words: ``{method: (words, scores)}``: a method's word scores, ``scores`` ``float [W]``.
  """

  id: str
  text: str
  label: str | None = None
  prediction: str | None = None
  probability: float | None = None
  words: dict[str, tuple[list[str], np.ndarray]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Curve:
  """A metric curve (deletion, insertion, ...) per method over removal levels.

  Attributes:
    name: the curve's name, e.g. ``"deletion_morf_curve"``.
    x: ``[R]`` the removal levels (fractions of removable tokens, or percent bins).
    values: ``{method: [N, R]}`` per-example values (or ``[R]`` means).
    xlabel, ylabel: axis labels.
  """

  name: str
  x: np.ndarray
  values: dict[str, np.ndarray]
  xlabel: str = "fraction of tokens removed"
  ylabel: str = "p(target)"

  def mean(self, method: str) -> np.ndarray:
    """``[R]`` the mean over examples of ``method``'s curve (NaN-aware)."""
    v = np.asarray(self.values[method], np.float64)
    if v.ndim == 1:
      return v
    with np.errstate(all="ignore"):
      finite = np.isfinite(v)
      count = finite.sum(0)
      total = np.where(finite, v, 0.0).sum(0)
      return np.where(count > 0, total / np.maximum(count, 1), np.nan)


@dataclasses.dataclass
class LayerTokenMap:
  """DiffMask keep probabilities of one example: tokens x hidden-state indices.

  Attributes:
    example_id: the example's id.
    tokens: the ``T`` token strings.
    keep: ``[T, L+2]`` keep probabilities in ``[0, 1]``.
    title: a caption.
  """

  example_id: str
  tokens: list[str]
  keep: np.ndarray
  title: str = ""


@dataclasses.dataclass
class HeadGrid:
  """A layers x heads grid (a head mask or head importances).

  Attributes:
    title: a caption.
    values: ``[L, N]``.
    label: what the colour means (colour bar label).
    masks: the :class:`~jaxplain.attribution.heads.HeadMasks` behind a head mask, if any; the
      report then draws its richer grid (kind of head, positional share, accuracy).
  """

  title: str
  values: np.ndarray
  label: str = "head mask"
  masks: Any = None


@dataclasses.dataclass
class ReportData:
  """Everything the report shows, independent of where it came from.

  Attributes:
    title: the page heading.
    methods: method names in display order.
    metrics: ``{method: {metric: float [N]}}`` per-example metric values (NaN = excluded).
    higher_is_better: ``{metric: bool}``; metrics missing here count as higher-is-better.
    seconds_per_example: ``{method: seconds}`` attribution time per example (``NaN``: unknown).
    examples: the examples shown as heatmaps.
    curves: metric curves by removal level.
    diffmask: DiffMask layer x token maps.
    head_grids: head-mask grids.
    meta: facts shown at the top (model, data set, schema version, ...), ``{name: value}``.
    missing: sentences saying what the source lacked (a partial sweep), shown as warnings.
    num_examples: examples in the source (``None``: ``len(examples)``).
  """

  title: str
  methods: list[str]
  metrics: dict[str, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)
  higher_is_better: dict[str, bool] = dataclasses.field(default_factory=dict)
  seconds_per_example: dict[str, float] = dataclasses.field(default_factory=dict)
  examples: list[ReportExample] = dataclasses.field(default_factory=list)
  curves: list[Curve] = dataclasses.field(default_factory=list)
  diffmask: list[LayerTokenMap] = dataclasses.field(default_factory=list)
  head_grids: list[HeadGrid] = dataclasses.field(default_factory=list)
  meta: dict[str, Any] = dataclasses.field(default_factory=dict)
  missing: list[str] = dataclasses.field(default_factory=list)
  num_examples: int | None = None

  def metric_names(self) -> list[str]:
    """Every metric any method has, in first-seen order."""
    names: list[str] = []
    for m in self.methods:
      for k in self.metrics.get(m, {}):
        if k not in names:
          names.append(k)
    return names

  def leaderboard(self, *, confidence: float = 0.95, resamples: int = 1000, seed: int = 0):
    """One row per (method, metric) with the mean and a seeded bootstrap interval.

    Returns:
      A pandas DataFrame with columns ``method, metric, mean, ci_low, ci_high, n,
      higher_is_better, seconds_per_example`` (the layout of
      :attr:`jaxplain.metrics.Evaluation.table`, with time per example).
    """
    import pandas as pd  # pylint: disable=g-import-not-at-top
    from jaxplain.metrics.stats import bootstrap_ci  # pylint: disable=g-import-not-at-top
    rows = []
    for m in self.methods:
      for k in self.metric_names():
        values = self.metrics.get(m, {}).get(k)
        if values is None:
          continue
        ci = bootstrap_ci(values, confidence=confidence, resamples=resamples, seed=seed)
        rows.append({"method": m, "metric": k, "mean": ci.mean, "ci_low": ci.low,
                     "ci_high": ci.high, "n": ci.n,
                     "higher_is_better": bool(self.higher_is_better.get(k, True)),
                     "seconds_per_example": float(self.seconds_per_example.get(m, math.nan))})
    return pd.DataFrame.from_records(
        rows, columns=["method", "metric", "mean", "ci_low", "ci_high", "n",
                       "higher_is_better", "seconds_per_example"])


def higher_is_better(metric: str, table: Mapping[str, bool] | None = None) -> bool:
  """Whether a larger ``metric`` is better: from ``table``, else jaxplain's metric table.

  Names with a prefix (``lexicon_proxy/auprc``) are looked up by their last part; unknown names
  count as higher-is-better (plausibility scores, agreement).
  """
  from jaxplain.metrics.evaluate import HIGHER_IS_BETTER  # pylint: disable=g-import-not-at-top
  known = dict(HIGHER_IS_BETTER)
  known.update(table or {})
  return bool(known.get(metric, known.get(metric.split("/")[-1], True)))


def as_float_array(values: Sequence[Any] | np.ndarray) -> np.ndarray:
  """``values`` as ``float64``, with ``None`` turned into NaN."""
  return np.asarray([math.nan if v is None else v for v in values], np.float64) \
      if not isinstance(values, np.ndarray) else values.astype(np.float64)


# --- reading a sweep directory -----------------------------------------------------------------

MANIFEST = "manifest.json"
"""The merged manifest a finished sweep writes (``jaxplain.corpus.output.MANIFEST``)."""
HEAD_MASKS = "head_masks.json"
"""Head masks looked for in a sweep directory (what ``jaxplain heads`` writes)."""
DIFFMASK = "diffmask.json"
"""DiffMask keep probabilities looked for in a sweep directory: the output of
``jaxplain diffmask explain --json ... > SWEEP_DIR/diffmask.json``."""
NOT_LEADERBOARD = ("delta",)
"""Per-example float columns that are diagnostics, not explainer metrics (IG convergence)."""

_PROCESS_MANIFEST = re.compile(r"^manifest-p(\d+)-of-(\d+)\.json$")
_ROW_COLUMNS = ("index", "id", "text", "label", "prediction", "probabilities", "words")


def _read_json(path: str) -> dict[str, Any]:
  try:
    with open(path, encoding="utf-8") as f:
      value = json.load(f)
  except (OSError, ValueError) as e:
    raise InputError(f"{path} is unreadable ({type(e).__name__}: {e}); it is not a jaxplain "
                     "sweep manifest, or it is corrupt. Rerun the sweep into a new directory.") \
        from None
  if not isinstance(value, dict):
    raise InputError(f"{path} is not a jaxplain sweep manifest (not a JSON object).")
  return value


def _check_schema(manifest: dict[str, Any], path: str) -> None:
  from jaxplain.corpus import SCHEMA_VERSION  # pylint: disable=g-import-not-at-top
  found = manifest.get("schema_version")
  if found == SCHEMA_VERSION:
    return
  if found is None:
    raise InputError(f"{path} has no schema_version: it is not a jaxplain sweep manifest (or "
                     "predates versioned sweeps); rerun `jaxplain sweep` into a new directory.")
  if isinstance(found, int) and found > SCHEMA_VERSION:
    raise InputError(f"{path} was written by a newer jaxplain (sweep schema version {found}; "
                     f"this jaxplain reads version {SCHEMA_VERSION}); upgrade jaxplain to "
                     "report it.")
  raise InputError(f"{path} was written by an older jaxplain (sweep schema version {found}; "
                   f"this jaxplain reads version {SCHEMA_VERSION}); rerun `jaxplain sweep` "
                   "with this jaxplain into a new directory.")


def _shard_files(directory: str, missing: list[str]) -> tuple[list[str], dict[str, Any]]:
  """The shard files to read and the manifest to describe them, noting what is absent."""
  merged_path = os.path.join(directory, MANIFEST)
  process = {}
  for name in sorted(os.listdir(directory)):
    m = _PROCESS_MANIFEST.match(name)
    if m:
      process[name] = (int(m.group(1)), int(m.group(2)))
  parts = sorted(f for f in os.listdir(directory)
                 if f.startswith("part-") and f.endswith(".parquet"))
  if not os.path.exists(merged_path) and not process:
    if not parts:
      raise InputError(f"{directory} holds no sweep output (no {MANIFEST}, no "
                       "manifest-p*.json, no part-*.parquet); run `jaxplain sweep --output "
                       f"{directory}` first, or pass the directory a sweep wrote.")
    raise InputError(f"{directory} has Parquet shards but no manifest, so their schema version "
                     "cannot be checked; it is not a complete jaxplain sweep. Rerun the sweep "
                     "(it resumes) to write the manifest.")
  manifests = {name: _read_json(os.path.join(directory, name)) for name in process}
  for name, man in manifests.items():
    _check_schema(man, os.path.join(directory, name))
  if os.path.exists(merged_path):
    merged = _read_json(merged_path)
    _check_schema(merged, merged_path)
    files = [str(f) for f in merged.get("files", [])]
    if not files and merged.get("rows", 0):
      missing.append(f"{MANIFEST} lists no shard files but {merged.get('rows')} rows.")
    sizes = {e.get("file"): e.get("bytes") for man in manifests.values()
             for e in man.get("shards", {}).values()}
    return _present(directory, files, sizes, missing), merged
  missing.append(f"{MANIFEST} (the merged manifest) is missing: the sweep is still running, "
                 "was stopped, or a process has not finished; showing the shards written so far.")
  files, sizes, first = [], {}, None
  counts = {count for _, count in process.values()}
  for name, man in manifests.items():
    first = first or man
    shards = man.get("shards", {})
    total = man.get("num_shards")
    if not man.get("complete"):
      missing.append(f"process {process[name][0]} has written {len(shards)} of "
                     f"{total if total is not None else '?'} shards ({name}).")
    for k in sorted(shards, key=int):
      files.append(str(shards[k].get("file")))
      sizes[shards[k].get("file")] = shards[k].get("bytes")
  for count in counts:
    absent = [p for p in range(count)
              if f"manifest-p{p:05d}-of-{count:05d}.json" not in manifests]
    if absent:
      missing.append(f"no manifest from process(es) {', '.join(map(str, absent))} of {count}: "
                     "they have written nothing yet.")
  return _present(directory, files, sizes, missing), first or {}


def _present(directory: str, files: list[str], sizes: dict[str, Any],
             missing: list[str]) -> list[str]:
  out = []
  for f in files:
    path = os.path.join(directory, f)
    if os.path.dirname(f) or not os.path.isfile(path):
      missing.append(f"shard {f} is listed in the manifest but missing from the directory.")
      continue
    want = sizes.get(f)
    if want is not None and os.path.getsize(path) != want:
      missing.append(f"shard {f} is {os.path.getsize(path)} bytes, not the {want} its manifest "
                     "records (changed or truncated); skipped.")
      continue
    out.append(path)
  return out


def _curve_x(name: str, levels: int, manifest: dict[str, Any]) -> tuple[np.ndarray, str]:
  given = (manifest.get("curves") or {}).get(name)
  if given is not None and len(given) == levels:
    return np.asarray(given, np.float64), "removal level"
  if name.startswith(("comprehensiveness", "sufficiency")) and levels == 5:
    return np.asarray([0.01, 0.05, 0.1, 0.2, 0.5]), "fraction of tokens removed (ERASER bins)"
  if name.startswith(("aopc", "log_odds")):  # Mask-LRP: g = linspace(0, 1, K + 1)[1:]
    return np.linspace(0.0, 1.0, levels + 1)[1:], "fraction of tokens replaced by [PAD]"
  return np.linspace(0.0, 1.0, levels), "fraction of tokens " + (
      "inserted" if "insertion" in name or name.startswith("auac") else "removed")


def _curve_ylabel(name: str) -> str:
  """What a curve's values are, from its column name (``docs/sweep_schema.md``)."""
  if name.startswith("comprehensiveness"):
    return "p(target) drop, top-k% removed"
  if name.startswith("sufficiency"):
    return "p(target) drop, only top-k% kept"
  if name.startswith("log_odds"):
    return "log p(target | removed) / p(target)"
  if name.startswith("aopc"):
    return "p(target) drop"
  if name.startswith("au_mse"):
    return "squared error"
  return "p(target)"


def _label_name(value: Any, labels: Sequence[str]) -> str | None:
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return None
  i = int(value)
  return str(labels[i]) if 0 <= i < len(labels) else f"class {i}"


def load_sweep(path: str | os.PathLike, *, head_masks: str | os.PathLike | None = None,
               diffmask: str | os.PathLike | None = None,
               max_examples: int = 1000) -> ReportData:
  """A sweep's output directory as :class:`ReportData` (what ``jaxplain report`` renders).

  Reads the merged ``manifest.json`` (or, while a sweep is unfinished, the per-process
  manifests) and every shard they list that is present and intact: per-example metrics
  (``<metric>.<method>`` columns) of all rows, and words, word scores, labels and
  predictions of the first ``max_examples`` examples by index. A partial sweep is reported as
  far as it goes, with :attr:`ReportData.missing` naming what is absent (the merged manifest,
  unfinished processes, listed shards not on disk, unreadable shards).

  Args:
    path: the sweep's ``--output`` directory.
    head_masks: a ``head_masks.json`` from ``jaxplain heads`` (default: the directory's own
      ``head_masks.json``, when present).
    diffmask: the JSON of ``jaxplain diffmask explain --json`` (default: the directory's own
      ``diffmask.json``, when present), drawn as layer x token maps.
    max_examples: examples whose word scores are kept for heatmaps.
  Returns:
    A :class:`ReportData`.
  Raises:
    InputError: no such directory, no sweep output in it, shards without a manifest, a
      manifest from another sweep schema version, an unreadable manifest, an unreadable
      ``head_masks`` or ``diffmask`` file given explicitly (the directory's own ones, when
      unreadable, are skipped with a note in :attr:`ReportData.missing`).
  """
  import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
  directory = os.path.abspath(os.path.expanduser(os.fspath(path)))
  if not os.path.exists(directory):
    raise InputError(f"no sweep directory at {path}; pass the --output directory of "
                     "`jaxplain sweep`.")
  if not os.path.isdir(directory):
    raise InputError(f"{path} is a file, not a sweep directory; pass the directory `jaxplain "
                     "sweep` wrote (it holds manifest.json and part-*.parquet files).")
  missing: list[str] = []
  files, manifest = _shard_files(directory, missing)
  config = manifest.get("config") or {}
  model = manifest.get("model") or {}
  labels = [str(x) for x in model.get("labels") or []]
  methods = [str(m[0]) for m in config.get("methods", []) if m]
  tables = []
  for f in files:
    try:
      tables.append((f, pq.read_table(f)))
    except Exception as e:  # pylint: disable=broad-except  (pyarrow raises many kinds)
      missing.append(f"shard {os.path.basename(f)} is unreadable ({type(e).__name__}); "
                     "skipped.")
  if not files and not tables:
    missing.append("no shard has been written yet: there are no examples to show.")
  names = [n for _, t in tables for n in t.schema.names]
  for n in names:  # methods from the columns when the manifest has no config
    if n.startswith("scores.") and n[len("scores."):] not in methods:
      methods.append(n[len("scores."):])
  data = ReportData(title=f"jaxplain report: {os.path.basename(directory)}", methods=methods,
                    missing=missing)
  _read_rows(data, tables, labels, manifest, max_examples)
  if not methods:
    missing.append("the sweep lists no methods and its shards have no scores.* columns.")
  seconds = manifest.get("seconds_per_example") or {}
  data.seconds_per_example = {m: float(seconds[m]) for m in methods if m in seconds}
  data.meta = _meta(directory, manifest, config, model, seconds)
  _add_head_masks(data, directory, head_masks)
  _add_diffmask(data, directory, diffmask)
  return data


def _read_rows(data: ReportData, tables: list, labels: list[str], manifest: dict[str, Any],
               max_examples: int) -> None:
  """Fills metrics, curves and examples of ``data`` from the shard tables."""
  import pyarrow as pa  # pylint: disable=g-import-not-at-top
  metric_cols: dict[tuple[str, str], list[np.ndarray]] = {}
  curve_cols: dict[tuple[str, str], list[np.ndarray]] = {}
  order, rows = [], []
  for _, table in tables:
    n = table.num_rows
    index = (np.asarray(table.column("index").to_numpy(zero_copy_only=False), np.int64)
             if "index" in table.schema.names else np.arange(n) + len(order))
    order.append(index)
    for field in table.schema:
      for m in data.methods:
        if not field.name.endswith("." + m) or field.name.startswith(("scores.", "word_scores.")):
          continue
        key = field.name[:-len(m) - 1]
        if key in NOT_LEADERBOARD:
          continue
        col = table.column(field.name)
        if pa.types.is_floating(field.type) or pa.types.is_integer(field.type):
          metric_cols.setdefault((m, key), []).append(
              np.asarray(col.to_numpy(zero_copy_only=False), np.float64))
        elif pa.types.is_list(field.type) and key.endswith("_curve"):
          curve_cols.setdefault((m, key), []).append(
              np.asarray([[np.nan] if v is None else v for v in col.to_pylist()], dtype=object))
    rows.append(table)
  if not order:
    data.num_examples = 0
    return
  all_index = np.concatenate(order)
  sort = np.argsort(all_index, kind="stable")
  data.num_examples = int(all_index.size)
  for (m, key), parts in metric_cols.items():
    data.metrics.setdefault(m, {})[key] = np.concatenate(parts)[sort] \
        if sum(p.size for p in parts) == all_index.size else np.concatenate(parts)
  data.higher_is_better = {k: higher_is_better(k) for k in data.metric_names()}
  _read_curves(data, curve_cols, manifest)
  chosen = set(all_index[sort][:max_examples].tolist())
  examples = []
  for table in rows:
    cols = [c for c in table.schema.names
            if c in _ROW_COLUMNS or c.startswith("word_scores.")]
    for r in table.select(cols).to_pylist():
      idx = r.get("index")
      if idx is not None and idx not in chosen:
        continue
      examples.append((idx if idx is not None else len(examples), _example(r, data.methods,
                                                                           labels)))
  examples.sort(key=lambda e: e[0])
  data.examples = [e for _, e in examples[:max_examples]]


def _example(r: dict[str, Any], methods: list[str], labels: list[str]) -> ReportExample:
  pred = r.get("prediction")
  probs = r.get("probabilities")
  prob = None
  if pred is not None and probs and 0 <= int(pred) < len(probs) and probs[int(pred)] is not None:
    prob = float(probs[int(pred)])
  words = [str(w) for w in (r.get("words") or [])]
  scores = {}
  for m in methods:
    s = r.get(f"word_scores.{m}")
    if s is not None and len(s) == len(words):
      scores[m] = (words, np.asarray([np.nan if v is None else v for v in s], np.float64))
  return ReportExample(id=str(r.get("id", r.get("index", ""))), text=str(r.get("text", "")),
                       label=_label_name(r.get("label"), labels),
                       prediction=_label_name(pred, labels), probability=prob, words=scores)


def _read_curves(data: ReportData, curve_cols: dict, manifest: dict[str, Any]) -> None:
  by_name: dict[str, dict[str, np.ndarray]] = {}
  for (m, key), parts in curve_cols.items():
    rows = [np.asarray(v, np.float64) for p in parts for v in p]
    levels = max((r.size for r in rows), default=0)
    if levels < 2:
      continue
    grid = np.full((len(rows), levels), np.nan)
    for i, r in enumerate(rows):
      grid[i, :r.size] = r
    by_name.setdefault(key, {})[m] = grid
  for key, values in by_name.items():
    levels = next(iter(values.values())).shape[1]
    x, xlabel = _curve_x(key, levels, manifest)
    values = {m: v for m, v in values.items() if v.shape[1] == levels}
    data.curves.append(Curve(key, x, values, xlabel=xlabel, ylabel=_curve_ylabel(key)))


def _meta(directory: str, manifest: dict[str, Any], config: dict[str, Any],
          model: dict[str, Any], seconds: dict[str, Any]) -> dict[str, Any]:
  meta: dict[str, Any] = {"sweep": directory}
  if model.get("name"):
    meta["model"] = model["name"] + (f" ({model['dtype']})" if model.get("dtype") else "")
  source = (config.get("data") or {}).get("source")
  if source:
    meta["data"] = source
  if config.get("target"):
    meta["target"] = config["target"]
  hyper = {m[0]: dict(m[1]) for m in config.get("methods", []) if m and len(m) > 1 and m[1]}
  if hyper:
    meta["hyperparameters"] = json.dumps(hyper, sort_keys=True)
  meta["schema version"] = manifest.get("schema_version")
  meta["complete"] = "yes" if manifest.get("complete") else "no"
  if manifest.get("errors"):
    meta["rows skipped or truncated"] = manifest["errors"]
  if not seconds:
    meta["time per example"] = "not recorded by this sweep"
  return meta


def _side_file(data: ReportData, directory: str, path: str | os.PathLike | None,
               default: str, what: str, hint: str, read) -> None:
  """Reads an optional extra file with ``read(text, path)``; explicit paths must be readable."""
  explicit = path is not None
  if path is None:
    candidate = os.path.join(directory, default)
    if not os.path.exists(candidate):
      return
    path = candidate
  path = os.fspath(path)
  try:
    with open(path, encoding="utf-8") as f:
      text = f.read()
    read(text, path)
  except (OSError, ValueError, KeyError, TypeError, IndexError, InputError) as e:
    reason = e.strerror if isinstance(e, OSError) and e.strerror else (
        str(e) if isinstance(e, InputError) else f"{type(e).__name__}: {e}")
    if explicit:
      raise InputError(f"cannot read the {what} {path} ({reason}); {hint}.") from None
    data.missing.append(f"{default} in the sweep directory is unreadable ({reason}); its "
                        f"{what} are not shown.")


def _add_head_masks(data: ReportData, directory: str,
                    path: str | os.PathLike | None) -> None:
  def read(text: str, _: str) -> None:
    from jaxplain.attribution.heads import HeadMasks  # pylint: disable=g-import-not-at-top
    masks = HeadMasks.from_json(text)
    data.head_grids.append(HeadGrid(
        title=f"important heads (syntactic or positional): {int(masks.synt_pos.sum())} of "
              f"{masks.synt_pos.size}", values=masks.synt_pos, label="head mask",
        masks=masks))
  _side_file(data, directory, path, HEAD_MASKS, "head masks",
             "pass the head_masks.json that `jaxplain heads` wrote", read)


def diffmask_maps(value: Mapping[str, Any]) -> list[LayerTokenMap]:
  """Layer x token maps from the JSON of ``jaxplain diffmask explain --json``.

  Args:
    value: ``{"variant": ..., "examples": [{"text", "tokens", "keep" [T][L+2], ...}]}``.
  Returns:
    One :class:`LayerTokenMap` per example.
  Raises:
    InputError: not that JSON, or an example whose ``keep`` is not ``[len(tokens), K]`` in
      ``[0, 1]``.
  """
  if not isinstance(value, Mapping) or not isinstance(value.get("examples"), list):
    raise InputError("not the output of `jaxplain diffmask explain --json` (no \"examples\" "
                     "list)")
  variant = str(value.get("variant") or "DiffMask")
  maps = []
  for i, ex in enumerate(value["examples"]):
    tokens = [str(t) for t in ex["tokens"]]
    keep = np.asarray(ex["keep"], np.float64)
    if keep.ndim != 2 or keep.shape[0] != len(tokens) or keep.shape[1] < 2:
      raise InputError(f"example {i}: keep has shape {keep.shape} for {len(tokens)} tokens; "
                       "expected [tokens, layers + 2]")
    if not np.all(np.isfinite(keep)) or keep.min() < 0 or keep.max() > 1:
      raise InputError(f"example {i}: keep probabilities must lie in [0, 1]")
    text = str(ex.get("text", ""))
    label = ex.get("label")
    caption = f"{variant} gates: {text[:60]}" + ("..." if len(text) > 60 else "")
    if label is not None:
      caption += f" (predicted {label})"
    maps.append(LayerTokenMap(str(ex.get("id", i)), tokens, keep, caption))
  return maps


def _add_diffmask(data: ReportData, directory: str, path: str | os.PathLike | None) -> None:
  def read(text: str, _: str) -> None:
    data.diffmask.extend(diffmask_maps(json.loads(text)))
  _side_file(data, directory, path, DIFFMASK, "DiffMask keep probabilities",
             "pass the output of `jaxplain diffmask explain --json`", read)
