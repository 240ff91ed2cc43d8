"""The sweep plan: what to read, which model, methods, metrics and shapes, and where to write.

A :class:`SweepConfig` is a frozen, JSON-able description of a sweep, read from a TOML file
(:func:`read_config`) and/or built from flags (:func:`make_config`). Everything that changes the
rows a sweep writes goes into :meth:`SweepConfig.fingerprint`; its SHA-256 is stored in the
manifest, and an output directory written under another fingerprint is refused with the list of
fields that differ (:func:`diff_fingerprints`), never mixed in.

A TOML file looks like::

    model = "path/to/bert-sst2"        # omit for the default model
    output = "sweep-out"
    batch_size = 32
    max_length = 128
    dtype = "float32"                  # or "bfloat16" (compute; attributions accumulate in f32)
    buckets = "default"                # or "fine" (less padding, more shapes), or [16, 32, ...]
    metrics = ["comprehensiveness", "sufficiency"]

    [data]
    source = "reviews.csv.bz2"         # or a Hugging Face data set name
    text_column = "text"
    label_column = "label"

    [methods.integrated_gradients]
    steps = 50
    [methods.gradient_x_input]
    [methods.saliency]
"""

import dataclasses
import hashlib
import json
import os
import tomllib
from typing import Any, Hashable, Mapping, Sequence

from jaxplain.errors import InputError

SCHEMA_VERSION = 1
"""Version of the Parquet/manifest layout (``docs/sweep_schema.md``); bumped on any change."""

METRIC_NAMES = ("comprehensiveness", "sufficiency", "aopc_log_odds", "deletion", "insertion",
                "auac", "au_mse")
"""Faithfulness metrics a sweep can compute in the same compiled step as the attributions."""

ON_LONG = ("truncate", "skip")
SLICINGS = ("round_robin", "block")
TARGETS = ("predicted", "label")
DTYPES = ("float32", "bfloat16")

DEFAULT_METHODS = (("gradient_x_input", ()),)


@dataclasses.dataclass(frozen=True)
class DataSpec:
  """Where the examples come from.

  Attributes:
    source: a local ``.csv`` (``.csv.bz2``/``.gz``...), ``.jsonl`` or ``.parquet`` file, or a
      Hugging Face data set name (needs a network).
    name: the hub data set's configuration name, if any.
    split: the hub split (``"train"`` by default).
    text_column: the text column.
    text_pair_column: the second text of pairs, or ``None``.
    label_column: the gold label column (class ids, or names from the model's labels), or
      ``None``.
    id_column: a column of example ids; ``None`` uses the row index.
    limit: read only the first ``limit`` rows (in file order).
  """

  source: str
  name: str | None = None
  split: str = "train"
  text_column: str = "text"
  text_pair_column: str | None = None
  label_column: str | None = None
  id_column: str | None = None
  limit: int | None = None


