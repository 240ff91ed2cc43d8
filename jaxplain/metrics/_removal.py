"""Removal on device: every perturbed copy of a batch for every removal level, built at once.

Faithfulness metrics ask how a prediction changes when the tokens an explanation ranks highest
(or lowest) are removed. Here removal is pure JAX: units (tokens, or whole words) are ranked per
example by a stable sort, so ties go to the earlier position; the number removed at each level is
computed per example in integer arithmetic; the removed tokens are replaced by an id
(``[MASK]``, ``[PAD]``, ``[UNK]``) or deleted, in which case each row is re-packed on device
(kept tokens gathered left in order, padding after, attention mask updated). No strings, no
re-tokenising. Special tokens (``[CLS]``, ``[SEP]``...) and padding are never removed.

The ``R`` levels are folded into the batch axis and run through the model in one forward
(:func:`forward_levels`), optionally in chunks of levels to bound memory.
"""

import dataclasses
import functools
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from jaxplain._compile import jit as _jit
from jaxplain.attribution._quadrature import auto_token_rows
from jaxplain.contracts import Batch, Forward, Params, Taps
from jaxplain.errors import InputError
from jaxplain.models.grouping import length_groups
from jaxplain.models.tokenize import BUCKETS

MODES = ("top", "bottom", "keep")
UNITS = ("token", "word")
AGGREGATES = ("sum", "mean", "max", "abs_sum")
ROUNDINGS = ("round", "ceil", "floor")
BASES = ("removable", "tokens")
_SCALE = 1_000_000  # fractions are turned into integers of millionths: counts are exact


@dataclasses.dataclass(frozen=True)
class Removal:
  """One family of perturbed inputs, one per fraction (static and hashable: a jit cache key).

  Attributes:
    fractions: removal levels in ``[0, 1]``, e.g. ``(0.01, 0.05, 0.1, 0.2, 0.5)``.
    mode: ``"top"`` removes the most relevant units first (MoRF); ``"bottom"`` the least
      relevant first (LeRF); ``"keep"`` keeps the most relevant ``n`` units and removes the rest
      (sufficiency, insertion curves).
    replacement_id: the id removed tokens become (``[MASK]``, ``[PAD]``, ``[UNK]``), their
      attention mask staying 1; ``None`` deletes them and re-packs the sequence.
    unit: ``"token"`` or ``"word"`` (a word, from ``batch.word_ids``, goes as a whole).
    aggregate: how token scores make a word score: ``"sum"`` (default), ``"mean"``, ``"max"``,
      ``"abs_sum"``.
    rounding: ``n = rounding(fraction * base)``: ``"round"`` (half to even, as Python's
      ``round`` and ``numpy.round``), ``"ceil"`` or ``"floor"``; computed exactly in integers.
    basis: ``"removable"``: the base is the number of removable units (real, non-special);
      ``"tokens"``: the number of real tokens *including* specials (Mask-LRP's ``T_i``, Ali et
      al.'s ``N``); ``n`` is then capped at the number of removable units.
    absolute: rank by ``|score|`` (Ali et al.'s pruning).
    drop_token_types: zero the segment ids of the perturbed inputs (a Mask-LRP quirk).
  """

  fractions: tuple[float, ...]
  mode: str = "top"
  replacement_id: int | None = None
  unit: str = "token"
  aggregate: str = "sum"
  rounding: str = "round"
  basis: str = "removable"
  absolute: bool = False
  drop_token_types: bool = False

  def __post_init__(self):
    fr = tuple(float(f) for f in self.fractions)
    object.__setattr__(self, "fractions", fr)
    if not fr:
      raise InputError("no removal fractions given; pass at least one level in [0, 1].")
    bad = [f for f in fr if not 0.0 <= f <= 1.0 or math.isnan(f)]
    if bad:
      raise InputError(f"removal fractions {bad} are outside [0, 1]; pass fractions of the "
                       "removable tokens (0.1 = 10%).")
    for name, value, allowed in (("mode", self.mode, MODES), ("unit", self.unit, UNITS),
                                 ("aggregate", self.aggregate, AGGREGATES),
                                 ("rounding", self.rounding, ROUNDINGS),
                                 ("basis", self.basis, BASES)):
      if value not in allowed:
        raise InputError(f"unknown removal {name} {value!r}; use one of {', '.join(allowed)}.")
    if self.replacement_id is not None and int(self.replacement_id) < 0:
      raise InputError(f"replacement_id {self.replacement_id} is negative; pass a token id.")

  @property
  def levels(self) -> int:
    return len(self.fractions)

  @property
  def ranking_key(self) -> tuple:
    """What the unit ranking depends on (removals with equal keys share one sort)."""
    return (self.unit, self.aggregate, self.mode == "bottom", self.absolute)


