"""The public entry points: ``attribute(model, texts_or_batch, method, ...)`` and ``methods()``.

This is where kernels meet jit. Kernels are pure and unjitted; :func:`compiled` jits each
(method, static hyperparameters, model) once and caches it, so a second call with the same
shape bucket never recompiles. :func:`attribute` runs each call in one such program that also
returns the model's logits (for the probabilities and the predicted classes) and, for IG, the
convergence gap. Array-valued hyperparameters (a baseline, a noise level given as an array)
stay dynamic.
"""

import contextlib
import functools
import inspect
import os
import sys
import time
import typing
from typing import Any, Callable, Hashable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxplain._compile import jit as _jit
from jaxplain._progress import progress_bar
from jaxplain.attribution import (CONVERGENCE_DELTAS, METHODS, PATH_HYPERPARAMETERS,
                                 WITH_LOGITS, auto_token_rows, canonical_name,
                                 kernel_token_ids)
from jaxplain.attribution.packed import PACKABLE, PACKED_DELTAS
from jaxplain.attribution.smoothing import KINDS as NOISE_TUNNELS
from jaxplain.attribution.smoothing import folded_keys
from jaxplain.contracts import Batch, Forward
from jaxplain.errors import InputError
from jaxplain.models.grouping import length_groups
from jaxplain.models.model import Model
from jaxplain.models.packing import PackLayout, default_row_length, unpack, unpack_slots
from jaxplain.models.packing import pack as pack_batch
from jaxplain.models.tokenize import check_texts
from jaxplain.result import Attribution, concatenate


def methods() -> tuple[str, ...]:
  """Names accepted by :func:`attribute` and ``jaxplain explain --method``."""
  return tuple(sorted(METHODS))


def _split_hyper(hyper: dict[str, Any]) -> tuple[tuple[tuple[str, Hashable], ...],
                                                 dict[str, Any]]:
  static, dynamic = [], {}
  for k, v in sorted(hyper.items()):
    if isinstance(v, (jax.Array, np.ndarray)):
      dynamic[k] = jnp.asarray(v)
    elif any(isinstance(leaf, (jax.Array, np.ndarray)) for leaf in jax.tree.leaves(v)):
      dynamic[k] = v  # a pytree of arrays (e.g. a LAFA NeighbourIndex)
    else:
      try:
        hash(v)
      except TypeError:
        raise InputError(f"hyperparameter {k}={v!r} is neither an array nor hashable; pass a "
                         "number, string, tuple or array.") from None
      static.append((k, v))
  return tuple(static), dynamic


@functools.lru_cache(maxsize=256)
def compiled(name: str, static_hyper: tuple[tuple[str, Hashable], ...], forward: Forward,
             target_fn: Callable | None = None) -> Callable:
  """``jit(kernel)`` for one method, static hyperparameters and model, built once.

  The returned function is ``fn(params, batch, target, key, **dynamic_hyper)``.
  """
  kernel = functools.partial(METHODS[name], **dict(static_hyper))

  def run(params, batch, target, key, **dynamic):
    return kernel(forward, params, batch, target_fn if target_fn is not None else target,
                  key=key, **dynamic)

  return _jit(run)


def _check_hyper(name: str, hyper: dict[str, Any]) -> None:
  sig = inspect.signature(METHODS[name])
  params = sig.parameters
  if any(p.kind == p.VAR_KEYWORD for p in params.values()):
    return
  allowed = [p for p, v in params.items() if v.kind == v.KEYWORD_ONLY and p != "key"]
  for k in hyper:
    if k not in allowed:
      raise InputError(f"method {name!r} has no hyperparameter {k!r}; it takes "
                       f"{', '.join(allowed) or 'none'}.")


