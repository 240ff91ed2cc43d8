"""The sweep's one compiled step: prediction, every method and every metric for a batch.

:func:`sweep_step` builds (once per model, method list and metric list; cached) a jitted
``step(params, batch, word_ids, labels, indices, key) -> dict`` that shares work between the
pieces of a sweep:

* **one forward** gives the logits (prediction, probabilities, the explained class) and the word
  embeddings ``x``;
* **one backward**: ``gradient``, ``saliency`` and ``gradient_x_input`` are all read off the
  same embedding gradient ``g = d f_y / d x``: ``sum_e g``, ``||g||`` and ``sum_e g * x``
  (instead of three backward passes), with :func:`jaxplain.attribution.scores_from_gradient`;
* every other method runs its own kernel from :data:`jaxplain.attribution.METHODS`, with the
  explained class fixed (no extra forward to find it) and one PRNG key per example,
  ``fold_in(key, example_index)``, so results do not depend on batch composition, sharding or
  where a sweep resumed;
* metrics listed in the plan are computed in the same program by
  :func:`jaxplain.metrics.run_protocols` (all removal levels folded into one forward per method),
  when the metrics module is present.
"""

import functools
import inspect
from typing import Any, Hashable, Sequence

import jax
import jax.numpy as jnp

from jaxplain._compile import jit as _jit
from jaxplain.attribution import CONVERGENCE_DELTAS, METHODS, kernel_token_ids
from jaxplain.attribution._common import grad_wrt_embeddings, masked
from jaxplain.attribution.gradients import scores_from_gradient
from jaxplain.attribution.smoothing import folded_keys
from jaxplain.contracts import Batch, Forward, Taps
from jaxplain.errors import InputError

Hyper = tuple[tuple[str, Hashable], ...]

SHARED_GRADIENT = ("gradient", "saliency", "gradient_x_input")
"""Methods read off one shared embedding gradient (when their hyperparameters allow it)."""


def shares_gradient(name: str, hyper: Hyper) -> bool:
  """Whether ``name`` with ``hyper`` is a function of the plain embedding gradient alone."""
  h = dict(hyper)
  if name == "saliency":
    return set(h) <= {"norm"} and h.get("norm", "l2") in ("l1", "l2")
  if name in ("gradient", "gradient_x_input"):
    return set(h) <= {"rules"} and h.get("rules", "gradient") == "gradient"
  return False


def with_token_ids(name: str, hyper: Hyper, tokenizer: Any, pad_token_id: int) -> Hyper:
  """``hyper`` plus the tokenizer's ids that the kernel takes (IG baselines' ``pad_id``...,
  Mask-LRP's ``sep_token_id``: :func:`jaxplain.attribution.kernel_token_ids`), unless the user
  gave them (as :func:`jaxplain.attribute`)."""
  given = dict(hyper)
  for k, v in kernel_token_ids(name, tokenizer, pad_token_id).items():
    given.setdefault(k, v)
  return tuple(sorted(given.items()))


def check_method_hyper(name: str, hyper: Hyper) -> None:
  """:class:`InputError` for a hyperparameter the kernel does not take."""
  params = inspect.signature(METHODS[name]).parameters
  if any(p.kind == p.VAR_KEYWORD for p in params.values()):
    return
  allowed = [p for p, v in params.items() if v.kind == v.KEYWORD_ONLY and p != "key"]
  for k, _ in hyper:
    if k not in allowed:
      raise InputError(f"method {name!r} has no hyperparameter {k!r}; it takes "
                       f"{', '.join(allowed) or 'none'}.")


