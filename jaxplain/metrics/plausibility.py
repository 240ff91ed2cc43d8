"""Plausibility: how well attributions agree with rationales people (or a proxy) marked.

A rationale is a boolean ``[B, T]`` mask over tokens, built from character spans
(:func:`rationale_from_spans`, through ``batch.offsets``) or word indices
(:func:`rationale_from_words`, through ``batch.word_ids``). Metrics compare it with the scores
over the *evaluable* units: real, non-special tokens, or whole words after :func:`to_words`
(ERASER scores its own word tokens, so ``unit="word"`` is the closer match).

* Token precision / recall / F1 of a hard selection (top ``k`` or a threshold).
* IOU F1 (ERASER's partial match): a predicted span counts when its best intersection over
  union with a gold span is ``>= 0.5``.
* Average precision (as ``sklearn.metrics.average_precision_score``) and ERASER's AUPRC
  (``auc(recall, precision)`` over ``precision_recall_curve``), per example.

All but IOU (variable-length spans, host-side numpy) are pure ``jnp`` and jit.
"""

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from jaxplain.contracts import Batch
from jaxplain.errors import InputError
from jaxplain.metrics._removal import check_scores, removable_mask, unit_ranks


def rationale_from_spans(batch: Batch, spans: Sequence[Sequence[tuple[int, int]]], *,
                         sequence: int = 0) -> np.ndarray:
  """Token rationale ``bool [B, T]``: tokens whose character span overlaps a rationale span.

  Args:
    batch: from ``model.encode`` (needs ``offsets``; ``sequence_ids`` for pairs).
    spans: per example, ``[start, end)`` character spans into its text.
    sequence: which text of a pair the spans index (0 first, 1 second).
  """
  if batch.offsets is None or batch.word_ids is None:
    raise InputError("character-span rationales need batch.offsets and word_ids; encode the "
                     "texts with model.encode.")
  off = np.asarray(batch.offsets)
  ok = np.asarray(batch.word_ids) >= 0
  if batch.sequence_ids is not None:
    ok &= np.asarray(batch.sequence_ids) == sequence
  if len(spans) != off.shape[0]:
    raise InputError(f"{len(spans)} rationale span lists for a batch of {off.shape[0]}; pass "
                     "one (possibly empty) list per example.")
  out = np.zeros(off.shape[:2], bool)
  for i, row in enumerate(spans):
    for start, end in row:
      out[i] |= ok[i] & (off[i, :, 0] < end) & (off[i, :, 1] > start)
  return out


def rationale_from_words(batch: Batch, words: Sequence[Sequence[int]]) -> np.ndarray:
  """Token rationale ``bool [B, T]``: tokens of the given word indices (``batch.word_ids``)."""
  if batch.word_ids is None:
    raise InputError("word-index rationales need batch.word_ids; encode with model.encode.")
  wid = np.asarray(batch.word_ids)
  if len(words) != wid.shape[0]:
    raise InputError(f"{len(words)} rationale word lists for a batch of {wid.shape[0]}.")
  return np.stack([np.isin(wid[i], np.asarray(list(w), np.int64)) & (wid[i] >= 0)
                   for i, w in enumerate(words)])


def check_rationale(rationale, valid) -> None:
  """:class:`InputError` naming the examples whose rationale has no evaluable unit."""
  if isinstance(rationale, jax.core.Tracer):
    return
  empty = np.where(~(np.asarray(rationale, bool) & np.asarray(valid, bool)).any(-1))[0]
  if empty.size:
    listed = ", ".join(str(i) for i in empty[:10]) + (" ..." if empty.size > 10 else "")
    raise InputError(f"the rationale is empty for {empty.size} example(s): {listed}. Drop "
                     "examples without a rationale (plausibility is undefined for them), or "
                     "check that the spans index the right text.")


def to_words(scores: Float[Array, "B T"], rationale: Bool[Array, "B T"], batch: Batch,
             aggregate: str = "sum") -> tuple[Array, Array, Array]:
  """Scores, rationale and validity per word (slot ``w`` = word ``w``), all ``[B, T]``.

  A word's score aggregates its tokens' (``"sum"``, ``"mean"``, ``"max"``, ``"abs_sum"``); it is
  in the rationale when any of its tokens is.
  """
  if batch.word_ids is None:
    raise InputError("word-level plausibility needs batch.word_ids; encode with model.encode.")
  t = scores.shape[-1]
  wid = jnp.where(removable_mask(batch), jnp.asarray(batch.word_ids), -1)
  seg = jnp.where(wid >= 0, wid, t)
  s = jnp.asarray(scores, jnp.float32)
  s = jnp.abs(s) if aggregate == "abs_sum" else s
  seg_op = lambda x, op: jax.vmap(lambda xi, si: op(xi, si, num_segments=t + 1)[:t])(x, seg)
  count = seg_op((wid >= 0).astype(jnp.float32), jax.ops.segment_sum)
  if aggregate == "max":
    ws = seg_op(jnp.where(wid >= 0, s, -jnp.inf), jax.ops.segment_max)
  else:
    ws = seg_op(jnp.where(wid >= 0, s, 0.0), jax.ops.segment_sum)
    if aggregate == "mean":
      ws = ws / jnp.maximum(count, 1.0)
  valid = count > 0
  wr = seg_op((jnp.asarray(rationale, bool) & (wid >= 0)).astype(jnp.float32),
              jax.ops.segment_max) > 0
  return jnp.where(valid, ws, 0.0), wr & valid, valid