def attribute(model: Model, batch_or_texts: Batch | str | Sequence[str],
              method: str = "gradient_x_input", target: Any = None, *,
              text_pairs: str | Sequence[str] | None = None, max_length: int | None = None,
              truncate: bool = True, batch_size: int | None = None, seed: int = 0,
              key: jax.Array | None = None, pack: bool | int | str = "auto",
              progress: bool | None = None, **hyper: Any) -> Attribution:
  """Explains a model's predictions with one attribution method.

  Args:
    model: from :func:`jaxplain.load_model` or :func:`jaxplain.default_model`.
    batch_or_texts: a text, a list of texts, or a :class:`Batch` from ``model.encode``.
    method: a name from :func:`methods` (``"ig"`` and other short names work too).
    target: class index or label name (``"positive"``, any case), one per example, ``None``
      (the predicted class), or a callable ``Outputs -> [B]`` (e.g. a QA start logit).
    text_pairs: second texts of pairs, when ``batch_or_texts`` holds texts.
    max_length: truncate inputs to this many tokens (default: the model's limit).
    truncate: ``False`` makes an over-long input an error instead of a warning.
    batch_size: texts per compiled call (bounds memory). Texts are explained in calls of
      similar lengths, each padded to one of the model's buckets (``model.buckets``;
      :func:`jaxplain.models.length_groups`), and the result keeps their order. Default: each
      call about 2048 token rows on the CPU, 8192 elsewhere. With ``pack``: packed rows per
      call (default: the same budget).
    seed: seeds ``key`` when none is given (methods with randomness, e.g. SmoothGrad).
    key: a ``jax.random.key`` (or an int, taken as its seed); overrides ``seed``.
    pack: lay several texts end to end in each row (sequence packing) instead of padding each
      to a bucket: ``True`` (rows of the smallest bucket that holds the longest input and 64
      tokens, or all the inputs when they total fewer:
      :func:`jaxplain.models.packing.default_row_length`) or a row length. The scores are
      each text's own (to float tolerance) and the result is laid out as without packing; only
      padding and compiled shapes change. For
      :data:`jaxplain.attribution.PACKABLE` methods on sequence-classification and embedding
      models, with class or ``None`` targets. ``"auto"`` (the default) packs two or more texts
      when all of that holds and ``batch_size`` is not given, and pads each call to a bucket
      otherwise; a :class:`Batch` is never repacked unless ``pack`` says so.
    progress: a progress bar on stderr over the compiled calls (``True``), none (``False``), or
      ``None``: a bar when the texts take more than one call and stderr is a terminal.
    **hyper: the method's hyperparameters (``steps=50``, ``baseline="pad"``...).
  Returns:
    An :class:`Attribution`.
  Example:
    >>> model = jaxplain.default_model()                                    # doctest: +SKIP
    >>> a = jaxplain.attribute(model, "an utterly charming film", "ig")     # doctest: +SKIP
    >>> a.word_scores(0)                                                    # doctest: +SKIP
  """
  if not isinstance(model, Model):
    raise InputError(f"model must be a jaxplain.Model, got {type(model).__name__}; load one "
                     "with jaxplain.default_model() or jaxplain.load_model(path).")
  name = canonical_name(method)
  _check_hyper(name, hyper)
  target = model.resolve_target(target)
  for k, load in PATH_HYPERPARAMETERS.items():  # e.g. selector=PATH: load it for this model
    if isinstance(hyper.get(k), (str, os.PathLike)):
      hyper[k] = load(hyper[k], model.config)
  key = _check_key(key, seed)
  _check_pack_value(pack)
  if pack not in (False, "auto"):
    _check_packable(model, name, target, hyper)
  if isinstance(batch_or_texts, Batch):
    if text_pairs is not None:
      raise InputError("text_pairs goes with texts; a Batch already holds its pairs.")
    if batch_or_texts.packing is not None:
      raise InputError("this Batch is already packed; pass the unpacked batch (from "
                       "model.encode) with pack=True instead.")
    if pack not in (False, "auto"):
      return _attribute_packed(model, batch_or_texts, None, None, name, target, key, hyper,
                               pack, batch_size, progress)
    return _attribute_batch(model, batch_or_texts, None, None, name, target, key, hyper)
  texts = check_texts(batch_or_texts)
  pairs = None if text_pairs is None else check_texts(text_pairs, "text pair")
  if batch_size is not None and batch_size < 1:
    raise InputError(f"batch_size must be >= 1, got {batch_size}.")
  batch = model.encode(texts, pairs, max_length, truncate=truncate)
  if pack == "auto":
    pack = (len(texts) > 1 and batch_size is None
            and _pack_problem(model, name, target, hyper) is None)
  if pack is not False:
    return _attribute_packed(model, batch, texts, pairs, name, target, key, hyper, pack,
                             batch_size, progress)
  return _attribute_grouped(model, batch, texts, pairs, name, target, key, hyper, batch_size,
                            progress)


