"""Backward rules: the few non-linear operations of a transformer, each with a swappable gradient.

The encoder calls these operations through a :class:`RuleSet` chosen by the static
``Taps.rules`` name. Under ``"gradient"`` they are plain autodiff. LRP rule sets (AttnLRP,
CP-LRP) keep the forward values and change only the backward pass (``stop_gradient`` and
``custom_vjp``), so that gradient x input at the word embeddings equals the LRP relevance.
"""

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp

from jaxplain.errors import InputError


@jax.custom_jvp
def _gelu_exact(x):
  return x * (0.5 + 0.5 * jax.lax.erf(x * (1 / math.sqrt(2))))


@_gelu_exact.defjvp
def _gelu_exact_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  cdf = 0.5 + 0.5 * jax.lax.erf(x * (1 / math.sqrt(2)))
  pdf = jnp.exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))
  return x * cdf, t * (cdf + x * pdf)


_gelu_exact_remat = jax.checkpoint(_gelu_exact)


def gelu_exact(x):
  r"""Exact GELU :math:`x\,\Phi(x)` (Hendrycks & Gimpel 2016), as ``jax.nn.gelu(approximate=False)``.

  Two speed choices, neither of which changes a value or a derivative:

  - The derivative :math:`\Phi(x) + x\,\phi(x)` is written out as a custom JVP instead of
    autodiff through ``erf``: IG's gradient step ran 1.04-1.05x faster (best of 6) on the
    November development CPU.
  - The function is wrapped in ``jax.checkpoint``: a backward pass keeps only ``x`` (the same
    size as the derivative it kept before) and recomputes the derivative where it multiplies
    the cotangent; XLA fuses the two, so the ``[rows, intermediate]`` derivative is no longer
    written out and read back (the ``[ops]`` section of ``profile_ig_pass.py``: 12 activation ops
    instead of 18 per gradient, 14-18 ms instead of 24-25 ms at 2048 token rows). Measured on the
    library's kernels, interleaved, on the 2026-12-06 host
    (``ab_compiler_options.py --compare gelu-remat``): gradient x input 1.04-1.07x in four runs,
    SmoothGrad-10 1.01-1.06x in two, IG-50 0.99-1.04x in three (no clear gain; why not, we did not
    find out), identical scores. Forward-mode autodiff still works.
  """
  return _gelu_exact_remat(x)


def gelu_tanh(x):
  return jax.nn.gelu(x, approximate=True)


ACTIVATION_FNS: dict[str, Callable] = {
    "gelu": gelu_exact,
    "gelu_new": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh,
    "gelu_fast": gelu_tanh,
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "tanh": jnp.tanh,
}


def _layer_norm_plain(x, eps):
  """``(x - mean) / sqrt(var + eps)`` over the last axis, in float32."""
  x = x.astype(jnp.float32)
  mean = x.mean(-1, keepdims=True)
  centered = x - mean
  var = jnp.mean(centered * centered, -1, keepdims=True)
  return centered * jax.lax.rsqrt(var + eps)


def _bilinear_plain(subscripts, a, b):
  return jnp.einsum(subscripts, a, b, preferred_element_type=jnp.float32)


@dataclasses.dataclass(frozen=True)
class RuleSet:
  """The operations whose backward pass an LRP rule set may replace.

  Attributes:
    name: the ``Taps.rules`` name.
    softmax: attention softmax over the last axis, ``[..., T] -> [..., T]``.
    layer_norm: normalisation without the affine part, ``(x, eps) -> x_hat``.
    activation: ``(name, x) -> act(x)`` for the feed-forward and head activations.
    attention_scores: ``(q, k) -> q k^T`` as ``einsum("bqnd,bknd->bnqk")`` (scale outside).
    attention_context: ``(A, v) -> A v`` as ``einsum("bnqk,bknd->bqnd")``.
  """

  name: str
  softmax: Callable = lambda x: jax.nn.softmax(x.astype(jnp.float32), axis=-1)
  layer_norm: Callable = _layer_norm_plain
  activation: Callable = lambda name, x: ACTIVATION_FNS[name](x)
  attention_scores: Callable = lambda q, k: _bilinear_plain("bqnd,bknd->bnqk", q, k)
  attention_context: Callable = lambda a, v: _bilinear_plain("bnqk,bknd->bqnd", a, v)


RULE_SETS: dict[str, RuleSet] = {"gradient": RuleSet("gradient")}
"""Rule sets by name. The LRP module adds ``"attnlrp"`` and ``"cp-lrp"``."""


def register_rule_set(rules: RuleSet) -> None:
  """Adds a rule set under ``rules.name`` (used by :mod:`jaxplain.attribution.lrp`)."""
  RULE_SETS[rules.name] = rules


def get_rule_set(name: str) -> RuleSet:
  if name not in RULE_SETS:
    # The LRP rule sets live with the LRP kernels; importing them registers them.
    try:
      import jaxplain.attribution.lrp  # noqa: F401  pylint: disable=g-import-not-at-top
    except ImportError:
      pass
  if name not in RULE_SETS:
    raise InputError(f"unknown rule set {name!r}; choose one of {', '.join(sorted(RULE_SETS))}.")
  return RULE_SETS[name]


@jax.custom_vjp
def scale_gradient(x, scale):
  """Identity in the forward pass; multiplies the cotangent by ``scale`` in the backward pass."""
  del scale
  return x


def _scale_gradient_fwd(x, scale):
  return x, scale


def _scale_gradient_bwd(scale, g):
  return (g * scale).astype(g.dtype), jnp.zeros_like(scale)


scale_gradient.defvjp(_scale_gradient_fwd, _scale_gradient_bwd)