def top_k_mask(scores: Float[Array, "B U"], valid: Bool[Array, "B U"], k) -> Bool[Array, "B U"]:
  """The ``k`` highest-scoring valid units per example (``k`` an int or ``[B]``); ties by position."""
  b, t = scores.shape
  units = jnp.where(valid, jnp.broadcast_to(jnp.arange(t), (b, t)), -1)
  ranks, _ = unit_ranks(scores, units, descending=True)
  return (ranks < jnp.broadcast_to(jnp.asarray(k, jnp.int32), (b,))[:, None]) & valid


def precision_recall_f1(pred: Bool[Array, "B U"], gold: Bool[Array, "B U"],
                        valid: Bool[Array, "B U"]) -> dict[str, Array]:
  """Per-example token precision, recall and F1 (ERASER's conventions: 0 when undefined)."""
  pred, gold = pred & valid, gold & valid
  tp = (pred & gold).sum(-1).astype(jnp.float32)
  npred, ngold = pred.sum(-1), gold.sum(-1)
  p = jnp.where(npred > 0, tp / jnp.maximum(npred, 1), 0.0)
  r = jnp.where(ngold > 0, tp / jnp.maximum(ngold, 1), 0.0)
  f1 = jnp.where((p > 0) & (r > 0), 2 * p * r / jnp.maximum(p + r, 1e-12), 0.0)
  return {"precision": p, "recall": r, "f1": f1}


def _at_thresholds(scores, gold, valid):
  """For each unit ``i``: (#gold, #all) among valid units scoring ``>= scores[i]``."""
  ge = valid[:, None, :] & (scores[:, None, :] >= scores[:, :, None])     # [B i j]
  return (ge & gold[:, None, :]).sum(-1), ge.sum(-1)


def average_precision(scores: Float[Array, "B U"], gold: Bool[Array, "B U"],
                      valid: Bool[Array, "B U"]) -> Float[Array, " B"]:
  r"""Average precision per example, as ``sklearn.metrics.average_precision_score``.

  .. math:: \mathrm{AP} = \sum_n (R_n - R_{n-1}) P_n = \frac1{|G|}\sum_{g \in G} P(s_g)

  over the distinct score thresholds (ties form one threshold). NaN when the rationale is empty.
  """
  gold, s = jnp.asarray(gold, bool) & valid, jnp.asarray(scores, jnp.float32)
  pos_ge, n_ge = _at_thresholds(s, gold, valid)
  prec = pos_ge / jnp.maximum(n_ge, 1)
  npos = gold.sum(-1)
  return jnp.where(npos > 0, jnp.where(gold, prec, 0.0).sum(-1) / jnp.maximum(npos, 1), jnp.nan)


def auprc(scores: Float[Array, "B U"], gold: Bool[Array, "B U"],
          valid: Bool[Array, "B U"]) -> Float[Array, " B"]:
  """ERASER's AUPRC per example: ``auc(recall, precision)`` of ``precision_recall_curve``.

  The trapezoid over the distinct thresholds, from the point (recall 0, precision 1)
  (``rationale_benchmark/metrics.py::_auprc``). NaN when the rationale is empty.
  """
  gold, s = jnp.asarray(gold, bool) & valid, jnp.asarray(scores, jnp.float32)
  pos_ge, n_ge = _at_thresholds(s, gold, valid)
  npos = gold.sum(-1, keepdims=True)
  rec = pos_ge / jnp.maximum(npos, 1)
  prec = pos_ge / jnp.maximum(n_ge, 1)
  last_p = npos / jnp.maximum(valid.sum(-1, keepdims=True), 1)
  rec, prec = jnp.where(valid, rec, 1.0), jnp.where(valid, prec, last_p)
  order = jnp.argsort(jnp.where(valid, -s, jnp.inf), axis=-1, stable=True)
  rec = jnp.take_along_axis(rec, order, -1)
  prec = jnp.take_along_axis(prec, order, -1)
  b = s.shape[0]
  rec = jnp.concatenate([jnp.zeros((b, 1)), rec], -1)
  prec = jnp.concatenate([jnp.ones((b, 1)), prec], -1)
  area = jnp.sum((rec[:, 1:] - rec[:, :-1]) * (prec[:, 1:] + prec[:, :-1]) / 2.0, -1)
  return jnp.where(npos[:, 0] > 0, area, jnp.nan)


def _runs(mask: np.ndarray) -> list[set[int]]:
  idx = np.flatnonzero(mask)
  if idx.size == 0:
    return []
  cuts = np.flatnonzero(np.diff(idx) > 1) + 1
  return [set(r.tolist()) for r in np.split(idx, cuts)]