def _attribute_grouped(model: Model, batch: Batch, texts: list[str], pairs: list[str] | None,
                       name: str, target: Any, key: jax.Array, hyper: dict[str, Any],
                       batch_size: int | None, progress: bool | None) -> Attribution:
  """:func:`attribute` over length-sorted calls padded to buckets, in the texts' order.

  Per-text array hyperparameters (a ``[B, T, E]`` or ``[T, E]`` baseline, LAFA's
  ``query_labels``) are laid out for the whole padded batch, so with them it runs as one call.
  """
  arrays = _per_text_arrays(name, hyper)
  if arrays:
    if batch_size is not None and batch_size < len(texts):
      raise InputError(f"per-text arrays ({', '.join(arrays)}) cover the whole batch, which "
                       "then runs as one call; drop batch_size to pass them.")
    return _attribute_batch(model, batch, texts, pairs, name, target, key, hyper)
  if model.config.head == "sequence_classification":
    model.check_target(target, len(texts))
  per_text = target is not None and not callable(target) and np.ndim(target) == 1
  if per_text and len(target) != len(texts):
    raise InputError(f"{len(target)} targets for {len(texts)} texts; pass one per text, one int "
                     "for all, or None for the predicted class.")
  lengths = np.asarray(batch.attention_mask).sum(1)
  parts, order = [], []
  groups = list(length_groups(lengths, batch.shape[1], rows=batch_size, buckets=model.buckets,
                              budget=auto_token_rows()))
  with _progress(progress, len(groups), len(texts)) as advance:
    for j, (idx, size, width) in enumerate(groups):
      rows = np.concatenate([idx, np.repeat(idx[-1:], size - len(idx))])  # filled with repeats
      part = _attribute_batch(
          model, jax.tree.map(lambda x, r=rows, w=width: np.asarray(x)[r, :w], batch),
          [texts[i] for i in rows], None if pairs is None else [pairs[i] for i in rows], name,
          np.asarray(target)[rows] if per_text else target,
          _text_keys(key, rows) if name in NOISE_TUNNELS else jax.random.fold_in(key, j), hyper)
      parts.append(part.take(slice(0, len(idx))))
      order.append(idx)
      advance(len(idx))
  # Scores and per-example values from the calls; tokens and ids from ``batch`` itself (its own
  # padding ids, which concatenate's zeros are not for RoBERTa). The longest text's call is as
  # wide as ``batch``.
  out = concatenate(parts).take(np.argsort(np.concatenate(order)))
  return _result(model, batch, texts, pairs, name, hyper, out.scores, out.target,
                 out.probabilities, out.deltas, out.extra)


def _attribute_batch(model: Model, batch: Batch, texts: list[str] | None,
                     pairs: list[str] | None, name: str, target: Any, key: jax.Array,
                     hyper: dict[str, Any]) -> Attribution:
  b = len(batch)
  if model.config.head == "sequence_classification":
    model.check_target(target, b)
  static, dynamic = _split_hyper({**_token_ids(model, name), **hyper})
  device_batch = batch.device_part()
  # The forward pass (probabilities, predicted classes), the method and its gap: one program.
  if callable(target):
    out, logits, deltas = _compiled_callable(name, static, model.forward, target)(
        model.params, device_batch, key, **dynamic)
    classes = None
  else:
    classes = np.broadcast_to(np.asarray(0 if target is None else target, np.int32), (b,))
    out, logits, classes, deltas = _class_target_program(name, static, dynamic, model.forward)(
        model.params, device_batch, jnp.asarray(classes), target is None, key)
    classes = np.asarray(classes, np.int32)
  deltas = None if deltas is None else np.asarray(deltas, np.float32)
  out, extra = _layer_rows(np.asarray(out, np.float32), deltas)
  return _result(model, batch, texts, pairs, name, hyper, out, classes,
                 _probabilities(model, logits), deltas, extra)


