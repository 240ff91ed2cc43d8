r"""Gradient attributions on the word embeddings: gradient, saliency, gradient x input.

Each kernel is ``method(forward, params, batch, target=None, *, key=None, **hyper) -> [B, T]``:
pure, unjitted (callers jit), one backward pass for the whole batch, 0 on padding.
"""

import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from jaxplain.attribution._common import embed, grad_wrt_embeddings, masked, resolve_target
from jaxplain.contracts import Batch, Forward, Params, Target
from jaxplain.errors import InputError


def gradient(forward: Forward, params: Params, batch: Batch, target: Target = None, *,
             key: PRNGKeyArray | None = None, embeddings: Float[Array, "B T E"] | None = None,
             rules: str = "gradient") -> Float[Array, "B T"]:
  r"""Signed gradient summed over the embedding axis: :math:`\sum_e \partial f / \partial x_{te}`.

  Args:
    forward: the model, ``forward(params, batch, taps) -> Outputs``.
    params: its parameters.
    batch: ``[B, T]`` token ids and masks.
    target: class per example, ``None`` for the predicted class, or ``Outputs -> [B]``.
    key: unused (deterministic).
    embeddings: ``[B, T, E]`` word embeddings to evaluate at (default: the batch's own).
    rules: backward rule set (``"gradient"``; LRP sets give relevance).
  Returns:
    ``[B, T]`` float32, signed, 0 on padding.
  """
  del key
  target = resolve_target(forward, params, batch, target)
  x = embed(forward, params, batch) if embeddings is None else embeddings
  g = grad_wrt_embeddings(forward, params, batch, target, x, rules)
  return masked(g.sum(-1), batch.attention_mask)


def saliency(forward: Forward, params: Params, batch: Batch, target: Target = None, *,
             key: PRNGKeyArray | None = None, embeddings: Float[Array, "B T E"] | None = None,
             norm: str = "l2") -> Float[Array, "B T"]:
  r"""Gradient magnitude per token: :math:`\lVert \partial f / \partial x_t \rVert_2` (or L1).

  Notes:
    Captum's ``Saliency`` returns ``|grad|`` per embedding dimension; summing it over ``E``
    gives ``norm="l1"``. The L2 norm (default) is the usual per-token saliency in NLP
    (Li et al. 2016).
  Returns:
    ``[B, T]`` float32, non-negative, 0 on padding.
  """
  del key
  if norm not in ("l1", "l2"):
    raise InputError(f"saliency norm {norm!r} is unknown; use 'l2' or 'l1'.")
  target = resolve_target(forward, params, batch, target)
  x = embed(forward, params, batch) if embeddings is None else embeddings
  g = grad_wrt_embeddings(forward, params, batch, target, x)
  s = jnp.abs(g).sum(-1) if norm == "l1" else jnp.sqrt(jnp.sum(g * g, -1))
  return masked(s, batch.attention_mask)


def gradient_x_input(forward: Forward, params: Params, batch: Batch, target: Target = None, *,
                     key: PRNGKeyArray | None = None,
                     embeddings: Float[Array, "B T E"] | None = None,
                     rules: str = "gradient") -> Float[Array, "B T"]:
  r"""Gradient x input on the word embeddings: :math:`\sum_e x_{te}\,\partial f/\partial x_{te}`.

  Defaults match Captum's ``InputXGradient`` (or ``LayerGradientXActivation`` on the word
  embeddings) summed over the embedding axis. Under an LRP rule set (``rules="attnlrp"``) it is
  the LRP relevance of the word embeddings.

  Returns:
    ``[B, T]`` float32, signed, 0 on padding.
  """
  del key
  target = resolve_target(forward, params, batch, target)
  x = embed(forward, params, batch) if embeddings is None else embeddings
  g = grad_wrt_embeddings(forward, params, batch, target, x, rules)
  return masked(jnp.sum(g * x, -1), batch.attention_mask)
