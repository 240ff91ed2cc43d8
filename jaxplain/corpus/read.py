"""Reading a corpus in a fixed order: local csv / jsonl / parquet files or a Hugging Face data set.

The order of the rows is the file's (or the hub split's); example ``i`` is row ``i`` after
``limit``, and that index, never the position in a batch, is what shards, process slices and
PRNG keys are derived from. Values are kept raw here: checking each row (empty or undecodable
text, an unknown label) happens when its shard is processed, so a bad row becomes a line in the
errors file instead of stopping the sweep.
"""

import dataclasses
import math
import os
from typing import Any, Sequence

import numpy as np

from jaxplain.corpus.plan import DataSpec
from jaxplain.errors import InputError

_COMPRESSIONS = (".bz2", ".gz", ".xz", ".zip", ".zst")


@dataclasses.dataclass
class Corpus:
  """Examples in file order.

  Attributes:
    ids: example ids as strings (the id column, or the row index).
    texts: raw text values (``str``, or ``None``/bytes/floats for bad rows).
    text_pairs: raw second texts, or ``None`` for single texts.
    labels: raw label values, or ``None`` without a label column.
  """

  ids: list[str]
  texts: list[Any]
  text_pairs: list[Any] | None
  labels: list[Any] | None

  def __len__(self) -> int:
    return len(self.texts)


def _base_format(path: str) -> str:
  base = path.lower()
  for ext in _COMPRESSIONS:
    base = base.removesuffix(ext)
  for fmt in (".csv", ".tsv", ".jsonl", ".json", ".parquet"):
    if base.endswith(fmt):
      return fmt[1:]
  raise InputError(f"{path}: unknown format; use .csv, .tsv, .jsonl or .parquet (csv/jsonl may "
                   "be compressed: .bz2, .gz, .xz).")


def _read_local(path: str, spec: DataSpec):
  import pandas as pd  # pylint: disable=g-import-not-at-top
  fmt = _base_format(path)
  try:
    if fmt in ("csv", "tsv"):
      # Every value stays a string ("NA" is a text, not a missing value; only an empty field
      # is missing); undecodable bytes survive as surrogates and are reported per row instead
      # of failing the whole file. Columns are Python objects: pandas' Arrow-backed str dtype
      # cannot hold those surrogates. Labels are parsed later (``label_ids``).
      return pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", nrows=spec.limit,
                         dtype=object, keep_default_na=False, na_values=[""],
                         encoding_errors="surrogateescape")
    if fmt == "jsonl":
      return _read_jsonl(path, spec.limit)
    if fmt == "json":
      return pd.read_json(path, dtype=False)
    return pd.read_parquet(path)
  except Exception as e:  # a corrupt or unreadable file
    raise InputError(f"could not read {path} ({type(e).__name__}: {e}).") from None


class BadValue:
  """A row that could not be parsed at all (an invalid JSON line); reported, then skipped."""

  def __init__(self, reason: str):
    self.reason = reason

  def __repr__(self) -> str:
    return f"BadValue({self.reason!r})"


def _open_text(path: str):
  """``path`` (possibly compressed) as text; undecodable bytes become surrogates."""
  import bz2, gzip, lzma  # pylint: disable=g-import-not-at-top,multiple-imports
  opener = {".bz2": bz2.open, ".gz": gzip.open, ".xz": lzma.open}.get(
      os.path.splitext(path)[1].lower(), open)
  return opener(path, "rt", encoding="utf-8", errors="surrogateescape")


def _read_jsonl(path: str, limit: int | None):
  """A JSON-lines file, one record per non-blank line; a line that is not a JSON object becomes
  a row of :class:`BadValue` s (reported in the errors file) instead of failing the file."""
  import json  # pylint: disable=g-import-not-at-top
  import pandas as pd  # pylint: disable=g-import-not-at-top
  records, bad = [], {}
  with _open_text(path) as f:
    for number, line in enumerate(f, 1):
      if limit is not None and len(records) >= limit:
        break
      if not line.strip():
        continue
      try:
        value = json.loads(line)
      except json.JSONDecodeError as e:
        value = None
        reason = f"line {number} is not valid JSON ({e.msg})"
      else:
        reason = None if isinstance(value, dict) else f"line {number} is not a JSON object"
      if reason is not None:
        bad[len(records)] = BadValue(reason)
        value = {}
      records.append(value)
  df = pd.DataFrame(records, dtype=object)
  for row, value in bad.items():
    df.loc[row, :] = value
  return df


def _read_hub(spec: DataSpec):
  try:
    import datasets  # pylint: disable=g-import-not-at-top
    ds = datasets.load_dataset(spec.source, spec.name, split=spec.split)
  except Exception as e:  # offline, unknown name, unknown split
    raise InputError(f"{spec.source} is not a local file and could not be loaded from the Hugging "
                     f"Face hub ({type(e).__name__}: {e}); check the name, config and split, or "
                     "pass a local csv/jsonl/parquet file.") from None
  if spec.limit is not None:
    ds = ds.select(range(min(spec.limit, len(ds))))
  return ds.to_pandas()