def _layer_rows(out: np.ndarray, deltas: np.ndarray | None) -> tuple[np.ndarray, dict[str, Any]]:
  """``(scores [B, T], extra)`` of a method's output. A per-layer method's ``[L+1, B, T]``
  shows its embeddings row as ``scores`` and keeps every row in ``extra["layers"]``; with a
  convergence gap of row 0 (``deltas [B]``), every row's gap goes in ``extra["layer_deltas"]``
  ``[L+1, B]``: the same ``f(x) - f(x')``, each row's own sum."""
  if out.ndim != 3:
    return out, {}
  extra = {"layers": out}
  if deltas is not None:
    extra["layer_deltas"] = (deltas[None] + out.sum(-1) - out[0].sum(-1)).astype(np.float32)
  return out[0], extra


def _result(model: Model, batch: Batch, texts: list[str] | None, pairs: list[str] | None,
            name: str, hyper: dict[str, Any], scores: np.ndarray, target: np.ndarray | None,
            probs: np.ndarray | None, deltas: np.ndarray | None,
            extra: dict[str, Any]) -> Attribution:
  """The :class:`Attribution` of ``batch``'s examples: scores, targets and the batch's tokens."""
  texts = texts if texts is not None else _decode(model, batch)
  return Attribution(
      scores=scores, tokens=model.tokens(batch), input_ids=np.asarray(batch.input_ids),
      attention_mask=np.asarray(batch.attention_mask),
      word_ids=_or(batch.word_ids, batch.input_ids, -1), offsets=_offsets(batch),
      sequence_ids=_or(batch.sequence_ids, batch.input_ids, -1), texts=texts, text_pairs=pairs,
      target=target, probabilities=probs, labels=model.labels, method=name,
      hyper=dict(hyper), deltas=deltas, extra=extra)


def _check_key(key: Any, seed: Any) -> jax.Array:
  """The typed PRNG key ``attribute`` runs with: ``key`` (a ``jax.random.key``, a legacy
  ``uint32 [2]`` ``PRNGKey``, or an int seed), else ``jax.random.key(seed)``."""
  is_int = lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool)
  if key is None:
    if not is_int(seed):
      raise InputError(f"seed must be an int, got {seed!r}.")
    return jax.random.key(int(seed))
  if is_int(key):
    return jax.random.key(int(key))
  if isinstance(key, (jax.Array, np.ndarray)):
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ():
      return key
    if key.dtype == np.uint32 and key.shape == (2,):
      return jax.random.wrap_key_data(jnp.asarray(key))
  shape = f" of shape {tuple(key.shape)}" if hasattr(key, "shape") else ""
  raise InputError(f"key must be one jax.random.key(...) or an int seed, got "
                   f"{type(key).__name__}{shape}; pass e.g. key=jax.random.key(0), or seed=0.")


def _text_keys(key: jax.Array, index: np.ndarray) -> jax.Array:
  """``fold_in(key, i)`` for each text index ``i`` (any shape): the noise tunnels' keys per
  example (:func:`~jaxplain.attribution.smoothing.example_keys`). A text's noise is then the
  one it gets as row ``i`` of ``model.encode(texts)``, whichever call, row or slot it runs in."""
  return folded_keys(key, np.asarray(index, np.int32))


def _reads_logits(name: str, static: tuple[tuple[str, Hashable], ...],
                  dynamic: dict[str, Any]) -> bool:
  """Whether a call with a class target can take its logits from the method's own pass
  (:data:`~jaxplain.attribution.WITH_LOGITS`): such a method, and only hyperparameters that
  its ``WITH_LOGITS`` function takes."""
  if name not in WITH_LOGITS or dynamic:
    return False
  takes = inspect.signature(WITH_LOGITS[name]).parameters
  return all(takes.get(k) is not None and takes[k].kind == inspect.Parameter.KEYWORD_ONLY
             for k, _ in static)


