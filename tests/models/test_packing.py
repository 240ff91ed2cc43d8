"""Sequence packing: the layout (plan, pack, unpack) and the encoder on packed rows.

The encoder's contract for a packed batch: each example's logits are those it has alone. Checked
for the four families' sequence-classification heads and the embedding (mean-pooling) head on
tiny random encoders, with rows that hold several examples, pairs (segment ids), an empty slot
and an empty row.
"""

import functools

import hypothesis.strategies as st
import jax
import numpy as np
import pytest
from hypothesis import given, settings

import jaxplain
from jaxplain import Batch, Taps
from jaxplain.models import (EncoderConfig, default_row_length, init_encoder, pack, plan_rows,
                             unpack, unpack_slots)

LENGTHS = (5, 12, 3, 9, 7, 4, 11, 2)
SAME = 1e-5


def _batch(lengths=LENGTHS, t=16, seed=0) -> Batch:
  rng = np.random.default_rng(seed)
  ids = np.zeros((len(lengths), t), np.int32)
  mask, types = np.zeros_like(ids), np.zeros_like(ids)
  for i, n in enumerate(lengths):
    ids[i, :n] = rng.integers(5, 90, n)
    ids[i, 0], ids[i, n - 1] = 2, 3
    mask[i, :n] = 1
    types[i, n // 2:n] = 1  # a second segment, as in a pair
  return Batch(ids, mask, types)


@given(st.lists(st.integers(1, 20), min_size=1, max_size=40), st.integers(20, 48))
@settings(max_examples=60, deadline=None)
def test_plan_places_every_example_once_within_the_row_length(lengths, row_length):
  rows = plan_rows(lengths, row_length)
  assert sorted(i for r in rows for i in r) == list(range(len(lengths)))
  assert all(sum(lengths[i] for i in r) <= row_length for r in rows)
  assert rows == plan_rows(lengths, row_length)  # deterministic


@given(st.lists(st.integers(2, 16), min_size=1, max_size=30), st.integers(16, 40),
       st.integers(1, 6))
@settings(max_examples=40, deadline=None)
def test_pack_then_unpack_gives_back_the_tokens(lengths, row_length, rows_per_batch):
  batch = _batch(lengths)
  parts, layout = pack(batch, row_length, rows_per_batch)
  assert {p.input_ids.shape[1] for p in parts} == {row_length}
  assert len({p.packing.starts.shape[1] for p in parts}) == 1  # one slot count per call
  for p in parts[:-1]:
    assert p.input_ids.shape[0] == rows_per_batch
  last = parts[-1].input_ids.shape[0]
  assert last <= rows_per_batch and (last == rows_per_batch or last & (last - 1) == 0)
  np.testing.assert_array_equal(unpack([p.input_ids for p in parts], layout),
                                batch.input_ids * batch.attention_mask)
  np.testing.assert_array_equal(unpack([p.token_type_ids for p in parts], layout),
                                batch.token_type_ids * batch.attention_mask)
  starts = unpack_slots([p.packing.starts for p in parts], layout)
  np.testing.assert_array_equal(starts, layout.offset)
  positions = unpack([p.packing.position_ids for p in parts], layout)
  np.testing.assert_array_equal(positions, np.arange(16)[None] * batch.attention_mask)


def test_default_row_length():
  assert default_row_length([8], 512) == 16            # one short text: no 64-token row
  assert default_row_length([8, 10], 512) == 24        # all of them, when they total < 64
  assert default_row_length([30] * 5, 512) == 64       # at least 64 otherwise
  assert default_row_length([100, 5], 512) == 112      # the longest text's bucket
  assert default_row_length([30] * 5, 512, (16, 48, 96)) == 96   # the model's own buckets


def test_pack_bad_input():
  with pytest.raises(jaxplain.InputError, match="example 1 has 12 tokens.*at least 12"):
    pack(_batch(), 10, 4)
  left = _batch()
  left = Batch(left.input_ids, left.attention_mask[:, ::-1].copy(), left.token_type_ids)
  with pytest.raises(jaxplain.InputError, match="right-padded"):
    pack(left, 16, 4)
  with pytest.raises(jaxplain.InputError, match="must be >= 1"):
    pack(_batch(), 16, 0)
  empty = _batch()
  empty = Batch(empty.input_ids, empty.attention_mask * (np.arange(8) != 5)[:, None],
                empty.token_type_ids)
  with pytest.raises(jaxplain.InputError, match="row 5 of the batch has no real token"):
    pack(empty, 16, 4)


def _config(family: str, head: str = "sequence_classification") -> EncoderConfig:
  extra = {"distilbert": dict(type_vocab_size=0), "electra": dict(embedding_size=16),
           "roberta": dict(pad_token_id=1)}.get(family, {})
  return EncoderConfig(family=family, hidden_size=32, num_layers=2, num_heads=4,
                       intermediate_size=64, vocab_size=100, max_positions=40, num_labels=3,
                       head=head, **extra)


@functools.cache
def _forward(family: str, head: str):
  forward, params = init_encoder(_config(family, head), seed=1)
  return jax.jit(lambda p, b: forward(p, b, Taps()).logits), params


@pytest.mark.parametrize("family,head", [("bert", "sequence_classification"),
                                         ("roberta", "sequence_classification"),
                                         ("distilbert", "sequence_classification"),
                                         ("electra", "sequence_classification"),
                                         ("bert", "embedding")])
def test_packed_logits_are_each_examples_own(family, head):
  fn, params = _forward(family, head)
  batch = _batch()
  alone = np.asarray(fn(params, batch))
  parts, layout = pack(batch, 24, 4)  # 3 rows in a batch of 4: one row empty
  assert parts[0].packing.starts.shape[1] >= 2
  assert (parts[0].packing.starts == -1).any()  # an empty slot
  packed = [np.asarray(fn(params, p)) for p in parts]
  assert packed[0].shape[:2] == parts[0].packing.starts.shape
  np.testing.assert_allclose(unpack_slots(packed, layout), alone, atol=SAME, rtol=0)


def test_heads_with_token_outputs_refuse_packed_batches():
  forward, params = init_encoder(_config("bert", "token_classification"), seed=1)
  parts, _ = pack(_batch(), 24, 4)
  with pytest.raises(ValueError, match="token_classification head does not take packed"):
    forward(params, parts[0], Taps())
