r"""Faithfulness metrics: how the prediction moves when the tokens an explanation ranks are removed.

Every metric is a :class:`Protocol`: one or more :class:`~jaxplain.metrics._removal.Removal`
families (levels, mode, replacement, rounding) and a reduction of the perturbed logits to
per-example numbers. :func:`run_protocols` builds *all* perturbed inputs of all requested
protocols on device and runs them, with the unmodified input, through **one** forward (levels
folded into the batch axis). Probabilities are read in float32 log space (``log_softmax``), so
log-odds never take ``log(0)``.

Protocols (defaults follow each paper; departures are listed in each builder's Notes):

* ERASER (DeYoung et al., 2020): comprehensiveness and sufficiency at bins 1, 5, 10, 20, 50%
  and their AOPC, on the predicted class.
* Mask-LRP / AttCAT: AOPC and LOdds over 9 levels ``round(k/9 * T_i)``, [PAD] replacement.
* Deletion (MoRF and LeRF) and insertion curves with trapezoid areas; AttnLRP's
  :math:`\Delta A^F` = area(LeRF) - area(MoRF).
* Ali et al. (2022): AUAC (insertion into an all-[UNK] input) and AU-MSE (pruning by
  ascending ``|R|``).

Every function is pure and unjitted (jit at the caller, e.g. :func:`jaxplain.metrics.evaluate`);
``target`` ``None`` means the class the model predicts for the unmodified input.
"""

import dataclasses
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from jaxplain.contracts import Batch, Forward, Params
from jaxplain.errors import InputError
from jaxplain.metrics._removal import (Removal, apply_removal, check_rows, check_scores,
                                       forward_compacted, forward_levels, ranking,
                                       removal_masks)

ERASER_BINS = (1, 5, 10, 20, 50)
"""ERASER's AOPC bins in percent (``--aopc_thresholds`` default of ``rationale_benchmark``)."""

CURVE_FRACTIONS = tuple(float(f) for f in np.linspace(0.0, 1.0, 11))
"""0, 0.1, ..., 1: Ali et al.'s ``fracs`` and the default deletion/insertion grid."""

Reduce = Callable[..., dict]


@dataclasses.dataclass(frozen=True)
class Protocol:
  """A faithfulness metric: the perturbations it needs and how its numbers come out of them.

  Attributes:
    name: the metric's name.
    removals: the removal families, run together with every other protocol's in one forward.
    reduce: ``reduce(base_logits [B, C], logits (one [R_i, B, C] per removal), target [B],
      n_tokens [B]) -> dict[str, array]``; ``[B]`` arrays are per-example metric values,
      ``[R, B]`` arrays (names ending in ``_curve``) the values per level.
  """

  name: str
  removals: tuple[Removal, ...]
  reduce: Reduce


def _log_probs(logits: Float[Array, "... C"], target: Int[Array, " B"]) -> Float[Array, "... B"]:
  lp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  idx = jnp.broadcast_to(target[:, None], lp.shape[:-1] + (1,))
  return jnp.take_along_axis(lp, idx, axis=-1)[..., 0]


def trapezoid(y: Float[Array, "R B"], x: Sequence[float]) -> Float[Array, " B"]:
  """Area under ``y`` over the fractions ``x`` (trapezoid rule; ``x`` need not be uniform)."""
  x = jnp.asarray(x, jnp.float32)[:, None]
  return jnp.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0, axis=0)


def check_bins(bins: Sequence[float]) -> tuple[float, ...]:
  """Bins in percent, each in ``(0, 100]``, as fractions; :class:`InputError` otherwise."""
  bins = tuple(bins)
  if not bins:
    raise InputError("no bins given; pass percentages in (0, 100], e.g. (1, 5, 10, 20, 50).")
  bad = [b for b in bins if not (isinstance(b, (int, float)) and 0 < b <= 100)]
  if bad:
    raise InputError(f"bins {bad} are outside (0, 100]; bins are percentages of the removable "
                     "tokens, e.g. (1, 5, 10, 20, 50).")
  return tuple(float(b) / 100.0 for b in bins)