@functools.lru_cache(maxsize=64)
def _compiled_with_logits(name: str, static_hyper: tuple[tuple[str, Hashable], ...],
                          forward: Forward) -> Callable:
  """Jitted ``(params, batch, classes) -> (scores, logits, classes)`` of ``WITH_LOGITS[name]``."""
  return _jit(lambda params, batch, classes: WITH_LOGITS[name](
      forward, params, batch, classes, **dict(static_hyper)))


def _probabilities(model: Model, logits: Any) -> np.ndarray | None:
  """Softmax over the classes of a sequence classifier's logits ``[..., C]``; else ``None``."""
  if model.config.head != "sequence_classification":
    return None
  z = np.asarray(logits, np.float32)
  e = np.exp(z - z.max(-1, keepdims=True))  # in NumPy: eager jax ops would compile one by one
  return e / e.sum(-1, keepdims=True)


@contextlib.contextmanager
def _progress(enabled: bool | None, calls: int, texts: int) -> Iterator[Callable[[int], None]]:
  """Yields ``advance(texts done)``, drawing :func:`attribute`'s progress bar when asked."""
  if enabled is None:
    enabled = calls > 1 and sys.stderr.isatty()
  if not enabled:
    yield lambda n: None
    return
  bar, start, done = progress_bar("attribute", texts, suffix="{task.fields[rate]} texts/s",
                                  rate="-"), time.perf_counter(), [0]

  def advance(n: int) -> None:
    done[0] += n
    rate = done[0] / max(time.perf_counter() - start, 1e-9)
    bar.update(bar.task_ids[0], advance=n, rate=f"{rate:.1f}")

  try:
    yield advance
  finally:
    bar.stop()


def _check_pack_value(pack: Any) -> None:
  if isinstance(pack, str):
    if pack != "auto":
      raise InputError(f"pack must be True, False, 'auto' or a row length, got {pack!r}.")
  elif isinstance(pack, bool):
    return
  elif pack is None or not isinstance(pack, (int, np.integer)) or pack < 1:
    raise InputError(f"pack must be True, False, 'auto' or a row length (a positive int), got "
                     f"{pack!r}.")


def _per_text_arrays(name: str, hyper: dict[str, Any]) -> list[str]:
  """Array hyperparameters laid out per text: all but those whose annotation names no batch
  axis (e.g. Mask-LRP's ``head_mask: Float[Array, "L N"]``), which every text shares."""
  params = inspect.signature(METHODS[name]).parameters
  out = []
  for k, v in hyper.items():
    if not isinstance(v, (jax.Array, np.ndarray)):
      continue
    annotation = getattr(params.get(k), "annotation", None)
    dims = [getattr(a, "dim_str", None) for a in typing.get_args(annotation) or (annotation,)]
    dims = [d for d in dims if isinstance(d, str)]
    if not dims or any("B" in d.split() for d in dims):
      out.append(k)
  return out


def _pack_problem(model: Model, name: str, target: Any, hyper: dict[str, Any]) -> str | None:
  """Why this call cannot be packed (one line naming the fix), or ``None``."""
  if name not in PACKABLE:
    return (f"method {name!r} does not take packed batches; pack works with "
            f"{', '.join(PACKABLE)}. Drop pack=... for {name!r}.")
  if model.config.head not in ("sequence_classification", "embedding"):
    return (f"pack needs one output per text (a sequence-classification or embedding model); "
            f"this model's head is {model.config.head!r}. Drop pack=...")
  if callable(target):
    return ("pack takes class targets (an int, one per text, or None), not a callable; drop "
            "pack=... to explain a callable target.")
  arrays = _per_text_arrays(name, hyper)
  if arrays:
    return (f"pack lays the texts out anew, so per-text arrays ({', '.join(arrays)}) cannot "
            "follow them; drop pack=... to pass them.")
  return None


def _check_packable(model: Model, name: str, target: Any, hyper: dict[str, Any]) -> None:
  problem = _pack_problem(model, name, target, hyper)
  if problem is not None:
    raise InputError(problem)


