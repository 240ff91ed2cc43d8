"""Attribution kernels: pure ``method(forward, params, batch, target, *, key, **hyper) -> [B, T]``.

``METHODS`` is a literal table from name to kernel (no import-time registration);
``ALIASES`` maps short names (``"ig"``) onto it; ``CONVERGENCE_DELTAS`` holds, for methods that
define one, ``delta(forward, params, batch, target, scores, **hyper) -> [B]``.
"""

from jaxplain.attribution.gradients import gradient, gradient_x_input, saliency
from jaxplain.errors import InputError

METHODS = {
    "gradient": gradient,
    "saliency": saliency,
    "gradient_x_input": gradient_x_input,
}

ALIASES = {
    "grad": "gradient",
    "ixg": "gradient_x_input",
    "input_x_gradient": "gradient_x_input",
    "gxi": "gradient_x_input",
}

CONVERGENCE_DELTAS = {}


def canonical_name(method: str) -> str:
  """The ``METHODS`` key for ``method`` or an alias; :class:`InputError` listing valid names."""
  if not isinstance(method, str):
    raise InputError(f"method must be a name string, got {type(method).__name__}.")
  name = ALIASES.get(method.lower().replace("-", "_"), method.lower().replace("-", "_"))
  if name not in METHODS:
    raise InputError(f"unknown method {method!r}; valid methods: {', '.join(sorted(METHODS))}.")
  return name


__all__ = ["ALIASES", "CONVERGENCE_DELTAS", "METHODS", "canonical_name", "gradient",
           "gradient_x_input", "saliency"]