# --- ERASER -------------------------------------------------------------------------------------

def _reduce_eraser(kind, base, logits, target, n_tokens):
  del n_tokens
  p0 = jnp.exp(_log_probs(base, target))                          # [B]
  pk = jnp.exp(_log_probs(logits[0], target))                     # [R B]
  curve = p0[None] - pk
  return {kind: curve.mean(0), f"{kind}_curve": curve}


def comprehensiveness_protocol(bins: Sequence[float] = ERASER_BINS, *,
                               replacement_id: int | None = None, unit: str = "token",
                               aggregate: str = "sum", rounding: str = "ceil") -> Protocol:
  r"""ERASER comprehensiveness AOPC: :math:`\frac1{|K|}\sum_k p(y|x) - p(y|x \setminus r_k)`.

  ``r_k`` is the top ``k%`` of the removable (real, non-special) units by score.

  Args:
    bins: percentages in ``(0, 100]`` (ERASER: 1, 5, 10, 20, 50).
    replacement_id: ``None`` deletes the tokens (ERASER's contrast inputs); an id replaces them.
    unit: ``"token"`` or ``"word"``; aggregate: word score from its tokens (``"sum"``).
    rounding: ``n_k = ceil(k% * n)`` by default (see Notes).
  Returns:
    A :class:`Protocol` giving ``comprehensiveness`` ``[B]`` (the AOPC over bins) and
    ``comprehensiveness_curve`` ``[R, B]`` (per bin); higher is more faithful.
  Notes:
    ERASER's scorer (``rationale_benchmark/metrics.py::_instances_aopc``) takes the per-bin
    probabilities from the user and averages ``p - p_k`` over bins and instances with the class
    the model predicted (``classification``); it does not say how ``k%`` of a document becomes
    a token count. We use ``ceil`` (every bin removes at least one unit, as Ali et al.'s
    ``n_flip = ceil(frac * N)``); ferret uses ``int()`` (floor) and skips empty bins:
    ``rounding="floor"`` gives the count, not the skipping. ERASER counts its own word tokens;
    we count word pieces (``unit="word"`` counts words).
  References:
    DeYoung et al., `ERASER <https://arxiv.org/abs/1911.03429>`_, ACL 2020.
  """
  fr = check_bins(bins)
  return Protocol("comprehensiveness",
                  (Removal(fr, "top", replacement_id, unit, aggregate, rounding),),
                  _partial(_reduce_eraser, "comprehensiveness"))


def sufficiency_protocol(bins: Sequence[float] = ERASER_BINS, *,
                         replacement_id: int | None = None, unit: str = "token",
                         aggregate: str = "sum", rounding: str = "ceil") -> Protocol:
  r"""ERASER sufficiency AOPC: :math:`\frac1{|K|}\sum_k p(y|x) - p(y|r_k)`, keeping only ``r_k``.

  Same arguments and notes as :func:`comprehensiveness_protocol`; lower is more faithful.
  Specials ([CLS], [SEP]) stay in the kept input.
  """
  fr = check_bins(bins)
  return Protocol("sufficiency",
                  (Removal(fr, "keep", replacement_id, unit, aggregate, rounding),),
                  _partial(_reduce_eraser, "sufficiency"))


# --- Mask-LRP / AttCAT AOPC and LOdds -----------------------------------------------------------

def _reduce_aopc_lodds(min_length, absolute, base, logits, target, n_tokens):
  lp0 = _log_probs(base, target)
  lpk = _log_probs(logits[0], target)                             # [R B]
  diff = jnp.exp(lp0)[None] - jnp.exp(lpk)
  diff = jnp.abs(diff) if absolute else diff
  lodds = lpk - lp0[None]                                         # log(p_k / p), log space
  keep = n_tokens >= min_length
  nan = jnp.float32(jnp.nan)
  return {"aopc": jnp.where(keep, diff.mean(0), nan), "log_odds": jnp.where(keep, lodds.mean(0), nan),
          "aopc_curve": jnp.where(keep[None], diff, nan),
          "log_odds_curve": jnp.where(keep[None], lodds, nan)}