@functools.lru_cache(maxsize=64)
def _compiled_callable(name: str, static_hyper: tuple[tuple[str, Hashable], ...],
                       forward: Forward, target_fn: Callable) -> Callable:
  """One jitted program for a callable target, as :func:`_compiled_fused` is for classes:
  ``fn(params, batch, key, **dynamic) -> (scores, logits, gap | None)``.

  The callable is part of the cache key (a function cannot be traced), so a new function
  object, e.g. a ``lambda`` written inside a loop, compiles anew: define it once. Separate
  programs for the logits and the gap compiled twice more per shape and ran one more forward
  pass: a first IG call on the default model takes about a fifth less in one program
  (``experiments/benchmarks/results/bench_first_call.md``).
  """
  kernel = functools.partial(METHODS[name], **dict(static_hyper))

  def run(params, batch, key, **dynamic):
    logits = forward(params, batch).logits
    scores = kernel(forward, params, batch, target_fn, key=key, **dynamic)
    gap = _gap(CONVERGENCE_DELTAS, name, static_hyper, forward, params, batch, target_fn,
               scores, dynamic)
    return scores, logits, gap

  return _jit(run)


def _gap(table: dict[str, Callable], name: str, static_hyper: tuple[tuple[str, Hashable], ...],
         forward: Forward, params: Any, batch: Batch, target: Any, scores: jax.Array,
         dynamic: dict[str, Any]) -> jax.Array | None:
  """The method's convergence gap from ``table`` (``CONVERGENCE_DELTAS`` or, per slot of a
  packed batch, ``PACKED_DELTAS``), or ``None`` where it has none; of the embeddings row for
  per-layer methods (``scores [L+1, B, T]``)."""
  if name not in table:
    return None
  return functools.partial(table[name], **dict(static_hyper))(
      forward, params, batch, target, scores[0] if scores.ndim == 3 else scores, **dynamic)


def _class_target_program(name: str, static: tuple[tuple[str, Hashable], ...],
                          dynamic: dict[str, Any], forward: Forward) -> Callable:
  """``fn(params, batch, classes, predicted, key) -> (scores, logits, classes, gap | None)``
  for a class target, packed or not: the method's own pass where it gives the logits
  (:func:`_compiled_with_logits`), else :func:`_compiled_fused`."""
  if _reads_logits(name, static, dynamic):
    fn = _compiled_with_logits(name, static, forward)
    return lambda params, batch, classes, predicted, key: (
        *fn(params, batch, None if predicted else classes), None)
  fn = _compiled_fused(name, static, forward)
  return lambda params, batch, classes, predicted, key: fn(params, batch, classes, predicted,
                                                           key, **dynamic)


@functools.lru_cache(maxsize=64)
def _compiled_fused(name: str, static_hyper: tuple[tuple[str, Hashable], ...],
                    forward: Forward) -> Callable:
  """One jitted program for a class target: the model's logits, the classes, the method's
  scores and, where the method has one, its convergence gap.

  ``fn(params, batch, classes, predicted, key, **dynamic) -> (scores, logits, classes,
  gap | None)``: ``classes`` is ``int32 [B]``, or ``[R, S]`` per slot of a packed batch, whose
  gap comes per slot (:data:`~jaxplain.attribution.PACKED_DELTAS`); with ``predicted`` (a
  traced bool, so both cases share the program) the predicted classes replace them. Separate
  programs for the logits and the gap cost two more compilations per shape (about 1 s of a
  first one-text IG call on the default model) and one more forward pass.
  """
  kernel = functools.partial(METHODS[name], **dict(static_hyper))

  def run(params, batch, classes, predicted, key, **dynamic):
    logits = forward(params, batch).logits  # [B, ...] or packed [R, S, ...]
    lead = classes.shape  # argmax over everything past the example (or slot) axes
    best = jnp.argmax(logits.reshape(lead + (-1,)), -1).astype(jnp.int32)
    classes = jnp.where(predicted, best, classes)
    scores = kernel(forward, params, batch, classes, key=key, **dynamic)
    table = PACKED_DELTAS if batch.packing is not None else CONVERGENCE_DELTAS
    gap = _gap(table, name, static_hyper, forward, params, batch, classes, scores, dynamic)
    return scores, logits, classes, gap

  return _jit(run)


