r"""DiffMask attributions: keep probabilities of trained gates, per token and layer.

Once the gates are trained, attribution is deterministic: the closed-form probability that a
token's gate is open (its expected L0),

.. math::
  A_{t\ell} = \prod_{k \le \ell} \sigma(\alpha^{(k)}_t + 0.322)\ \text{(input gates)},\qquad
  A_{t\ell} = \sigma(\alpha^{(\ell)}_t + 0.322)\ \text{(hidden gates)},

for every index ``ell = 0..L+1`` (0 = word embeddings, ``k`` = ``Outputs.hidden[k-1]``).
:func:`keep_probabilities` returns the whole ``[B, T, L+2]`` table (the authors'
``expected_L0_full.exp()``); :func:`diffmask` is the ``[B, T]`` kernel of the method contract.
"""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jaxplain._compile import jit as _jit
from jaxplain.attribution._common import masked
from jaxplain.attribution.diffmask import checkpoint as ckpt
from jaxplain.attribution.diffmask import objective as obj
from jaxplain.attribution.diffmask.probes import Gates
from jaxplain.contracts import Batch, Forward, Params, Target
from jaxplain.errors import InputError


def _as_gates(gates: Gates | str | os.PathLike) -> Gates:
  if isinstance(gates, Gates):
    return gates
  if isinstance(gates, (str, os.PathLike)):
    return ckpt.load_gates(gates)
  raise InputError(f"gates must be DiffMask Gates or the path of saved gates, got "
                   f"{type(gates).__name__}.")


def check_gates(gates: Gates, forward: Forward, params: Params, batch: Batch) -> None:
  """Raises :class:`InputError` if ``gates`` were trained for a model of another shape."""
  from jaxplain.contracts import Taps  # pylint: disable=g-import-not-at-top
  out = jax.eval_shape(lambda p, b: forward(p, b, Taps()), params, batch.device_part())
  ckpt.check_gates_shape(gates, out.hidden.shape[0] - 1, out.hidden.shape[-1],
                         out.word_embeddings.shape[-1])


def keep_probabilities(forward: Forward, params: Params, batch: Batch, *,
                       gates: Gates | str | os.PathLike) -> Float[Array, "B T K"]:
  """Each token's keep probability at every hidden-state index: ``[B, T, L+2]``, 0 on padding.

  Args:
    forward: the model, ``forward(params, batch, taps) -> Outputs``.
    params: its parameters.
    batch: ``[B, T]`` inputs.
    gates: trained :class:`Gates`, or the directory they were saved to.
  Returns:
    ``A [B, T, L+2]`` float32 in ``[0, 1]``: input gates give the probability the token
    survives every probe up to index ``ell`` (non-increasing in ``ell``); hidden gates give the
    probability the state at index ``ell`` is kept.
  Raises:
    InputError / ModelLoadError: gates for another model shape; missing or corrupt gates.
  Examples:
    >>> a = keep_probabilities(forward, params, batch, gates=res.gates)  # doctest: +SKIP
  """
  gates = _as_gates(gates)
  check_gates(gates, forward, params, batch)
  _, states = obj.model_states(forward, params, batch, gates.width)
  lp = obj.log_keep(gates, states)                                   # [K B T]
  return masked(jnp.moveaxis(jnp.exp(lp), 0, -1), batch.attention_mask[..., None])


def expected_layers_survived(keep: Float[Array, "B T K"]) -> Float[Array, "B T"]:
  """``S_t = sum_ell A[t, ell]``: the expected number of indices a token survives (authors)."""
  return jnp.sum(keep, axis=-1)