@dataclasses.dataclass(frozen=True)
class SweepConfig:
  """A whole sweep.

  Attributes:
    data: the :class:`DataSpec`.
    output: the output directory.
    model: a model directory or hub id; ``None`` for :func:`jaxplain.default_model`.
    methods: ``((canonical_name, ((hyper, value), ...)), ...)`` in output order.
    metrics: faithfulness metric names (:data:`METRIC_NAMES`), computed for every method.
    metric_options: ``((metric, ((key, value), ...)), ...)`` passed to the metric's protocol.
    batch_size: examples per step over all local devices (rounded up to a multiple of the
      device count).
    max_length: longest input in tokens (``None``: the model's limit).
    dtype: compute dtype, ``"float32"`` or ``"bfloat16"``.
    seed: PRNG seed; example ``i`` uses ``fold_in(key(seed), i)``.
    shard_size: examples per output shard (per process); a shard is the unit of resumption.
    on_long: ``"truncate"`` over-long inputs (recorded in the errors file) or ``"skip"`` them.
    target: explain the ``"predicted"`` class or the gold ``"label"``.
    slicing: how processes split the corpus: ``"round_robin"`` by example index or
      contiguous ``"block"``\\ s.
    label_map: ``((raw, class), ...)`` mapping raw label values to class ids or names.
    buckets: padded lengths: ``"default"`` (:data:`jaxplain.models.BUCKETS`), ``"fine"``
      (:data:`jaxplain.models.FINE_BUCKETS`: less padding, more compiled shapes; for large
      corpora of short texts) or increasing token counts.
  """

  data: DataSpec
  output: str
  model: str | None = None
  methods: tuple[tuple[str, tuple[tuple[str, Hashable], ...]], ...] = DEFAULT_METHODS
  metrics: tuple[str, ...] = ()
  metric_options: tuple[tuple[str, tuple[tuple[str, Hashable], ...]], ...] = ()
  batch_size: int = 32
  max_length: int | None = None
  dtype: str = "float32"
  seed: int = 0
  shard_size: int = 1024
  on_long: str = "truncate"
  target: str = "predicted"
  slicing: str = "round_robin"
  label_map: tuple[tuple[Any, Any], ...] = ()
  buckets: str | tuple[int, ...] = "default"

  def __post_init__(self):
    from jaxplain.models.tokenize import resolve_buckets  # pylint: disable=g-import-not-at-top
    resolve_buckets(self.buckets)  # an InputError naming the presets, or None
    _check_choice("dtype", self.dtype, DTYPES)
    _check_choice("on_long", self.on_long, ON_LONG)
    _check_choice("target", self.target, TARGETS)
    _check_choice("slicing", self.slicing, SLICINGS)
    for name in ("batch_size", "shard_size"):
      v = getattr(self, name)
      if not isinstance(v, int) or v < 1:
        raise InputError(f"{name} must be a positive integer, got {v!r}.")
    if self.max_length is not None and (not isinstance(self.max_length, int)
                                        or self.max_length < 3):
      raise InputError(f"max_length must be an integer >= 3, got {self.max_length!r}.")
    if not self.methods:
      raise InputError("no methods given; name at least one, e.g. --method gradient_x_input.")
    bad = [m for m in self.metrics if m not in METRIC_NAMES]
    if bad:
      raise InputError(f"unknown metric(s) {', '.join(bad)}; a sweep computes "
                       f"{', '.join(METRIC_NAMES)}.")
    if self.target == "label" and self.data.label_column is None:
      raise InputError("target 'label' needs a label column; pass --label-column.")
    if self.data.limit is not None and self.data.limit < 0:
      raise InputError(f"limit must be >= 0, got {self.data.limit}.")

  @property
  def method_names(self) -> tuple[str, ...]:
    return tuple(name for name, _ in self.methods)

  def fingerprint(self) -> dict[str, Any]:
    """Every field that changes the rows written (the output directory and the process layout
    do not), as plain JSON values."""
    out = _jsonable(dataclasses.asdict(self))
    out.pop("output")
    if out["buckets"] == "default":  # as sweeps written before the option existed
      out.pop("buckets")
    return out

  def config_hash(self) -> str:
    """SHA-256 of :meth:`fingerprint` (stored in the manifest)."""
    text = json.dumps(self.fingerprint(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _check_choice(name: str, value: Any, allowed: Sequence[str]) -> None:
  if value not in allowed:
    raise InputError(f"unknown {name} {value!r}; use one of {', '.join(allowed)}.")


def _jsonable(x: Any) -> Any:
  if isinstance(x, dict):
    return {str(k): _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  if x is None or isinstance(x, (bool, int, float, str)):
    return x
  return repr(x)


def _hyper(items: Mapping[str, Any] | None, what: str) -> tuple[tuple[str, Hashable], ...]:
  out = []
  for k, v in sorted((items or {}).items()):
    if isinstance(v, list):
      v = tuple(v)
    try:
      hash(v)
    except TypeError:
      raise InputError(f"{what} value {k}={v!r} is not a number, string or list.") from None
    out.append((str(k).replace("-", "_"), v))
  return tuple(out)


def _methods(methods: Any) -> tuple[tuple[str, tuple[tuple[str, Hashable], ...]], ...]:
  from jaxplain.attribution import canonical_name  # pylint: disable=g-import-not-at-top
  if isinstance(methods, Mapping):
    items = list(methods.items())
  else:
    items = [(m, {}) if isinstance(m, str) else tuple(m) for m in methods]
  out, seen = [], set()
  for name, hyper in items:
    canon = canonical_name(name)
    if canon in seen:
      raise InputError(f"method {name!r} is listed twice; give each method once.")
    seen.add(canon)
    out.append((canon, _hyper(dict(hyper), f"method {canon}")))
  return tuple(out)


def make_config(*, data: DataSpec | Mapping[str, Any], output: str,
                methods: Any = DEFAULT_METHODS, metric_options: Mapping[str, Any] | None = None,
                label_map: Mapping[Any, Any] | None = None, **fields: Any) -> SweepConfig:
  """A :class:`SweepConfig` from plain values (method names are canonicalised).

  Args:
    data: a :class:`DataSpec` or its fields as a dict.
    output: the output directory.
    methods: ``{"ig": {"steps": 20}, "saliency": {}}``, a list of names, or
      ``[(name, hyper), ...]``.
    metric_options: ``{"comprehensiveness": {"bins": [10, 50]}}``.
    label_map: ``{"fresh": "positive", "rotten": 0}``.
    **fields: the other :class:`SweepConfig` fields.
  Raises:
    InputError: an unknown method, metric, dtype or option.
  """
  if not isinstance(data, DataSpec):
    known = {f.name for f in dataclasses.fields(DataSpec)}
    unknown = set(data) - known
    if unknown:
      raise InputError(f"unknown [data] key(s) {', '.join(sorted(unknown))}; known: "
                       f"{', '.join(sorted(known))}.")
    if "source" not in data:
      raise InputError("no data source given; pass a file or a hub data set name.")
    data = DataSpec(**data)
  unknown = set(fields) - {f.name for f in dataclasses.fields(SweepConfig)}
  if unknown:
    raise InputError(f"unknown sweep option(s) {', '.join(sorted(unknown))}.")
  metrics = tuple(fields.pop("metrics", ()) or ())
  opts = tuple((m, _hyper(o, f"metric {m}")) for m, o in sorted((metric_options or {}).items()))
  lm = tuple(sorted(((k, v) for k, v in (label_map or {}).items()), key=repr))
  if isinstance(fields.get("buckets"), list):  # TOML arrays
    fields["buckets"] = tuple(fields["buckets"])
  return SweepConfig(data=data, output=str(output), methods=_methods(methods), metrics=metrics,
                     metric_options=opts, label_map=lm, **fields)


def read_config(path: str | os.PathLike, **overrides: Any) -> SweepConfig:
  """Reads a TOML sweep config; ``overrides`` (flags the user gave) win over the file.

  ``overrides`` may hold top-level fields, ``data`` (a dict merged into ``[data]``), ``methods``
  and ``metric_options``; ``None`` values are ignored.
  """
  return merge_config(load_toml(path), overrides)


def load_toml(path: str | os.PathLike) -> dict[str, Any]:
  """The parsed TOML sweep config at ``path``; :class:`InputError` if missing or invalid."""
  try:
    with open(path, "rb") as f:
      return tomllib.load(f)
  except FileNotFoundError:
    raise InputError(f"no sweep config at {path}; pass a TOML file (see docs/sweeps.md).") from None
  except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
    raise InputError(f"{path} is not valid TOML ({e}).") from None


def merge_config(raw: Mapping[str, Any], overrides: Mapping[str, Any]) -> SweepConfig:
  """A :class:`SweepConfig` from a parsed TOML mapping and flag overrides (``None`` = unset)."""
  raw = dict(raw)
  data = dict(raw.pop("data", {}) or {})
  data.update({k: v for k, v in dict(overrides.get("data") or {}).items() if v is not None})
  fields = {**raw, **{k: v for k, v in overrides.items() if k != "data" and v is not None}}
  if "output" not in fields:
    raise InputError("no output directory given; pass --output DIR or set output in the config.")
  return make_config(data=data, **fields)


def diff_fingerprints(old: Mapping[str, Any], new: Mapping[str, Any],
                      prefix: str = "") -> list[str]:
  """Dotted names of the fields whose values differ between two fingerprints."""
  out = []
  for k in sorted(set(old) | set(new)):
    a, b = old.get(k), new.get(k)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
      out.extend(diff_fingerprints(a, b, f"{prefix}{k}."))
    elif a != b:
      out.append(f"{prefix}{k} ({_short(a)} -> {_short(b)})")
  return out


def _short(x: Any) -> str:
  s = json.dumps(x)
  return s if len(s) <= 60 else s[:57] + "..."