def _attribute_packed(model: Model, batch: Batch, texts: list[str] | None,
                      pairs: list[str] | None, name: str, target: Any, key: jax.Array,
                      hyper: dict[str, Any], pack: bool | int,
                      rows_per_batch: int | None, progress: bool | None) -> Attribution:
  """:func:`attribute` through packed batches (:mod:`jaxplain.models.packing`)."""
  b = len(batch)
  model.check_target(target, b)
  lengths = np.asarray(batch.attention_mask).sum(1)
  row_length = (default_row_length(lengths, model.max_length, model.buckets) if pack is True
                else int(pack))
  rows = rows_per_batch or max(1, auto_token_rows() // row_length)
  parts, layout = pack_batch(batch, row_length, rows)
  # Arrays that every text shares (Mask-LRP's head_mask) go to each call as they are.
  static, dynamic = _split_hyper({**_token_ids(model, name), **hyper})
  # The kernels take a packed batch as it is: a class target [R, S] is per slot
  # (jaxplain.attribution._common.resolve_target).
  run = _class_target_program(name, static, dynamic, model.forward)
  per_text = np.broadcast_to(np.asarray(0 if target is None else target, np.int32), (b,))
  scores, logits, classes, deltas = [], [], [], []
  with _progress(progress, len(parts), b) as advance:
    for j, part in enumerate(parts):
      part = jax.tree.map(jnp.asarray, part)
      # Each text's class in its slot (empty slots: class 0).
      cls = jnp.asarray(_in_slots(layout, j, part.packing.starts.shape, per_text))
      slot_keys = None
      if name in NOISE_TUNNELS:  # each slot's text's own key
        slot_keys = _text_keys(key, _in_slots(layout, j, part.packing.starts.shape,
                                              np.arange(b)))
      out, row_logits, cls, gap = run(model.params, part, cls, target is None, slot_keys)
      logits.append(np.asarray(row_logits, np.float32))
      scores.append(np.asarray(out, np.float32))
      classes.append(np.asarray(cls))
      if gap is not None:  # per slot [R, S]
        deltas.append(np.asarray(gap, np.float32))
      advance(int((layout.part == j).sum()))
  deltas = unpack_slots(deltas, layout) if deltas else None
  # Padding scores 0 in every row, so each text's per-layer sums match its unpacked ones.
  out, extra = _layer_rows(unpack(scores, layout), deltas)
  target_arr = unpack_slots(classes, layout).astype(np.int32)
  probs = _probabilities(model, unpack_slots(logits, layout))
  return _result(model, batch, texts, pairs, name, hyper, out, target_arr, probs, deltas, extra)


def _in_slots(layout: PackLayout, part: int, shape: tuple[int, ...],
              values: np.ndarray) -> np.ndarray:
  """Per-text ``values [B]`` placed in the slots ``[R, S]`` of packed batch ``part``; empty
  slots hold 0."""
  out = np.zeros(shape, np.int32)
  here = layout.part == part
  out[layout.row[here], layout.slot[here]] = np.asarray(values)[here]
  return out


def _token_ids(model: Model, name: str) -> dict[str, Any]:
  """The tokenizer's ids kernel ``name`` takes (:func:`kernel_token_ids`); the user's own values
  (``attribute(..., pad_id=...)``) override these."""
  return kernel_token_ids(name, model.tokenizer, model.config.pad_token_id)


def _or(x, like, fill) -> np.ndarray:
  return np.full(np.shape(like), fill, np.int32) if x is None else np.asarray(x)


def _offsets(batch: Batch) -> np.ndarray:
  if batch.offsets is None:
    return np.zeros(np.shape(batch.input_ids) + (2,), np.int32)
  return np.asarray(batch.offsets)


def _decode(model: Model, batch: Batch) -> list[str]:
  if model.tokenizer is None:
    return [""] * len(batch)
  ids = np.asarray(batch.input_ids)
  mask = np.asarray(batch.attention_mask).astype(bool)
  return [model.tokenizer.decode(ids[i][mask[i]].tolist(), skip_special_tokens=True)
          for i in range(ids.shape[0])]
