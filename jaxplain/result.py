"""Attribution: the host-side result of :func:`jaxplain.attribute`.

It carries the ``[B, T]`` scores with everything needed to read them: tokens, word ids,
character offsets, the explained target, predicted probabilities, the method and its
hyperparameters, and convergence deltas where a method defines them. It aggregates word pieces
to words, converts to pandas/Arrow, and renders HTML (``_repr_html_`` in notebooks).
"""

import dataclasses
from typing import Any, Sequence

import numpy as np

from jaxplain.errors import InputError

WORD_AGGREGATIONS = ("sum", "mean", "max", "abs_sum")


@dataclasses.dataclass
class Attribution:
  """Token attributions for a batch of texts.

  Attributes:
    scores: ``float32 [B, T]``, 0 on padding.
    tokens: per example, the token strings of its real (non-padding) positions.
    input_ids, attention_mask: ``int32 [B, T]``.
    word_ids: ``int32 [B, T]``, -1 on special tokens and padding.
    offsets: ``int32 [B, T, 2]`` character spans into each example's own text.
    sequence_ids: ``int32 [B, T]``: 0/1 for the first/second text of a pair, -1 otherwise.
    texts, text_pairs: the inputs (``text_pairs`` may be ``None``).
    target: ``int32 [B]`` explained class per example (``None`` for a callable target).
    probabilities: ``float32 [B, C]`` predicted class probabilities (classification heads).
    labels: class names in logit order.
    method: the method's name; ``hyper``: its hyperparameters.
    deltas: ``float32 [B]`` convergence deltas (Integrated Gradients, and layer IG's embeddings
      row), else ``None``.
    extra: method-specific arrays, e.g. ``{"layers": [L+1, B, T]}``, and for layer IG
      ``{"layer_deltas": [L+1, B]}``, each row's sum minus ``f(x) - f(x')``.
  """

  scores: np.ndarray
  tokens: list[list[str]]
  input_ids: np.ndarray
  attention_mask: np.ndarray
  word_ids: np.ndarray
  offsets: np.ndarray
  sequence_ids: np.ndarray
  texts: list[str]
  text_pairs: list[str] | None
  target: np.ndarray | None
  probabilities: np.ndarray | None
  labels: tuple[str, ...]
  method: str
  hyper: dict[str, Any]
  deltas: np.ndarray | None = None
  extra: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

  def __len__(self) -> int:
    return self.scores.shape[0]

  def take(self, index: Sequence[int] | np.ndarray | slice) -> "Attribution":
    """Examples ``index`` (positions, in that order, or a slice), every per-example field with
    them: e.g. ``a.take([2, 0])`` or ``a.take(slice(0, 4))``; ``a.take(2)`` is example 2 alone."""
    try:
      pick = np.arange(len(self))[index]
    except IndexError as e:
      raise InputError(f"{e}: this Attribution holds {len(self)} examples; pass positions "
                       f"0..{len(self) - 1}.") from None
    pick = np.atleast_1d(pick)
    rows = lambda x: None if x is None else np.asarray(x)[pick]
    items = lambda x: None if x is None else [x[i] for i in pick]
    return dataclasses.replace(
        self, scores=rows(self.scores), tokens=items(self.tokens),
        input_ids=rows(self.input_ids), attention_mask=rows(self.attention_mask),
        word_ids=rows(self.word_ids), offsets=rows(self.offsets),
        sequence_ids=rows(self.sequence_ids), texts=items(self.texts),
        text_pairs=items(self.text_pairs), target=rows(self.target),
        probabilities=rows(self.probabilities), deltas=rows(self.deltas),
        extra={k: v[:, pick] for k, v in self.extra.items()})  # [L+1, B, ...]

  @property
  def predicted(self) -> np.ndarray | None:
    """``int [B]`` predicted class, when the head is a classifier."""
    return None if self.probabilities is None else self.probabilities.argmax(-1)

  def _example(self, i: Any) -> int:
    """``i`` as a position ``0..B-1`` (negative ones count from the end), or an InputError."""
    b = len(self)
    if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
      raise InputError(f"example index must be an int, got {type(i).__name__}; use "
                       "take(...) for several examples.")
    if not -b <= i < b:
      raise InputError(f"example {i} is out of range: this Attribution holds {b} examples; "
                       f"pass 0..{b - 1}.")
    return int(i) % b

  def token_scores(self, i: int) -> tuple[list[str], np.ndarray]:
    """Example ``i``'s real tokens and their scores."""
    i = self._example(i)
    n = int(self.attention_mask[i].sum())
    return self.tokens[i], self.scores[i, :n]

  def _word_text(self, i: int, positions: np.ndarray) -> str:
    seq = int(self.sequence_ids[i, positions[0]])
    text = self.texts[i] if seq <= 0 or self.text_pairs is None else self.text_pairs[i]
    start, end = int(self.offsets[i, positions[0], 0]), int(self.offsets[i, positions[-1], 1])
    return text[start:end]

  def word_scores(self, i: int, aggregate: str = "sum",
                  special_tokens: str = "drop") -> tuple[list[str], np.ndarray]:
    """Example ``i``'s scores aggregated from word pieces to words.

    Args:
      i: example index.
      aggregate: ``"sum"`` (default; keeps completeness), ``"mean"``, ``"max"`` or
        ``"abs_sum"`` over a word's pieces.
      special_tokens: ``"drop"`` them (default) or ``"keep"`` them as words of their own.
    Returns:
      ``(words, scores)``: the words as they appear in the text and a float32 array.
    """
    if aggregate not in WORD_AGGREGATIONS:
      raise InputError(f"unknown word aggregation {aggregate!r}; use one of "
                       f"{', '.join(WORD_AGGREGATIONS)}.")
    if special_tokens not in ("drop", "keep"):
      raise InputError(f"special_tokens must be 'drop' or 'keep', not {special_tokens!r}.")
    i = self._example(i)
    n = int(self.attention_mask[i].sum())
    wids, scores = self.word_ids[i, :n], self.scores[i, :n]
    words, values = [], []
    j = 0
    while j < n:
      w = wids[j]
      if w < 0:
        if special_tokens == "keep":
          words.append(self.tokens[i][j])
          values.append(scores[j])
        j += 1
        continue
      k = j
      while k + 1 < n and wids[k + 1] == w:
        k += 1
      piece = scores[j:k + 1]
      values.append({"sum": piece.sum(), "mean": piece.mean(), "max": piece.max(),
                     "abs_sum": np.abs(piece).sum()}[aggregate])
      words.append(self._word_text(i, np.arange(j, k + 1)))
      j = k + 1
    return words, np.asarray(values, np.float32)

  def to_pandas(self, aggregate: str | None = None):
    """One row per (example, token), or per (example, word) with ``aggregate``.

    Columns: ``example``, ``position``, ``token`` (or ``word``), ``score``, ``method``, and where
    the explained class is known, ``target`` and its name ``target_label``.
    """
    import pandas as pd  # pylint: disable=g-import-not-at-top
    rows = []
    for i in range(len(self)):
      explained = {}
      if self.target is not None:
        cls = int(self.target[i])
        explained["target"] = cls
        if self.probabilities is not None and 0 <= cls < len(self.labels):  # a classifier's class
          explained["target_label"] = self.labels[cls]
      if aggregate is None:
        toks, sc = self.token_scores(i)
        unit = "token"
      else:
        toks, sc = self.word_scores(i, aggregate)
        unit = "word"
      for j, (t, s) in enumerate(zip(toks, sc)):
        rows.append({"example": i, "position": j, unit: t, "score": float(s),
                     "method": self.method, **explained})
    return pd.DataFrame(rows)

  def to_arrow(self, aggregate: str | None = None):
    """The same table as :meth:`to_pandas`, as a ``pyarrow.Table``."""
    import pyarrow as pa  # pylint: disable=g-import-not-at-top
    return pa.Table.from_pandas(self.to_pandas(aggregate), preserve_index=False)

  def to_html(self, **kwargs: Any) -> str:
    """A self-contained HTML heatmap of every example (see :mod:`jaxplain.viz.html`)."""
    from jaxplain.viz.html import attribution_html  # pylint: disable=g-import-not-at-top
    return attribution_html(self, **kwargs)

  def _repr_html_(self) -> str:
    return self.to_html(full_page=False)

  def __repr__(self) -> str:
    return (f"Attribution(method={self.method!r}, examples={len(self)}, "
            f"tokens={self.scores.shape[1]})")