def iou_f1(pred, gold, valid, threshold: float = 0.5) -> dict[str, np.ndarray]:
  """ERASER's partial-match (IOU) precision, recall and F1 per example (host-side numpy).

  Spans are maximal runs of consecutive selected units. A predicted span is a true positive when
  its best IOU with a gold span is ``>= threshold`` (``partial_match_score``: ``>=``, though the
  paper says "larger than"); ``P = TP / #pred``, ``R = TP / #gold``. ERASER reports the F1 of the
  mean P and R over instances (macro); the per-example F1 here averages to a close number.
  Adjacent gold spans merge into one run (ERASER keeps annotated spans apart).
  """
  pred = np.asarray(pred, bool) & np.asarray(valid, bool)
  gold = np.asarray(gold, bool) & np.asarray(valid, bool)
  out = {k: np.zeros(pred.shape[0], np.float32) for k in ("precision", "recall", "f1")}
  for i in range(pred.shape[0]):
    ps, gs = _runs(pred[i]), _runs(gold[i])
    tp = sum(max((len(p & g) / len(p | g) for g in gs), default=0.0) >= threshold for p in ps)
    p = tp / len(ps) if ps else 0.0
    r = tp / len(gs) if gs else 0.0
    out["precision"][i], out["recall"][i] = p, r
    out["f1"][i] = 0.0 if p == 0 or r == 0 else 2 * p * r / (p + r)
  return out


def plausibility(scores: Float[Array, "B T"], rationale, batch: Batch, *, unit: str = "token",
                 k: int | Sequence[int] | None = None, threshold: float | None = None,
                 iou_threshold: float = 0.5, aggregate: str = "sum",
                 empty: str = "error") -> dict[str, np.ndarray]:
  """All plausibility metrics per example, against a token rationale ``bool [B, T]``.

  Args:
    scores: ``[B, T]`` attributions (higher = more relevant to the explained class).
    rationale: ``bool [B, T]`` from :func:`rationale_from_spans` / :func:`rationale_from_words`
      or :func:`jaxplain.metrics.lexicon_rationale` (then label results a lexicon proxy).
    batch: the batch the scores belong to.
    unit: ``"token"`` or ``"word"`` (scores aggregated with ``aggregate``).
    k: the hard selection is the top ``k`` units (int or one per example); ``None`` with no
      ``threshold``: each example's own rationale length (an oracle length; ERASER uses the
      dataset's mean rationale length, which a caller can pass as ``k``).
    threshold: select units scoring ``> threshold`` instead of the top ``k``.
    iou_threshold: ERASER's 0.5.
    empty: an example whose rationale is empty is an ``"error"`` (default), or ``"nan"`` (its
      metrics are NaN; e.g. texts without lexicon words under a lexicon proxy).
  Returns:
    ``precision``, ``recall``, ``f1``, ``iou_precision``, ``iou_recall``, ``iou_f1``,
    ``average_precision``, ``auprc``: float32 ``[B]``.
  Raises:
    InputError: shapes differ, NaN scores, or an empty rationale (naming the examples).
  """
  check_scores(batch, scores)
  if tuple(np.shape(rationale)) != tuple(np.shape(scores)):
    raise InputError(f"rationale has shape {np.shape(rationale)}, scores {np.shape(scores)}; "
                     "pass one boolean per token of the same batch.")
  if unit == "word":
    s, g, valid = to_words(scores, jnp.asarray(rationale), batch, aggregate)
  elif unit == "token":
    valid = removable_mask(batch)
    s, g = jnp.asarray(scores, jnp.float32), jnp.asarray(rationale, bool) & valid
  else:
    raise InputError(f"unknown unit {unit!r}; use 'token' or 'word'.")
  if empty == "error":
    check_rationale(g, valid)
  elif empty != "nan":
    raise InputError(f"empty must be 'error' or 'nan', not {empty!r}.")
  if threshold is not None:
    pred = (s > threshold) & valid
  else:
    kk = g.sum(-1) if k is None else jnp.broadcast_to(jnp.asarray(k, jnp.int32), g.shape[:1])
    pred = _top_k(s, valid, kk)
  out = jax.tree.map(np.asarray, _device_metrics(s, g, valid, pred))
  out.update({f"iou_{k_}": v for k_, v in iou_f1(pred, g, valid, iou_threshold).items()})
  none = ~np.asarray(g & valid).any(-1)
  return {k_: np.where(none, np.float32(np.nan), v).astype(np.float32) for k_, v in out.items()}


@jax.jit
def _top_k(s, valid, k):
  return top_k_mask(s, valid, k)


@jax.jit
def _device_metrics(s, g, valid, pred):
  """The jnp metrics in one compiled call (this host-level entry point is a jit caller)."""
  out = precision_recall_f1(pred, g, valid)
  out["average_precision"] = average_precision(s, g, valid)
  out["auprc"] = auprc(s, g, valid)
  return out