def aopc_log_odds_protocol(*, replacement_id: int = 0, levels: int = 9, min_length: int = 20,
                           absolute: bool = False, drop_token_types: bool = False) -> Protocol:
  r"""Mask-LRP's AOPC and LOdds: MoRF [PAD] replacement over ``levels`` levels.

  .. math:: \mathrm{AOPC} = \tfrac1K\sum_k (p - p^{(k)}), \qquad
            \mathrm{LOdds} = \tfrac1K\sum_k \log(p^{(k)}/p)

  with ``g = linspace(0, 1, levels+1)[1:]`` and ``n_k = round(g_k T_i)``, ``T_i`` the number of
  real tokens *including* [CLS]/[SEP]; the top ``n_k`` non-special tokens get
  ``replacement_id`` with attention mask 1 (at ``g = 1`` all of them).

  Args:
    replacement_id: [PAD]'s id (0 in BERT vocabularies, as Mask-LRP hard-codes).
    levels: K (9).
    min_length: examples with ``T_i < min_length`` are excluded (NaN): Mask-LRP 20, AttCAT's
      notebooks 10; 0 keeps all.
    absolute: AttCAT's notebooks use ``|p - p_k|``.
    drop_token_types: the spec's metric forward drops ``token_type_ids`` (all zeros), which
      changes sentence pairs only.
  Returns:
    A :class:`Protocol` giving ``aopc`` and ``log_odds`` ``[B]`` (NaN for excluded examples)
    and their ``_curve`` ``[R, B]``. Higher AOPC, lower LOdds is more faithful.
  Notes:
    ``round`` is Python's (half to even); with these levels no count is ever a tie. The spec's
    metric forward passes no attention mask: Mask-LRP runs one unpadded example at a time,
    where that equals the all-ones mask over its real tokens, which is what we use; the
    explanation-side quirk (masking the [SEP] key) belongs to the explainer, not the metric.
    The explained class is the caller's ``target`` (Mask-LRP: the gold label).
  References:
    Mask-LRP, ``LinxinS97/Mask-LRP`` ``utils/metrices.py``; Qiang et al., AttCAT, NeurIPS 2022.
  """
  if levels < 1:
    raise InputError(f"levels must be >= 1, got {levels}.")
  fr = tuple(float(g) for g in np.linspace(0.0, 1.0, levels + 1)[1:])
  return Protocol("aopc_log_odds",
                  (Removal(fr, "top", int(replacement_id), "token", "sum", "round", "tokens",
                           drop_token_types=drop_token_types),),
                  _partial(_reduce_aopc_lodds, int(min_length), bool(absolute)))


# --- Deletion / insertion curves ----------------------------------------------------------------

def _reduce_deletion(fractions, base, logits, target, n_tokens):
  del base, n_tokens
  morf = jnp.exp(_log_probs(logits[0], target))
  lerf = jnp.exp(_log_probs(logits[1], target))
  a_morf, a_lerf = trapezoid(morf, fractions), trapezoid(lerf, fractions)
  return {"deletion_morf_area": a_morf, "deletion_lerf_area": a_lerf,
          "deletion_gap": a_lerf - a_morf, "deletion_morf_curve": morf,
          "deletion_lerf_curve": lerf}


