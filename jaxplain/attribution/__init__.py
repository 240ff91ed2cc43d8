"""Attribution kernels: pure ``method(forward, params, batch, target, *, key, **hyper) -> [B, T]``.

Kernels are importable from here, except the two whose module shares their name, so that the
submodule stays reachable: ``jaxplain.attribution.lafa.lafa`` and
``jaxplain.attribution.diffmask.diffmask`` (both also in ``METHODS``).

``METHODS`` is a literal table from name to kernel (no import-time registration);
``ALIASES`` maps short names (``"ig"``) onto it; ``CONVERGENCE_DELTAS`` holds, for methods that
define one, ``delta(forward, params, batch, target, scores, **hyper) -> [B]`` (for per-layer
methods, of the embeddings row ``scores[0]``); ``WITH_LOGITS`` holds, for methods whose one
backward pass also gives the logits, ``fn(forward, params, batch, classes, **hyper) -> (scores,
logits, classes)``.
"""

import difflib
import functools
import inspect
from typing import Any

from jaxplain.attribution._names import ALIASES
from jaxplain.attribution._quadrature import auto_token_rows
from jaxplain.attribution.attention import (att_gradcam, attcat, attention_gradient,
                                          attention_rollout, attention_x_gradient,
                                          partial_lrp, raw_attention)
from jaxplain.attribution.decoded import decoded_layer_saliency
from jaxplain.attribution.gradients import (GRADIENT_READS, PER_DIMENSION, gradient,
                                            gradient_dims, gradient_x_input, gradient_x_input_dims,
                                            ig_convergence_delta, integrated_gradients,
                                            integrated_gradients_dims, saliency, saliency_dims,
                                            scores_and_logits, scores_from_gradient)
from jaxplain.attribution.layers import (layer_gradient_x_activation,
                                         layer_gradient_x_activation_and_logits,
                                         layer_integrated_gradients)
from jaxplain.attribution.heads import HeadMasks, compute_head_masks, random_head_mask
from jaxplain.attribution.packed import PACKABLE, PACKED_DELTAS, packed_ig_delta, packed_target
from jaxplain.attribution.lrp import (attnlrp, cp_lrp, full_lrp, gae, lrp_embedding_relevance,
                                    lrp_layer_relevance, lrp_scores_and_logits, mask_lrp)
from jaxplain.attribution import diffmask, lafa  # submodules: their kernels share their names
from jaxplain.attribution.lafa import build_index
from jaxplain.attribution.selectors import attention_pooling, l2x, load_selector
from jaxplain.attribution.smoothing import noise_tunnel, smoothgrad, smoothgrad_sq, vargrad
from jaxplain.errors import InputError

METHODS = {
    "gradient": gradient,
    "saliency": saliency,
    "gradient_x_input": gradient_x_input,
    "integrated_gradients": integrated_gradients,
    "smoothgrad": smoothgrad,
    "smoothgrad_sq": smoothgrad_sq,
    "vargrad": vargrad,
    "layer_gradient_x_activation": layer_gradient_x_activation,
    "layer_integrated_gradients": layer_integrated_gradients,
    "attnlrp": attnlrp,
    "cp_lrp": cp_lrp,
    "gae": gae,
    "mask_lrp": mask_lrp,
    "full_lrp": full_lrp,
    "raw_attention": raw_attention,
    "rollout": attention_rollout,
    "attention_gradient": attention_gradient,
    "attention_x_gradient": attention_x_gradient,
    "att_gradcam": att_gradcam,
    "partial_lrp": partial_lrp,
    "attcat": attcat,
    "lafa": lafa.lafa,
    "decoded_layer_saliency": decoded_layer_saliency,
    "attention_pooling": attention_pooling,
    "l2x": l2x,
    "diffmask": diffmask.diffmask,
}

# Hyperparameters that may be given as a path: name -> loader(path, config) -> pytree.
PATH_HYPERPARAMETERS = {
    "selector": lambda path, config: load_selector(path, hidden=config.hidden_size),
    "gates": lambda path, config: diffmask.load_gates(path, config),
}