def metric_protocols(names: Sequence[str], options: Sequence[tuple[str, Hyper]],
                     tokenizer: Any) -> tuple[Any, ...]:
  """The :class:`jaxplain.metrics.Protocol` of each metric name (the metrics hook).

  Raises:
    InputError: metrics were asked for but :mod:`jaxplain.metrics` is not installed, or a
      metric needs a token id the tokenizer lacks.
  """
  if not names:
    return ()
  try:
    from jaxplain.metrics import faithfulness as fm  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise InputError("this jaxplain has no metrics module; drop the metrics from the sweep "
                     "config.") from None
  opts = {m: dict(o) for m, o in options}

  def tok_id(attr: str) -> int:
    value = getattr(tokenizer, attr, None) if tokenizer is not None else None
    if value is None:
      raise InputError(f"the model's tokenizer has no {attr}; set it in the metric options.")
    return int(value)

  builders = {
      "comprehensiveness": lambda o: fm.comprehensiveness_protocol(**o),
      "sufficiency": lambda o: fm.sufficiency_protocol(**o),
      "aopc_log_odds": lambda o: fm.aopc_log_odds_protocol(
          **{"replacement_id": tok_id("pad_token_id"), **o}),
      "deletion": lambda o: fm.deletion_protocol(**o),
      "insertion": lambda o: fm.insertion_protocol(**o),
      "auac": lambda o: fm.auac_protocol(o.pop("unk_id", None) or tok_id("unk_token_id"), **o),
      "au_mse": lambda o: fm.au_mse_protocol(o.pop("unk_id", None) or tok_id("unk_token_id"), **o),
  }
  protocols = []
  for name in names:
    try:
      protocols.append(builders[name](dict(opts.get(name, {}))))
    except TypeError as e:
      raise InputError(f"bad options for metric {name!r}: {e}.") from None
  return tuple(protocols)


@functools.lru_cache(maxsize=32)
def sweep_step(forward: Forward, methods: tuple[tuple[str, Hyper], ...],
               protocols: tuple[Any, ...], target_mode: str = "predicted", pad_id: int = 0):
  """The jitted step for one model, method list and metric protocols (built once, cached).

  Args:
    forward: the model.
    methods: ``((name, static hyper), ...)``, canonical names.
    protocols: faithfulness protocols (``()`` for none).
    target_mode: ``"predicted"`` or ``"label"`` (rows without a label use the prediction).
    pad_id: written into padding by the metrics' deletions.
  Returns:
    ``step(params, batch, word_ids, labels, indices, key) -> dict`` with ``probabilities``
    ``[B, C]``, ``prediction`` and ``target`` ``[B]``, ``scores.<method>`` ``[B, T]``,
    ``delta.<method>`` ``[B]`` where the method has a convergence delta,
    ``<metric>.<method>`` ``[B]`` for every per-example metric value, and
    ``<metric>_curve.<method>`` ``[B, R]`` for every metric curve (one value per removal level).
  """

  def step(params, batch: Batch, word_ids, labels, indices, key) -> dict[str, jax.Array]:
    out = forward(params, batch, Taps())
    logits = out.logits.astype(jnp.float32).reshape(batch.input_ids.shape[0], -1)
    prediction = jnp.argmax(logits, -1).astype(jnp.int32)
    target = prediction if target_mode == "predicted" else jnp.where(labels >= 0, labels,
                                                                     prediction)
    keys = folded_keys(key, indices)
    res = {"probabilities": jax.nn.softmax(logits, -1), "prediction": prediction,
           "target": target}
    shared = [(n, h) for n, h in methods if shares_gradient(n, h)]
    if shared:  # one backward pass for all of them
      x = out.word_embeddings.astype(jnp.float32)
      g = grad_wrt_embeddings(forward, params, batch, target, x)
      for name, hyper in shared:
        s = scores_from_gradient(name, g, x, norm=dict(hyper).get("norm", "l2"))
        res[f"scores.{name}"] = masked(s, batch.attention_mask)
    for name, hyper in methods:
      if (name, hyper) in shared:
        continue
      s = METHODS[name](forward, params, batch, target, key=keys, **dict(hyper))
      if s.ndim == 3:  # per-layer methods [L+1, B, T]: the embeddings row, as attribute()
        s = s[0]
      res[f"scores.{name}"] = masked(s, batch.attention_mask)
      if name in CONVERGENCE_DELTAS:
        res[f"delta.{name}"] = CONVERGENCE_DELTAS[name](forward, params, batch, target,
                                                        res[f"scores.{name}"], **dict(hyper))
    if protocols:
      from jaxplain.metrics import run_protocols  # pylint: disable=g-import-not-at-top
      with_words = Batch(batch.input_ids, batch.attention_mask, batch.token_type_ids, word_ids)
      for name, _ in methods:
        values = run_protocols(forward, params, with_words, res[f"scores.{name}"], protocols,
                               target, pad_id=pad_id)
        for k, v in values.items():
          if k in ("target", "probability"):
            continue
          if v.ndim == 1:  # a per-example value
            res[f"{k}.{name}"] = v.astype(jnp.float32)
          elif v.ndim == 2 and k.endswith("_curve"):  # [R, B] per level -> [B, R]
            res[f"{k}.{name}"] = v.T.astype(jnp.float32)
    return res

  return _jit(step)