def diffmask(forward: Forward, params: Params, batch: Batch, target: Target = None, *,
             key: jax.Array | None = None, gates: Gates | str | os.PathLike | None = None,
             variant: str | None = None, layer: int | None = None,
             per_layer: bool = False) -> Float[Array, "B T"]:
  """DiffMask token attribution (De Cao et al., 2020): keep probabilities of trained gates.

  A ``METHODS`` kernel: ``jaxplain.attribute(model, texts, "diffmask", gates=PATH)`` loads the
  gates with :func:`~jaxplain.attribution.diffmask.load_gates` (checked against the model) and
  calls this under ``jit``.

  Args:
    forward: the model, ``forward(params, batch, taps) -> Outputs``.
    params: its parameters.
    batch: ``[B, T]`` inputs.
    target: ignored; DiffMask explains the whole output distribution (its gates keep it
      within the KL margin).
    key: ignored (attribution with trained gates is deterministic: closed-form keep
      probabilities, no gate sampling).
    gates: trained :class:`Gates` or their directory (``train_gates``'s ``out_dir`` works).
    variant: ``"input"`` or ``"hidden"``; checked against the gates (``None``: the gates' own).
    layer: index ``ell`` in ``0..L+1`` to read (0 = word embeddings, ``k`` = the state entering
      layer ``k``, ``L+1`` = the last layer's output; negative counts from the end). ``None``:
      the mean over all ``L+2`` indices, i.e. the expected fraction of indices a token
      survives (the authors' "after how many layers is a token dropped" statistic / ``L+2``).
    per_layer: return every index, ``[L+2, B, T]`` (row ``k`` = index ``k``), instead of
      ``[B, T]``; ``attribute`` then keeps the table in ``extra["layers"]`` and shows row 0.
  Returns:
    Scores ``[B, T]`` float32 in ``[0, 1]``, unsigned (higher = needed by the model); 0 on
    padding. ``[L+2, B, T]`` with ``per_layer``.
  Raises:
    InputError: no gates, variant or layer out of range, gates for another model.
  References:
    De Cao, Schlichtkrull, Aziz, Titov, `How do Decisions Emerge across Layers in Neural
    Models? Interpretation with Differentiable Masking <https://arxiv.org/abs/2004.14992>`_,
    EMNLP 2020; code ``nicola-decao/diffmask``.
  Example:
    >>> res = train_gates(model, model.encode(texts), DiffMaskConfig(steps=2000), "runs/dm")  # doctest: +SKIP
    >>> jaxplain.attribute(model, "a gripping film", "diffmask", gates="runs/dm", layer=3)   # doctest: +SKIP
  """
  del target, key
  if gates is None:
    raise InputError("DiffMask needs trained gates: pass gates=PATH (the output directory of "
                     "jaxplain.attribution.diffmask.train_gates or `jaxplain diffmask train`) "
                     "or a Gates object.")
  gates = _as_gates(gates)
  if variant is not None and variant != gates.variant:
    raise InputError(f"these gates were trained for the {gates.variant!r} variant, not "
                     f"{variant!r}; train {variant} gates or pass variant={gates.variant!r}.")
  if layer is not None and (isinstance(layer, bool) or not isinstance(layer, (int, np.integer))
                            or not -gates.num_states <= layer < gates.num_states):
    raise InputError(f"layer {layer!r} is out of range; DiffMask indices are "
                     f"0..{gates.num_states - 1} (0 = word embeddings, k = the state entering "
                     f"layer k, {gates.num_states - 1} = the last layer's output).")
  a = keep_probabilities(forward, params, batch, gates=gates)          # [B T K]
  if per_layer:
    return jnp.moveaxis(a, -1, 0)
  if layer is None:
    return masked(jnp.mean(a, axis=-1), batch.attention_mask)
  return a[..., int(layer)]


def explain(model_or_forward, batch: Batch, gates: Gates | str | os.PathLike, *,
            params: Params | None = None, layer: int | None = None) -> dict[str, jax.Array]:
  """Host-level DiffMask explanation (what ``jaxplain diffmask explain`` calls).

  Args:
    model_or_forward: a :class:`jaxplain.models.Model`, or a ``forward`` with ``params=``.
    batch: ``[B, T]`` inputs (e.g. ``model.encode(texts)``).
    gates: trained :class:`Gates` or their directory (``train_gates``'s ``out_dir`` works).
    params: parameters when ``model_or_forward`` is a function.
    layer: see :func:`diffmask`.
  Returns:
    ``{"scores": [B, T], "keep": [B, T, L+2], "survived": [B, T], "logits": [B, C]}``.
  """
  if hasattr(model_or_forward, "forward") and hasattr(model_or_forward, "params"):
    forward = model_or_forward.forward
    params = model_or_forward.params if params is None else params
  elif callable(model_or_forward) and params is not None:
    forward = model_or_forward
  else:
    raise InputError("pass a jaxplain Model, or a forward function together with params=.")
  gates = _as_gates(gates)
  batch = batch.device_part()
  keep, logits = _explain_fn(forward)(params, batch, gates)
  if layer is not None and (isinstance(layer, bool) or not isinstance(layer, (int, np.integer))
                            or not -gates.num_states <= layer < gates.num_states):
    raise InputError(f"layer {layer!r} is out of range; DiffMask indices are "
                     f"0..{gates.num_states - 1}.")
  scores = (masked(jnp.mean(keep, -1), batch.attention_mask) if layer is None
            else keep[..., int(layer)])
  return {"scores": scores, "keep": keep, "survived": expected_layers_survived(keep),
          "logits": logits}


@functools.cache
def _explain_fn(forward: Forward):
  """``jit((params, batch, gates) -> (keep [B, T, K], logits [B, C]))``, one per model."""
  from jaxplain.contracts import Taps  # pylint: disable=g-import-not-at-top

  def run(params, batch, gates):
    keep = keep_probabilities(forward, params, batch, gates=gates)
    return keep, forward(params, batch, Taps()).logits
  return _jit(run)