def concatenate(parts: Sequence[Attribution]) -> Attribution:
  """Joins attributions of consecutive chunks, padding ``[B, T]`` arrays to the longest T."""
  if len(parts) == 1:
    return parts[0]
  t = max(p.scores.shape[1] for p in parts)

  def pad(name: str, fill: int | float) -> np.ndarray:
    arrays = []
    for p in parts:
      a = getattr(p, name)
      width = [(0, 0), (0, t - a.shape[1])] + [(0, 0)] * (a.ndim - 2)
      arrays.append(np.pad(a, width, constant_values=fill))
    return np.concatenate(arrays)

  first = parts[0]
  opt = lambda name: (None if getattr(first, name) is None
                      else np.concatenate([getattr(p, name) for p in parts]))
  extra = {}
  for k in first.extra:  # per-layer arrays [L+1, B, T] (pad T) or [L+1, B]: join B
    padded = [a if a.ndim == 2 else np.pad(a, [(0, 0), (0, 0), (0, t - a.shape[2])])
              for a in (p.extra[k] for p in parts)]
    extra[k] = np.concatenate(padded, 1)
  return Attribution(
      scores=pad("scores", 0.0), tokens=[tok for p in parts for tok in p.tokens],
      input_ids=pad("input_ids", 0), attention_mask=pad("attention_mask", 0),
      word_ids=pad("word_ids", -1), offsets=pad("offsets", 0),
      sequence_ids=pad("sequence_ids", -1), texts=[x for p in parts for x in p.texts],
      text_pairs=None if first.text_pairs is None else [x for p in parts for x in p.text_pairs],
      target=opt("target"), probabilities=opt("probabilities"), labels=first.labels,
      method=first.method, hyper=first.hyper, deltas=opt("deltas"), extra=extra)
