"""A synthetic additive classifier whose relevant tokens are known by construction.

``logits[b, c] = sum_t mask[b, t] * W[ids[b, t], c]``: each token id pushes the logits by its
own row of ``W``, independently of position and context. Deleting a token (or replacing it with
id 0, whose row is zero) removes exactly its contribution, so the best ordering for a class
``y`` is by the margin ``W[id, y] - W[id, 1 - y]``; that is the "oracle" attribution.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxplain.contracts import Batch, Outputs, Taps

VOCAB = 50
CLS, SEP, PAD, MASK, UNK = 1, 2, 0, 3, 4
T = 16


def additive_forward(params, batch: Batch, taps: Taps = Taps()) -> Outputs:
  """``logits = sum_t mask_t W[id_t]``; the other Outputs fields are empty placeholders."""
  del taps
  w = params["w"]
  contrib = w[batch.input_ids] * batch.attention_mask[..., None].astype(w.dtype)  # [B T C]
  b, t = batch.input_ids.shape
  z = jnp.zeros((1, b, t, 1), jnp.float32)
  return Outputs(logits=contrib.sum(1), hidden=z, attention=jnp.zeros((1, b, 1, t, t)),
                 word_embeddings=z[0])


def make_params(seed: int = 0) -> dict:
  rng = np.random.default_rng(seed)
  w = rng.normal(0.0, 1.0, (VOCAB, 2)).astype(np.float32)
  w[[PAD, CLS, SEP, MASK, UNK]] = 0.0  # specials and replacement ids carry no evidence
  return {"w": jnp.asarray(w)}


def make_batch(lengths, seed: int = 0, t: int = T, word_len: int = 1) -> Batch:
  """Rows ``[CLS] w... [SEP] pad...``; ``word_len`` tokens per word (the last word may be shorter)."""
  rng = np.random.default_rng(seed)
  b = len(lengths)
  ids = np.full((b, t), PAD, np.int32)
  mask = np.zeros((b, t), np.int32)
  words = np.full((b, t), -1, np.int32)
  for i, n in enumerate(lengths):  # n real tokens including the two specials
    ids[i, :n] = rng.integers(5, VOCAB, n)
    ids[i, 0], ids[i, n - 1] = CLS, SEP
    mask[i, :n] = 1
    words[i, 1:n - 1] = np.arange(n - 2) // word_len
  return Batch(jnp.asarray(ids), jnp.asarray(mask), jnp.zeros((b, t), jnp.int32),
               word_ids=jnp.asarray(words))


def oracle_scores(params, batch: Batch, target) -> jnp.ndarray:
  """Each token's contribution to the margin of class ``target`` (0 on specials and padding)."""
  w = params["w"][batch.input_ids]                         # [B T 2]
  t = jnp.asarray(target)[:, None]
  margin = jnp.where(t == 1, w[..., 1] - w[..., 0], w[..., 0] - w[..., 1])
  return jnp.where(batch.word_ids >= 0, margin, 0.0)


@pytest.fixture(scope="session")
def additive():
  return additive_forward, make_params(0)


@pytest.fixture(scope="session")
def tiny_model():
  """The committed tiny random BERT sequence classifier (3 labels) with its WordPiece tokenizer."""
  import os  # pylint: disable=g-import-not-at-top
  import jaxplain  # pylint: disable=g-import-not-at-top
  here = os.path.dirname(os.path.dirname(__file__))
  return jaxplain.load_model(os.path.join(here, "fixtures", "tiny", "bert_seq_cls"))