def read_corpus(spec: DataSpec) -> Corpus:
  """Reads the examples of ``spec`` in file order (the first ``spec.limit`` rows).

  Raises:
    InputError: a missing or unreadable file, an unknown format, missing columns, an
      unreachable hub data set.
  """
  path = os.path.expanduser(spec.source)
  if os.path.exists(path):
    df = _read_local(path, spec)
  elif path.startswith((".", "/", "~")) or _looks_like_file(path):
    raise InputError(f"no data file at {spec.source}; pass a csv/jsonl/parquet path or a Hugging "
                     "Face data set name.")
  else:
    df = _read_hub(spec)
  if spec.limit is not None:
    df = df.head(spec.limit)
  wanted = [c for c in (spec.text_column, spec.text_pair_column, spec.label_column,
                        spec.id_column) if c]
  missing = [c for c in wanted if c not in df.columns]
  if missing:
    raise InputError(f"{spec.source} has no column(s) {', '.join(missing)}; it has "
                     f"{', '.join(map(str, df.columns))}. Name the columns with --text-column / "
                     "--label-column (text_column= / label_column= from Python).")
  n = len(df)
  ids = ([str(i) for i in range(n)] if spec.id_column is None
         else [_id(v, i) for i, v in enumerate(df[spec.id_column].tolist())])
  col = lambda c: None if c is None else [_none_if_nan(v) for v in df[c].tolist()]
  return Corpus(ids=ids, texts=col(spec.text_column), text_pairs=col(spec.text_pair_column),
                labels=col(spec.label_column))


def _looks_like_file(path: str) -> bool:
  try:
    _base_format(path)
    return True
  except InputError:
    return False


def _none_if_nan(v: Any) -> Any:
  if isinstance(v, float) and math.isnan(v):
    return None
  if isinstance(v, np.generic):
    return v.item()
  return v


def _id(v: Any, i: int) -> str:
  v = _none_if_nan(v)
  return str(i) if v is None or isinstance(v, BadValue) else str(v)


def check_text(value: Any) -> tuple[str | None, str | None]:
  """``(text, None)`` for a usable text, else ``(None, reason)``."""
  if isinstance(value, BadValue):
    return None, value.reason
  if value is None:
    return None, "empty text"
  if isinstance(value, bytes):
    try:
      value = value.decode("utf-8")
    except UnicodeDecodeError as e:
      return None, f"undecodable text ({e.reason} at byte {e.start})"
  if not isinstance(value, str):
    return None, f"text is a {type(value).__name__}, not a string"
  try:
    value.encode("utf-8")
  except UnicodeEncodeError:
    return None, "undecodable text (invalid UTF-8 in the file)"
  if not value.strip():
    return None, "empty text"
  return value, None


def label_ids(labels: Sequence[Any], model_labels: Sequence[str],
              label_map: Sequence[tuple[Any, Any]] = ()) -> list[tuple[int | None, str | None]]:
  """Each raw label as ``(class_id, None)``, ``(None, None)`` when missing, or ``(None, reason)``.

  A label is an int class id, or a name matched (case-insensitively) against the model's
  labels, after ``label_map`` (``raw -> id or name``) is applied.
  """
  mapping = {_key(k): v for k, v in label_map}
  lower = [str(l).lower() for l in model_labels]
  c = len(model_labels)
  out = []
  for y in labels:
    y = _none_if_nan(y)
    if y is None:
      out.append((None, None))
      continue
    if mapping:
      if _key(y) not in mapping:
        out.append((None, f"label {y!r} is not in the label map"))
        continue
      y = mapping[_key(y)]
    cls = None
    if isinstance(y, bool):
      cls = int(y)
    elif isinstance(y, int):
      cls = y
    elif isinstance(y, float) and y.is_integer():
      cls = int(y)
    elif isinstance(y, str) and y.strip().lstrip("-").isdigit():
      cls = int(y.strip())
    elif isinstance(y, str) and _integral_float(y):
      cls = int(float(y))
    elif isinstance(y, str) and y.lower() in lower:
      cls = lower.index(y.lower())
    if cls is None:
      out.append((None, f"label {y!r} is neither a class id nor one of {list(model_labels)}"))
    elif not 0 <= cls < c:
      out.append((None, f"label {cls} is outside 0..{c - 1}"))
    else:
      out.append((cls, None))
  return out


def _key(v: Any) -> str:
  v = _none_if_nan(v)
  if isinstance(v, float) and v.is_integer():
    v = int(v)
  return str(v)


def _integral_float(s: str) -> bool:
  try:
    v = float(s)
  except ValueError:
    return False
  return math.isfinite(v) and v.is_integer()