CONVERGENCE_DELTAS = {
    "integrated_gradients": ig_convergence_delta,
    # Row 0 (the embeddings' output) of layer IG: with path="layer" it is complete like IG, so the
    # same gap measures its quadrature error; with path="inputs" it also measures how far that
    # one-pass approximation is from complete. attribute() adds every row's in
    # extra["layer_deltas"].
    "layer_integrated_gradients": ig_convergence_delta,
}

WITH_LOGITS = {
    **{name: functools.partial(scores_and_logits, name) for name in GRADIENT_READS},
    "layer_gradient_x_activation": layer_gradient_x_activation_and_logits,
    "attnlrp": functools.partial(lrp_scores_and_logits, "attnlrp"),
    "cp_lrp": functools.partial(lrp_scores_and_logits, "cp-lrp"),
}
"""Methods of one forward and one backward pass, whose forward gives the logits:
``fn(forward, params, batch, classes, **hyper) -> (scores, logits, classes)``, with ``classes``
an int, one per example (per slot when packed) or ``None`` (the predicted class).
:func:`jaxplain.attribute` reads the probabilities and the explained class from them instead of
running a forward pass of its own; each ``fn`` takes the hyperparameters it names."""


def canonical_name(method: str) -> str:
  """The ``METHODS`` key for ``method`` or an alias; :class:`InputError` listing valid names."""
  if not isinstance(method, str):
    raise InputError(f"method must be a name string, got {type(method).__name__}.")
  name = ALIASES.get(method.lower().replace("-", "_"), method.lower().replace("-", "_"))
  if name not in METHODS:
    close = difflib.get_close_matches(name, [*METHODS, *ALIASES], n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise InputError(f"unknown method {method!r}; {hint}valid methods: "
                     f"{', '.join(sorted(METHODS))}.")
  return name


def kernel_token_ids(name: str, tokenizer: Any, pad_token_id: int | None) -> dict[str, Any]:
  """The tokenizer's ids that kernel ``name`` takes as hyperparameters.

  Kernels never see a tokenizer: IG-style baselines need ``pad_id``, ``mask_id``, ``unk_id``
  and the ``special_ids`` they keep, Mask-LRP needs ``sep_token_id`` (the [SEP] it drops from
  attention). Without a tokenizer only ``pad_id`` (the model config's) is known. Callers let the
  user's own values override these.
  """
  accepted = inspect.signature(METHODS[name]).parameters
  if tokenizer is None:
    ids = {"pad_id": pad_token_id}
  else:
    ids = {"pad_id": tokenizer.pad_token_id, "mask_id": tokenizer.mask_token_id,
           "unk_id": tokenizer.unk_token_id}
    content = {i for i in ids.values() if i is not None}
    ids["special_ids"] = tuple(sorted(set(tokenizer.all_special_ids) - content))
    ids["sep_token_id"] = tokenizer.sep_token_id
  return {k: v for k, v in ids.items() if k in accepted and v is not None}


__all__ = ["ALIASES", "CONVERGENCE_DELTAS", "PACKABLE", "PACKED_DELTAS", "WITH_LOGITS",
           "layer_gradient_x_activation_and_logits", "lrp_scores_and_logits", "packed_ig_delta",
           "packed_target", "kernel_token_ids",
           "PATH_HYPERPARAMETERS", "attention_pooling", "l2x", "METHODS", "canonical_name",
           "att_gradcam", "attcat",
           "attention_gradient", "attention_rollout", "attention_x_gradient", "attnlrp", "cp_lrp",
           "full_lrp", "gae", "HeadMasks", "compute_head_masks", "random_head_mask",
           "lrp_embedding_relevance", "lrp_layer_relevance", "mask_lrp",
           "partial_lrp", "raw_attention", "gradient",
           "gradient_x_input", "saliency", "ig_convergence_delta", "integrated_gradients",
           "layer_gradient_x_activation", "layer_integrated_gradients", "noise_tunnel",
           "smoothgrad", "smoothgrad_sq", "vargrad", "build_index",
           "decoded_layer_saliency", "auto_token_rows", "PER_DIMENSION", "gradient_dims",
           "gradient_x_input_dims", "integrated_gradients_dims", "saliency_dims",
           "scores_and_logits", "scores_from_gradient"]