def removable_mask(batch: Batch, special_mask: Bool[Array, "B T"] | None = None
                   ) -> Bool[Array, "B T"]:
  """Real, non-special tokens: ``attention_mask == 1`` and not special.

  Specials are ``special_mask`` when given, else the real positions where ``word_ids == -1``.

  Raises:
    InputError: neither ``special_mask`` nor ``batch.word_ids`` is available.
  """
  real = jnp.asarray(batch.attention_mask) > 0
  if special_mask is not None:
    special = jnp.asarray(special_mask).astype(bool)
  elif batch.word_ids is not None:
    special = jnp.asarray(batch.word_ids) < 0
  else:
    raise InputError("cannot tell special tokens from words: the batch has no word_ids. Use "
                     "model.encode (it fills word_ids) or pass special_mask [B, T].")
  return real & ~special


def unit_ranks(scores: Float[Array, "B T"], units: Int[Array, "B T"], *, descending: bool,
               aggregate: str = "sum") -> tuple[Int[Array, "B T"], Int[Array, " B"]]:
  """Each token's unit rank (0 = first to go) and the number of units per example.

  Args:
    scores: ``[B, T]`` token scores.
    units: ``[B, T]`` unit index of each token in ``0..T-1`` (its position, or its word), ``-1``
      for tokens that are never removed.
    descending: rank high scores first; ties are broken by unit index (earlier first) in both
      directions (a stable sort).
    aggregate: token scores -> unit score.
  Returns:
    ``(ranks [B, T], n_units [B])``; non-removable tokens get rank ``T``.
  """
  t = scores.shape[-1]

  def one(s, u):
    valid = u >= 0
    seg = jnp.where(valid, u, t)
    s = jnp.where(valid, s.astype(jnp.float32), 0.0)
    if aggregate == "abs_sum":
      s, aggregate_ = jnp.abs(s), "sum"
    else:
      aggregate_ = aggregate
    count = jax.ops.segment_sum(valid.astype(jnp.int32), seg, num_segments=t + 1)[:t]
    if aggregate_ == "max":
      agg = jax.ops.segment_max(jnp.where(valid, s, -jnp.inf), seg, num_segments=t + 1)[:t]
    else:
      agg = jax.ops.segment_sum(s, seg, num_segments=t + 1)[:t]
      if aggregate_ == "mean":
        agg = agg / jnp.maximum(count, 1)
    present = count > 0
    key = jnp.where(present, -agg if descending else agg, jnp.inf)
    order = jnp.argsort(key, stable=True)
    rank_of_unit = jnp.zeros((t,), jnp.int32).at[order].set(jnp.arange(t, dtype=jnp.int32))
    ranks = jnp.where(valid, rank_of_unit[jnp.clip(u, 0, t - 1)], t)
    return ranks, present.sum().astype(jnp.int32)

  return jax.vmap(one)(scores, units)


