"""Output rows: one per example, with tokens, words, scores and metrics, as an Arrow table.

Token-level lists hold the example's real tokens only (special tokens included, padding
dropped). Word scores are the sums of their word pieces' scores (special tokens dropped), the
same as :meth:`jaxplain.Attribution.word_scores` with ``aggregate="sum"``. The column set is a
function of the config alone, so every shard has the same schema (``docs/sweep_schema.md``).
"""

from typing import Any, Sequence

import numpy as np

from jaxplain.contracts import Batch
from jaxplain.corpus.plan import SweepConfig


def word_spans(word_ids: np.ndarray) -> list[tuple[int, int]]:
  """``[start, end)`` token positions of each word (runs of equal ``word_ids >= 0``)."""
  spans, j, n = [], 0, len(word_ids)
  while j < n:
    w = word_ids[j]
    if w < 0:
      j += 1
      continue
    k = j + 1
    while k < n and word_ids[k] == w:
      k += 1
    spans.append((j, k))
    j = k
  return spans


class RowBuilder:
  """Builds row dicts from a batch and the step's outputs, and tables from rows."""

  def __init__(self, config: SweepConfig, tokenizer: Any, labels: Sequence[str]):
    self.config, self.tokenizer, self.labels = config, tokenizer, tuple(labels)
    self.pairs = config.data.text_pair_column is not None
    self.has_labels = config.data.label_column is not None

  def record(self, index: int, example_id: str, text: str, pair: str | None,
             label: int | None, truncated: bool, batch: Batch, r: int,
             out: dict[str, np.ndarray]) -> dict[str, Any]:
    """Row ``r`` of ``batch`` (example ``index``), with the step outputs ``out`` (``[B, ...]``)."""
    n = int(np.asarray(batch.attention_mask[r]).sum())
    ids = np.asarray(batch.input_ids[r, :n], np.int32)
    wids = np.asarray(batch.word_ids[r, :n], np.int32)
    seqs = np.asarray(batch.sequence_ids[r, :n])
    offs = np.asarray(batch.offsets[r, :n])
    spans = word_spans(wids)
    words = []
    for a, b in spans:
      source = pair if seqs[a] == 1 and pair is not None else text
      words.append(source[int(offs[a, 0]):int(offs[b - 1, 1])])
    row = {"index": index, "id": example_id, "text": text, "label": label,
           "prediction": int(out["prediction"][r]), "target": int(out["target"][r]),
           "probabilities": np.asarray(out["probabilities"][r], np.float32),
           "truncated": truncated, "n_tokens": n,
           "tokens": self.tokenizer.convert_ids_to_tokens(ids.tolist()), "input_ids": ids,
           "word_ids": wids, "words": words}
    if self.pairs:
      row["text_pair"] = pair
    for key, value in out.items():
      if key.startswith("scores."):
        s = np.asarray(value[r, :n], np.float32)
        row[key] = s
        row["word_scores." + key[len("scores."):]] = np.asarray(
            [s[a:b].sum() for a, b in spans], np.float32)
      elif "." in key and np.ndim(value) == 2:  # <metric>_curve.<method>: one per level
        row[key] = np.asarray(value[r], np.float32)
      elif "." in key:  # delta.<method>, <metric>.<method>
        row[key] = float(value[r])
    return row

  def columns(self, step_keys: Sequence[str]) -> list[tuple[str, Any]]:
    """``(name, arrow type)`` of every column, in output order."""
    import pyarrow as pa  # pylint: disable=g-import-not-at-top
    cols = [("index", pa.int64()), ("id", pa.string()), ("text", pa.string())]
    if self.pairs:
      cols.append(("text_pair", pa.string()))
    if self.has_labels:
      cols.append(("label", pa.int32()))
    cols += [("prediction", pa.int32()), ("target", pa.int32()),
             ("probabilities", pa.list_(pa.float32())), ("truncated", pa.bool_()),
             ("n_tokens", pa.int32()), ("tokens", pa.list_(pa.string())),
             ("input_ids", pa.list_(pa.int32())), ("word_ids", pa.list_(pa.int32())),
             ("words", pa.list_(pa.string()))]
    for method in self.config.method_names:
      cols += [(f"scores.{method}", pa.list_(pa.float32())),
               (f"word_scores.{method}", pa.list_(pa.float32()))]
      mine = [k for k in step_keys if k.endswith(f".{method}") and not k.startswith("scores.")]
      values = sorted((k for k in mine if not k.split(".")[0].endswith("_curve")),
                      key=lambda k: (not k.startswith("delta."), self._metric_rank(k), k))
      curves = sorted((k for k in mine if k.split(".")[0].endswith("_curve")),
                      key=lambda k: (self._metric_rank(k), k))
      cols += [(k, pa.float32()) for k in values]
      cols += [(k, pa.list_(pa.float32())) for k in curves]
    return cols

  def _metric_rank(self, key: str) -> int:
    """Position of the metric a ``<metric...>.<method>`` key belongs to, in config order."""
    head = key.split(".")[0]
    for i, m in enumerate(self.config.metrics):
      if head == m or head.startswith(m + "_"):
        return i
    return len(self.config.metrics)

  def table(self, rows: Sequence[dict[str, Any]], step_keys: Sequence[str]):
    """A ``pyarrow.Table`` of ``rows`` with the full schema (also when there are no rows)."""
    import pyarrow as pa  # pylint: disable=g-import-not-at-top
    cols = self.columns(step_keys)
    schema = pa.schema([pa.field(name, typ) for name, typ in cols],
                       metadata={"jaxplain.sweep.config_hash": self.config.config_hash()})
    arrays = []
    for name, typ in cols:
      values = [row.get(name) for row in rows]
      if pa.types.is_list(typ):
        values = [None if v is None else np.asarray(v).tolist() if isinstance(v, np.ndarray)
                  else list(v) for v in values]
      arrays.append(pa.array(values, type=typ))
    return pa.Table.from_arrays(arrays, schema=schema)