def deletion_protocol(fractions: Sequence[float] = CURVE_FRACTIONS, *,
                      replacement_id: int | None = None, unit: str = "token",
                      rounding: str = "round") -> Protocol:
  r"""Deletion curves: ``p(y)`` as the most (MoRF) or least (LeRF) relevant units go.

  Areas are trapezoids over the fractions; ``deletion_gap`` is AttnLRP's
  :math:`\Delta A^F = A_\mathrm{LeRF} - A_\mathrm{MoRF}` on the probability (higher is better;
  a low MoRF area is good on its own).

  Args:
    fractions: levels in ``[0, 1]``, sorted (default 0, 0.1, ..., 1).
    replacement_id: ``None`` deletes; an id (``[MASK]``, ``[UNK]``) replaces.
    unit, rounding: see :class:`~jaxplain.metrics._removal.Removal`.
  """
  fr = _check_curve(fractions)
  return Protocol("deletion",
                  (Removal(fr, "top", replacement_id, unit, "sum", rounding),
                   Removal(fr, "bottom", replacement_id, unit, "sum", rounding)),
                  _partial(_reduce_deletion, fr))


def _reduce_insertion(fractions, name, base, logits, target, n_tokens):
  del base, n_tokens
  curve = jnp.exp(_log_probs(logits[0], target))
  return {name: trapezoid(curve, fractions), f"{name}_curve": curve}


def insertion_protocol(fractions: Sequence[float] = CURVE_FRACTIONS, *,
                       replacement_id: int | None = None, unit: str = "token",
                       rounding: str = "round") -> Protocol:
  """Insertion curve: ``p(y)`` as units are put back most relevant first; its area (higher is better).

  The start is every removable unit replaced by ``replacement_id`` (or, with ``None``, deleted:
  the input grows from [CLS] [SEP]); specials are always present.
  """
  fr = _check_curve(fractions)
  return Protocol("insertion", (Removal(fr, "keep", replacement_id, unit, "sum", rounding),),
                  _partial(_reduce_insertion, fr, "insertion_area"))


def auac_protocol(unk_id: int, fractions: Sequence[float] = CURVE_FRACTIONS) -> Protocol:
  """Ali et al.'s AUAC: area under ``p(y)`` inserting tokens by descending relevance into [UNK]s.

  Args:
    unk_id: [UNK]'s id.
    fractions: Ali et al.'s ``linspace(0, 1, 11)``.
  Notes:
    Follows ``XAI_Transformers/utils.py::flip`` (``flip_case="generate"``): ``n = ceil(f * N)``
    with ``N`` all tokens of the unpadded input, specials included; the explained class is the
    caller's ``target`` (Ali et al.: the gold label). Departures: [CLS]/[SEP] stay in place
    (Ali et al. turn them into [UNK] too and rank them with the words), and the area is the
    trapezoid over the fractions, so it lies in ``[0, 1]`` (their plotting code is not
    published with the numbers).
  """
  fr = _check_curve(fractions)
  return Protocol("auac", (Removal(fr, "keep", int(unk_id), "token", "sum", "ceil", "tokens"),),
                  _partial(_reduce_insertion, fr, "auac"))


def _reduce_au_mse(fractions, base, logits, target, n_tokens):
  del target, n_tokens
  y0 = base.astype(jnp.float32).reshape(base.shape[0], -1)
  y = logits[0].astype(jnp.float32).reshape(logits[0].shape[:2] + (-1,))
  mse = jnp.sum((y - y0[None]) ** 2, axis=-1)                     # [R B]
  return {"au_mse": trapezoid(mse, fractions), "au_mse_curve": mse}


def au_mse_protocol(unk_id: int, fractions: Sequence[float] = CURVE_FRACTIONS) -> Protocol:
  r"""Ali et al.'s AU-MSE: area under :math:`\lVert y_0 - y\rVert^2` (logits), pruning by ascending ``|R|``.

  Lower is better. Follows ``flip(flip_case="pruning")``: tokens with the smallest ``|R|`` become
  [UNK] first, ``n = ceil(f * N)``, ``N`` counting specials; the "MSE" is their squared
  Euclidean distance of the logit vectors (``np.sum((y0 - y)**2)``), not a mean. Departure:
  specials are never pruned.
  """
  fr = _check_curve(fractions)
  return Protocol("au_mse",
                  (Removal(fr, "bottom", int(unk_id), "token", "sum", "ceil", "tokens",
                           absolute=True),),
                  _partial(_reduce_au_mse, fr))


