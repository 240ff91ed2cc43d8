"""Attribution kernels for trained interpretation models: the model's own explanation.

``attention_pooling`` returns the attention weights; ``l2x`` returns the selector's token
probabilities (softmax of its scores over real tokens), whose top-k are the tokens it selects.
Both read the explained model's last hidden state, as the selectors were trained on.
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from jaxplain.attribution._common import masked
from jaxplain.attribution.selectors import models
from jaxplain.attribution.selectors.checkpoint import Selector
from jaxplain.contracts import Batch, Forward, Params, Taps, Target
from jaxplain.errors import InputError


def _context(forward: Forward, params: Params, batch: Batch, selector: Selector | None, kind):
  if selector is None:
    raise InputError(f"method {kind!r} needs selector=PATH (or a loaded Selector).")
  if selector.kind != kind:
    raise InputError(f"the selector was trained as {selector.kind!r}; use method "
                     f"{'attention_pooling' if selector.kind == 'attention' else 'l2x'}.")
  hidden = forward(params, batch, Taps()).hidden[-1]
  if hidden.shape[-1] != selector.hidden:
    raise InputError(f"the selector was trained for hidden size {selector.hidden}, this model "
                     f"has {hidden.shape[-1]}; train a selector for this model.")
  return hidden


def attention_pooling(forward: Forward, params: Params, batch: Batch, target: Target = None, *,
                      key: PRNGKeyArray | None = None, selector: Selector | None = None
                      ) -> Float[Array, "B T"]:
  """Attention weights of a trained attention-pooling classifier: ``[B, T]``, sum 1, 0 on padding."""
  del target, key
  h = _context(forward, params, batch, selector, "attention")
  return masked(models.attention_weights(selector.params["selector"], h, batch.attention_mask),
                batch.attention_mask)


def l2x(forward: Forward, params: Params, batch: Batch, target: Target = None, *,
        key: PRNGKeyArray | None = None, selector: Selector | None = None
        ) -> Float[Array, "B T"]:
  """Token selection probabilities of a trained L2X selector: ``[B, T]``, 0 on padding."""
  del target, key
  h = _context(forward, params, batch, selector, "l2x")
  s = models.token_scores(selector.params["selector"], h, batch.attention_mask)
  return masked(jax.nn.softmax(s, -1), batch.attention_mask)
