r"""Relaxed and hard top-k token selection (L2X, Chen et al. 2018).

The relaxation draws k independent Gumbel-softmax samples over the real tokens and keeps, per
token, the largest: :math:`m_t = \max_{j \le k} \mathrm{softmax}_t((s_t + g_{jt})/\tau)`.
Each sample concentrates on one token as :math:`\tau \to 0`, so ``m`` approaches a k-hot mask
(fewer than k distinct tokens when samples collide, as in L2X).
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from jaxplain.errors import InputError


def relaxed_top_k(scores: Float[Array, "B T"], mask: Int[Array, "B T"], k: int, *,
                  key: PRNGKeyArray, temperature: float = 0.5) -> Float[Array, "B T"]:
  """A differentiable, approximately k-hot mask in ``[0, 1]``, 0 on padding."""
  if key is None:
    raise InputError("relaxed top-k sampling needs a PRNG key.")
  if temperature <= 0:
    raise InputError(f"temperature must be > 0, got {temperature}.")
  g = jax.random.gumbel(key, (k,) + scores.shape)
  logits = jnp.where(mask > 0, scores, -1e9)[None] + g
  samples = jax.nn.softmax(logits / temperature, axis=-1)  # [k, B, T]
  return samples.max(0) * (mask > 0)


def hard_top_k(scores: Float[Array, "B T"], mask: Int[Array, "B T"], k: int
               ) -> Float[Array, "B T"]:
  """Exactly the k highest-scoring real tokens (ties broken by position), as a 0/1 mask."""
  s = jnp.where(mask > 0, scores, -jnp.inf)
  _, idx = jax.lax.top_k(s, k)
  hot = jax.nn.one_hot(idx, scores.shape[-1]).max(1)
  return hot * (mask > 0)