# --- Running protocols --------------------------------------------------------------------------

def resolve_target(target, base_logits: Float[Array, "B C"]) -> Int[Array, " B"]:
  """``None`` -> the predicted class of the unmodified input; an int or ``[B]`` -> ``[B]``."""
  b = base_logits.shape[0]
  if target is None:
    return jnp.argmax(base_logits.reshape(b, -1), axis=-1).astype(jnp.int32)
  return jnp.broadcast_to(jnp.asarray(target, jnp.int32), (b,))


def perturb_protocols(batch: Batch, scores: Float[Array, "B T"], protocols: Sequence[Protocol],
                      *, special_mask: Bool[Array, "B T"] | None = None, pad_id: int = 0
                      ) -> Batch:
  """The unmodified batch and every perturbed copy the protocols need: a ``Batch`` ``[1+R, B, T]``.

  Row 0 is ``batch`` itself; then each protocol's removals in order, ``removal.levels`` rows
  each (``R`` is their total). One ranking sort per distinct :attr:`Removal.ranking_key`.
  """
  check_scores(batch, scores)
  scores = jnp.asarray(scores, jnp.float32)
  pieces, rankings = [], {}
  for proto in protocols:
    for removal in proto.removals:
      if removal.ranking_key not in rankings:   # one sort per distinct ranking, not per removal
        rankings[removal.ranking_key] = ranking(batch, scores, removal, special_mask)
      removed, _ = removal_masks(batch, scores, removal, special_mask,
                                 ranked=rankings[removal.ranking_key])
      pieces.append(apply_removal(batch, removed, removal.replacement_id, pad_id=pad_id,
                                  drop_token_types=removal.drop_token_types))
  original = Batch(*(jnp.asarray(x, jnp.int32)[None] for x in
                     (batch.input_ids, batch.attention_mask, batch.token_type_ids)))
  return jax.tree.map(lambda *xs: jnp.concatenate(xs, 0), original, *pieces)


def reduce_protocols(protocols: Sequence[Protocol], logits: Float[Array, "L B C"],
                     attention_mask: Int[Array, "B T"], target=None) -> dict[str, Array]:
  """Every protocol's metrics from the logits of :func:`perturb_protocols`' rows.

  Args:
    protocols: as given to :func:`perturb_protocols`.
    logits: ``[1 + R, B, C]``, row 0 the unmodified input's.
    attention_mask: ``[B, T]`` of the unmodified batch (its real-token counts).
    target: ``None`` (predicted class), an int, or ``[B]`` classes.
  """
  base = logits[0]
  tgt = resolve_target(target, base)
  n_tokens = (jnp.asarray(attention_mask) > 0).sum(-1)
  out = {"target": tgt, "probability": jnp.exp(_log_probs(base, tgt))}
  start = 1
  for proto in protocols:
    parts = []
    for removal in proto.removals:
      parts.append(logits[start:start + removal.levels])
      start += removal.levels
    out.update(proto.reduce(base, tuple(parts), tgt, n_tokens))
  return out


