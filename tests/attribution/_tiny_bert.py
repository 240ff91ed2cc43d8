"""The tiny BERT classifier and jitted kernels shared by the gradient-family tests.

Everything is cached per process (``functools.cache``), so the model loads once and each
(kernel, hyperparameters) pair compiles once per shape however many test modules use it.
"""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

import jaxplain
from jaxplain import Batch
from jaxplain.attribution import METHODS

DIRECTORY = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "tiny",
                         "bert_seq_cls")
IDS = dict(pad_id=0, mask_id=4, unk_id=1, special_ids=(2, 3))  # the tiny tokenizer's ids
"""Token-id hyperparameters for kernels called directly (``attribute`` fills them itself)."""


@functools.cache
def model() -> jaxplain.Model:
  return jaxplain.load_model(DIRECTORY)


def make_batch(rows, t: int = 16, word_ids: bool = False) -> Batch:
  """A padded batch from lists of ids (``[CLS] ... [SEP]`` given by the caller)."""
  ids = np.zeros((len(rows), t), np.int32)
  mask = np.zeros_like(ids)
  for i, r in enumerate(rows):
    ids[i, :len(r)] = r
    mask[i, :len(r)] = 1
  wids = None
  if word_ids:
    wids = np.full_like(ids, -1)
    for i, r in enumerate(rows):
      wids[i, 1:len(r) - 1] = np.arange(len(r) - 2)
  return Batch(jnp.asarray(ids), jnp.asarray(mask), jnp.zeros_like(jnp.asarray(ids)),
               None if wids is None else jnp.asarray(wids))


ROWS = [[2, 5, 30, 15, 38, 65, 3], [2, 6, 39, 31, 66, 9, 5, 33, 16, 40, 65, 3], [2, 39, 3],
        [2, 14, 18, 38, 64, 3]]
"""Four examples of 3 to 12 tokens (the parity fixture's, without the pair)."""


TRACES: dict[tuple, int] = {}
"""How often each ``(name, hyper)`` was traced: a retrace is a recompilation."""


@functools.cache
def jitted(name: str, hyper: tuple = (), target_fn=None):
  """``jit(fn(params, batch, target, key, **dynamic))`` for ``METHODS[name]`` with static ``hyper``.

  A callable target is not an array: it is bound here (``target_fn``), as ``api.compiled`` does.
  """
  kernel = functools.partial(METHODS[name], **dict(hyper))
  forward = model().forward

  def run(params, batch, target, key, **dynamic):
    TRACES[name, hyper] = TRACES.get((name, hyper), 0) + 1
    return kernel(forward, params, batch, target if target_fn is None else target_fn, key=key,
                  **dynamic)

  return jax.jit(run)


def call(name: str, batch: Batch, target=None, key=None, hyper: tuple = (), **dynamic):
  """Runs a registered kernel, jitted and cached, on the tiny model."""
  key = jax.random.key(0) if key is None else key
  if callable(target):
    return jitted(name, hyper, target)(model().params, batch, None, key, **dynamic)
  return jitted(name, hyper)(model().params, batch, target, key, **dynamic)