def level_counts(fractions: Sequence[float], base: Int[Array, " B"], limit: Int[Array, " B"],
                 rounding: str = "round") -> Int[Array, "R B"]:
  """``clip(rounding(fraction * base), 0, limit)`` per level and example, exactly.

  Fractions are taken in millionths (``round(f * 1e6)``), so ``0.05 * 20`` is exactly 1 and
  ``ceil`` never adds a token for floating-point noise.
  """
  num = jnp.asarray([int(round(f * _SCALE)) for f in fractions], jnp.int32)[:, None]
  prod = num * base[None, :].astype(jnp.int32)                     # [R B], < 2**31 for T <= 2000
  q, r = prod // _SCALE, prod % _SCALE
  if rounding == "floor":
    n = q
  elif rounding == "ceil":
    n = q + (r > 0)
  else:  # half to even, as Python's round()
    n = q + ((r > _SCALE // 2) | ((r == _SCALE // 2) & (q % 2 == 1)))
  return jnp.clip(n, 0, limit[None, :]).astype(jnp.int32)


def ranking(batch: Batch, scores: Float[Array, "B T"], removal: Removal,
            special_mask: Bool[Array, "B T"] | None = None
            ) -> tuple[Int[Array, "B T"], Int[Array, " B"], Bool[Array, "B T"]]:
  """``(ranks [B, T], n_units [B], removable [B, T])`` for ``removal``'s unit and order.

  Only :attr:`Removal.ranking_key` matters, so removals that share it can share one ranking.
  """
  removable = removable_mask(batch, special_mask)
  b, t = removable.shape
  if removal.unit == "word":
    if batch.word_ids is None:
      raise InputError("word-level removal needs batch.word_ids; encode with model.encode, or "
                       "use unit='token'.")
    units = jnp.asarray(batch.word_ids, jnp.int32)
  else:
    units = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
  units = jnp.where(removable, units, -1)
  s = jnp.asarray(scores, jnp.float32)
  s = jnp.abs(s) if removal.absolute else s
  ranks, n_units = unit_ranks(s, units, descending=removal.mode != "bottom",
                              aggregate=removal.aggregate)
  return ranks, n_units, removable


def removal_masks(batch: Batch, scores: Float[Array, "B T"], removal: Removal,
                  special_mask: Bool[Array, "B T"] | None = None, *, ranked=None
                  ) -> tuple[Bool[Array, "R B T"], Int[Array, "R B"]]:
  """Which tokens each level removes, and how many units it removes (or keeps, mode ``keep``).

  Args:
    batch, scores, removal, special_mask: as in :func:`perturb`.
    ranked: a precomputed :func:`ranking` for ``removal`` (reused across removals).
  Returns:
    ``(removed [R, B, T], counts [R, B])``. ``counts`` is the number of units removed for modes
    ``top``/``bottom`` and the number of units *kept* for mode ``keep``.
  """
  ranks, n_units, removable = ranked or ranking(batch, scores, removal, special_mask)
  if removal.basis == "tokens":
    base = (jnp.asarray(batch.attention_mask) > 0).sum(-1).astype(jnp.int32)
  else:
    base = n_units
  counts = level_counts(removal.fractions, base, n_units, removal.rounding)   # [R B]
  chosen = ranks[None] < counts[:, :, None]                                    # [R B T]
  removed = (~chosen if removal.mode == "keep" else chosen) & removable[None]
  return removed, counts


def apply_removal(batch: Batch, removed: Bool[Array, "R B T"], replacement_id: int | None,
                  *, pad_id: int = 0, drop_token_types: bool = False) -> Batch:
  """The perturbed batches ``[R, B, T]``: removed tokens replaced by an id, or deleted.

  Deletion re-packs each row: kept tokens are gathered to the left in their order (a stable
  sort on ``removed``), padding (``pad_id``, attention 0, segment 0) fills the rest.
  """
  r = removed.shape[0]
  ids = jnp.broadcast_to(jnp.asarray(batch.input_ids, jnp.int32), removed.shape)
  mask = jnp.broadcast_to(jnp.asarray(batch.attention_mask, jnp.int32), removed.shape)
  types = jnp.broadcast_to(jnp.asarray(batch.token_type_ids, jnp.int32), removed.shape)
  if replacement_id is not None:
    ids = jnp.where(removed, jnp.int32(replacement_id), ids)
  else:
    keep = (mask > 0) & ~removed
    order = jnp.argsort((~keep).astype(jnp.int32), axis=-1, stable=True)
    take = lambda x: jnp.take_along_axis(x, order, axis=-1)
    mask = take(keep).astype(jnp.int32)
    ids = jnp.where(mask > 0, take(ids), jnp.int32(pad_id))
    types = jnp.where(mask > 0, take(types), 0)
  if drop_token_types:
    types = jnp.zeros_like(types)
  del r
  return Batch(ids, mask, types)


def perturb(batch: Batch, scores: Float[Array, "B T"], removal: Removal, *,
            special_mask: Bool[Array, "B T"] | None = None, pad_id: int = 0) -> Batch:
  """All perturbed copies of ``batch`` for ``removal``'s levels, as a ``Batch`` of ``[R, B, T]``.

  Examples:
    >>> r = Removal(fractions=(0.5, 1.0), mode="top", replacement_id=103)
    >>> perturbed = perturb(batch, scores, r)          # doctest: +SKIP
    >>> perturbed.input_ids.shape                      # doctest: +SKIP
    (2, 4, 16)
  """
  removed, _ = removal_masks(batch, scores, removal, special_mask)
  return apply_removal(batch, removed, removal.replacement_id, pad_id=pad_id,
                       drop_token_types=removal.drop_token_types)


def forward_levels(forward: Forward, params: Params, batches: Batch,
                   chunk_size: int | None = None) -> Float[Array, "R B ..."]:
  """Logits for perturbed batches ``[R, B, T]``, the ``R`` axis folded into the batch axis.

  One forward over ``R * B`` rows; with ``chunk_size`` the levels go ``chunk_size`` at a time
  through ``lax.map`` (memory bound ``chunk_size * B`` rows).
  """
  r, b, t = batches.input_ids.shape

  def run(ids, mask, types):  # [n, T] -> logits [n, ...]
    return forward(params, Batch(ids, mask, types), Taps()).logits

  fields = (batches.input_ids, batches.attention_mask, batches.token_type_ids)
  if chunk_size is None or chunk_size >= r:
    out = run(*(x.reshape(r * b, t) for x in fields))
    return out.reshape((r, b) + out.shape[1:])
  c = int(chunk_size)
  if c < 1:
    raise InputError(f"chunk_size must be >= 1, got {chunk_size}.")
  pad = (-r) % c
  chunks = tuple(jnp.concatenate([x, jnp.repeat(x[-1:], pad, 0)], 0).reshape(-1, c * b, t)
                 for x in fields)
  out = jax.lax.map(lambda xs: run(*xs), chunks)                  # [R/c, c*B, ...]
  out = out.reshape((-1, b) + out.shape[2:])
  return out[:r]


@functools.cache
def _logits_fn(forward: Forward):
  return _jit(lambda params, ids, mask, types: forward(params, Batch(ids, mask, types),
                                                      Taps()).logits)


def check_rows(rows: int | None) -> None:
  """:class:`InputError` unless ``rows`` (perturbed rows per forward call) is ``None`` or >= 1."""
  if rows is not None and int(rows) < 1:
    raise InputError(f"rows must be >= 1 (or None for a token-row budget), got {rows}.")


def forward_compacted(forward: Forward, params: Params, batches: Batch, *,
                      rows: int | None = None, buckets: Sequence[int] | None = None
                      ) -> Float[Array, "R B ..."]:
  """Logits for perturbed batches ``[R, B, T]``, each row run at about its own length.

  The ``R * B`` rows are sorted by the position of their last real token, cut into groups (the
  last one filled with repeats) and each group is truncated to the smallest bucket that holds its
  longest row, so a row that deletion left with 3 tokens no longer runs at
  ``T``; identical rows (the protocols overlap) run once. Truncation drops only positions after
  a row's last real token, which the attention mask already hides, so the logits equal
  :func:`forward_levels`' up to float rounding. Host-side orchestration over jitted forwards
  (one program per ``(rows, bucket)`` shape): not traceable.

  Args:
    forward, params: the model.
    batches: ``[R, B, T]`` (from :func:`perturb` or ``perturb_protocols``).
    rows: rows per forward call; ``None`` (the default) sizes each group by its width, about
      :func:`~jaxplain.attribution.auto_token_rows` token rows per call (2048 on the CPU, where
      smaller passes stay in cache; 8192 elsewhere), so one program is compiled per width.
    buckets: padded lengths to choose from (default :data:`jaxplain.models.BUCKETS`).
  Returns:
    ``[R, B, ...]`` logits, as :func:`forward_levels`.
  """
  check_rows(rows)
  r, b, t = batches.input_ids.shape
  ids, mask, types = (np.asarray(x, np.int32).reshape(r * b, t) for x in
                      (batches.input_ids, batches.attention_mask, batches.token_type_ids))
  ids, mask, types, inverse = _unique_rows(ids, mask, types)
  real = mask > 0
  ends = np.where(real.any(-1), t - np.argmax(real[:, ::-1], axis=-1), 1)   # last real + 1
  fn = _logits_fn(forward)
  n = len(ids)
  out = None
  for idx, size, width in length_groups(ends, t, rows=rows, buckets=buckets or BUCKETS,
                                       budget=auto_token_rows()):
    k = len(idx)
    idx = np.concatenate([idx, np.repeat(idx[-1:], size - k)])
    logits = np.asarray(fn(params, ids[idx, :width], mask[idx, :width], types[idx, :width]))
    if out is None:
      out = np.empty((n,) + logits.shape[1:], logits.dtype)
    out[idx[:k]] = logits[:k]
  out = out[inverse]
  return jnp.asarray(out.reshape((r, b) + out.shape[1:]))


def _unique_rows(ids: np.ndarray, mask: np.ndarray, types: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """The distinct rows of ``(ids, mask, types)`` ``[N, T]`` and, per row, its distinct index.

  Protocols overlap: insertion of the top k% is LeRF deletion of the rest, ERASER's 1% and 5%
  bins remove the same single token from a short text, every curve starts at the full input.
  Identical rows give identical logits, so each is run once (Rotten Tomatoes test snippets,
  ERASER + deletion + insertion at 6 levels: 1.7x fewer rows).
  """
  rows = np.concatenate([ids, mask, types], axis=1)
  _, first, inverse = np.unique(rows, axis=0, return_index=True, return_inverse=True)
  return ids[first], mask[first], types[first], np.asarray(inverse).reshape(-1)


def check_scores(batch: Batch, scores, what: str = "scores") -> None:
  """Raises :class:`InputError` for scores whose shape is not the batch's, or non-finite scores.

  The shape is checked always (also under ``jit``); finiteness only on concrete values (real
  tokens only), naming the offending examples.
  """
  shape = tuple(np.shape(batch.input_ids))
  if tuple(np.shape(scores)) != shape:
    raise InputError(f"{what} have shape {tuple(np.shape(scores))} but the batch is {shape} "
                     "[B, T]; pass one score per token of the same padded batch.")
  if isinstance(scores, jax.core.Tracer) or isinstance(batch.attention_mask, jax.core.Tracer):
    return
  s = np.asarray(scores, np.float64)
  real = np.asarray(batch.attention_mask) > 0
  bad = np.where((~np.isfinite(s) & real).any(-1))[0]
  if bad.size:
    listed = ", ".join(str(i) for i in bad[:10]) + (" ..." if bad.size > 10 else "")
    raise InputError(f"{what} contain NaN or inf in {bad.size} example(s): {listed}. Fix the "
                     "explainer (or drop these examples) before computing metrics.")