def run_protocols(forward: Forward, params: Params, batch: Batch, scores: Float[Array, "B T"],
                  protocols: Sequence[Protocol], target=None, *,
                  special_mask: Bool[Array, "B T"] | None = None, pad_id: int = 0,
                  chunk_size: int | None = None) -> dict[str, Array]:
  """Every protocol's metrics from one forward over all perturbed inputs and the original.

  Pure and jittable (the corpus sweep runs it inside its one compiled step): every perturbed
  copy runs at the batch's padded length ``T``. Outside ``jit``, :func:`run_protocols_compact`
  gives the same numbers with less work (rows re-bucketed by their remaining length).

  Args:
    forward, params: the model.
    batch: ``[B, T]`` with ``word_ids`` (or pass ``special_mask``).
    scores: ``[B, T]`` float attributions.
    protocols: from the ``*_protocol`` builders.
    target: ``None`` (predicted class), an int, or ``[B]`` classes.
    special_mask: ``[B, T]`` tokens never removed (default: ``word_ids == -1`` on real tokens).
    pad_id: the id written into padding after deletion.
    chunk_size: run the levels this many at a time (bounds memory to ``chunk_size * B`` rows).
  Returns:
    The union of the protocols' dicts, plus ``target`` ``[B]`` and ``probability`` ``[B]`` (the
    explained class's probability on the unmodified input).
  """
  stacked = perturb_protocols(batch, scores, protocols, special_mask=special_mask, pad_id=pad_id)
  logits = forward_levels(forward, params, stacked, chunk_size)    # [1 + sum R, B, C]
  return reduce_protocols(protocols, logits, batch.attention_mask, target)


_perturb_jit = jax.jit(perturb_protocols, static_argnames=("protocols", "pad_id"))
_reduce_jit = jax.jit(reduce_protocols, static_argnums=(0,))


def run_protocols_compact(forward: Forward, params: Params, batch: Batch,
                          scores: Float[Array, "B T"], protocols: Sequence[Protocol],
                          target=None, *, special_mask: Bool[Array, "B T"] | None = None,
                          pad_id: int = 0, rows: int | None = None,
                          buckets: Sequence[int] | None = None) -> dict[str, Array]:
  """:func:`run_protocols` with the perturbed rows re-bucketed by the length they have left.

  Deleting tokens shortens a row (sufficiency at 1% keeps a token or two), but inside one
  compiled program every copy keeps the batch's padded length. Here the rows are built on device
  (jitted), their real lengths read back (``[1+R, B]`` integers), sorted, cut into groups
  (``rows`` each, or by default sized by a token-row budget) and each group run at the smallest
  bucket that holds its longest row (jitted per ``(rows, bucket)`` shape, so a whole data set
  compiles a few programs), then reduced on device (jitted). Same numbers as
  :func:`run_protocols` up to float rounding, far fewer FLOPs with deletion; not traceable (call
  it outside ``jit``).

  Args:
    forward, params, batch, scores, protocols, target, special_mask, pad_id: as
      :func:`run_protocols`.
    rows: perturbed inputs per forward call (``None``: about
      :func:`~jaxplain.attribution.auto_token_rows` token rows per call, see
      :func:`~jaxplain.metrics.forward_compacted`).
    buckets: padded lengths to choose from (default :data:`jaxplain.models.BUCKETS`).
  """
  check_rows(rows)  # before the perturbation work
  check_scores(batch, scores)  # eagerly: under jit only the shape could be checked
  stacked = _perturb_jit(batch, scores, protocols=tuple(protocols), pad_id=int(pad_id),
                         special_mask=special_mask)
  logits = forward_compacted(forward, params, stacked, rows=rows, buckets=buckets)
  return _reduce_jit(tuple(protocols), logits, jnp.asarray(batch.attention_mask), target)


def comprehensiveness(forward: Forward, params: Params, batch: Batch, scores, target=None, *,
                      bins: Sequence[float] = ERASER_BINS, replacement_id: int | None = None,
                      unit: str = "token", rounding: str = "ceil", **run) -> dict[str, Array]:
  """ERASER comprehensiveness (see :func:`comprehensiveness_protocol`): ``[B]`` AOPC and ``[R, B]`` per bin."""
  proto = comprehensiveness_protocol(bins, replacement_id=replacement_id, unit=unit,
                                     rounding=rounding)
  return run_protocols(forward, params, batch, scores, (proto,), target, **run)


