r"""Hard Concrete stochastic gates with DiffMask's constants (Louizos et al., 2018).

A gate with logit :math:`\alpha` is a relaxed Bernoulli sample stretched to ``(l, r)`` and
clipped to ``[0, 1]``:

.. math::
  s = \sigma\big((\alpha + \log u - \log(1 - u)) / \tau\big),\quad
  z = \min(1, \max(0, l + (r - l) s)),\quad u \sim U(0, 1).

The probability that a gate is not exactly zero ("expected L0") has a closed form,

.. math:: P(z \neq 0) = \sigma\big(\alpha - \tau \log(-l / r)\big),

which DiffMask reports as attribution (the keep probability) and penalises in training.

Defaults match the authors' code (``diffmask/models/gates.py``): ``tau = 0.2, l = -0.2,
r = 1.0``, so there is no stretch above 1 (unlike Louizos' ``l = -0.1, r = 1.1`` or Captum's
``BinaryConcreteStochasticGates``). Every quantity is computed with ``log_sigmoid`` and a clipped
``u`` so that float32 never produces ``nan`` or ``inf`` even for saturated logits.
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

TEMPERATURE = 0.2
"""Hard Concrete temperature ``tau`` (authors' code)."""
STRETCH_LOW = -0.2
"""Left end ``l`` of the stretch interval (authors' code)."""
STRETCH_HIGH = 1.0
"""Right end ``r`` of the stretch interval (authors' code)."""
_U_EPS = 1e-6  # keeps log(u) and log(1-u) finite in float32


def keep_offset(temperature: float = TEMPERATURE, low: float = STRETCH_LOW,
                high: float = STRETCH_HIGH) -> float:
  r"""The shift :math:`-\tau \log(-l/r)` with ``P(z != 0) = sigmoid(alpha + offset)`` (+0.3219)."""
  import math  # pylint: disable=g-import-not-at-top
  return -temperature * math.log(-low / high)


def sample(key: PRNGKeyArray, logits: Float[Array, "..."], *, temperature: float = TEMPERATURE,
           low: float = STRETCH_LOW, high: float = STRETCH_HIGH) -> Float[Array, "..."]:
  """Reparameterised Hard Concrete samples in ``[0, 1]``, differentiable in ``logits``.

  Args:
    key: PRNG key.
    logits: gate logits ``alpha``, any shape.
    temperature, low, high: ``tau``, ``l``, ``r`` (defaults: the authors' 0.2, -0.2, 1.0).
  Returns:
    Gates ``z`` with the shape of ``logits``, float32, exactly 0 with probability
    ``1 - P(z != 0)``.
  Examples:
    >>> z = sample(jax.random.key(0), jnp.zeros((4,)))
  """
  logits = jnp.asarray(logits, jnp.float32)
  u = jax.random.uniform(key, logits.shape, jnp.float32, _U_EPS, 1.0 - _U_EPS)
  s = jax.nn.sigmoid((logits + jnp.log(u) - jnp.log1p(-u)) / temperature)
  return jnp.clip(low + (high - low) * s, 0.0, 1.0)


def log_expected_l0(logits: Float[Array, "..."], *, temperature: float = TEMPERATURE,
                    low: float = STRETCH_LOW, high: float = STRETCH_HIGH) -> Float[Array, "..."]:
  r"""``log P(z != 0) = log_sigmoid(alpha + offset)``; finite for any float32 logit.

  Equals the authors' ``-softplus(tau * logit(-l / (r - l)) - alpha)``.
  """
  logits = jnp.asarray(logits, jnp.float32)
  return jax.nn.log_sigmoid(logits + keep_offset(temperature, low, high))


def expected_l0(logits: Float[Array, "..."], *, temperature: float = TEMPERATURE,
                low: float = STRETCH_LOW, high: float = STRETCH_HIGH) -> Float[Array, "..."]:
  """``P(z != 0) = sigmoid(alpha + offset)``: the keep probability of each gate, in ``[0, 1]``."""
  logits = jnp.asarray(logits, jnp.float32)
  return jax.nn.sigmoid(logits + keep_offset(temperature, low, high))