def sufficiency(forward: Forward, params: Params, batch: Batch, scores, target=None, *,
                bins: Sequence[float] = ERASER_BINS, replacement_id: int | None = None,
                unit: str = "token", rounding: str = "ceil", **run) -> dict[str, Array]:
  """ERASER sufficiency (see :func:`sufficiency_protocol`): ``[B]`` AOPC and ``[R, B]`` per bin."""
  proto = sufficiency_protocol(bins, replacement_id=replacement_id, unit=unit, rounding=rounding)
  return run_protocols(forward, params, batch, scores, (proto,), target, **run)


def aopc_log_odds(forward: Forward, params: Params, batch: Batch, scores, target=None, *,
                  replacement_id: int = 0, levels: int = 9, min_length: int = 20,
                  absolute: bool = False, drop_token_types: bool = False, **run
                  ) -> dict[str, Array]:
  """Mask-LRP AOPC and LOdds (see :func:`aopc_log_odds_protocol`)."""
  proto = aopc_log_odds_protocol(replacement_id=replacement_id, levels=levels,
                                 min_length=min_length, absolute=absolute,
                                 drop_token_types=drop_token_types)
  return run_protocols(forward, params, batch, scores, (proto,), target, **run)


def deletion_curves(forward: Forward, params: Params, batch: Batch, scores, target=None, *,
                    fractions: Sequence[float] = CURVE_FRACTIONS,
                    replacement_id: int | None = None, unit: str = "token", **run
                    ) -> dict[str, Array]:
  """MoRF and LeRF deletion curves and areas (see :func:`deletion_protocol`)."""
  proto = deletion_protocol(fractions, replacement_id=replacement_id, unit=unit)
  return run_protocols(forward, params, batch, scores, (proto,), target, **run)


def insertion_curve(forward: Forward, params: Params, batch: Batch, scores, target=None, *,
                    fractions: Sequence[float] = CURVE_FRACTIONS,
                    replacement_id: int | None = None, unit: str = "token", **run
                    ) -> dict[str, Array]:
  """Insertion curve and area (see :func:`insertion_protocol`)."""
  proto = insertion_protocol(fractions, replacement_id=replacement_id, unit=unit)
  return run_protocols(forward, params, batch, scores, (proto,), target, **run)


def auac(forward: Forward, params: Params, batch: Batch, scores, target=None, *, unk_id: int,
         fractions: Sequence[float] = CURVE_FRACTIONS, **run) -> dict[str, Array]:
  """Ali et al.'s AUAC (see :func:`auac_protocol`)."""
  return run_protocols(forward, params, batch, scores, (auac_protocol(unk_id, fractions),),
                       target, **run)


def au_mse(forward: Forward, params: Params, batch: Batch, scores, *, unk_id: int,
           fractions: Sequence[float] = CURVE_FRACTIONS, **run) -> dict[str, Array]:
  """Ali et al.'s AU-MSE (see :func:`au_mse_protocol`)."""
  return run_protocols(forward, params, batch, scores, (au_mse_protocol(unk_id, fractions),),
                       None, **run)


def _check_curve(fractions: Sequence[float]) -> tuple[float, ...]:
  fr = tuple(float(f) for f in fractions)
  if len(fr) < 2 or any(b <= a for a, b in zip(fr, fr[1:])):
    raise InputError(f"curve fractions {fr} must be at least two increasing values in [0, 1], "
                     "e.g. (0, 0.1, ..., 1).")
  return fr


class _partial:
  """``functools.partial`` that compares and hashes by value, so equal protocols share a jit."""

  def __init__(self, fn, *args):
    self.fn, self.args = fn, args

  def __call__(self, *rest):
    return self.fn(*self.args, *rest)

  def __eq__(self, other):
    return isinstance(other, _partial) and (self.fn, self.args) == (other.fn, other.args)

  def __hash__(self):
    return hash((self.fn, self.args))
