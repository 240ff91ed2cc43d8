"""Removal on device: hand cases, and properties against a plain-Python reference."""

import fractions
import math

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import CLS, MASK, PAD, SEP, T, make_batch
from jaxplain.contracts import Batch
from jaxplain.errors import InputError
from jaxplain.metrics import Removal
from jaxplain.metrics import perturb as _perturb
from jaxplain.metrics import removal_masks as _removal_masks
from jaxplain.metrics._removal import level_counts

# Jitted once per (Removal, shape): eager op-by-op dispatch would compile every primitive.
perturb = jax.jit(_perturb, static_argnames=("removal",))
removal_masks = jax.jit(_removal_masks, static_argnames=("removal",))

PROPERTY = hypothesis.settings(max_examples=20, deadline=None, derandomize=True,
                               suppress_health_check=[hypothesis.HealthCheck.too_slow])
FRACTIONS = (0.0, 0.01, 0.1, 0.25, 1 / 3, 0.5, 0.75, 1.0)
# Six configurations that cover every mode, unit, rounding, basis and replacement (compiled once
# each, shared by all generated examples).
CONFIGS = [Removal(FRACTIONS, *c) for c in (
    ("top", None, "token", "sum", "round", "removable"),
    ("bottom", MASK, "word", "sum", "ceil", "tokens"),
    ("keep", None, "word", "sum", "floor", "removable"),
    ("keep", MASK, "token", "sum", "ceil", "tokens"),
    ("top", None, "word", "sum", "floor", "tokens"),
    ("bottom", MASK, "token", "sum", "round", "removable"))]


def _batch(rows, word_ids=None):
  t = max(len(r) for r in rows)
  ids = np.zeros((len(rows), t), np.int32)
  mask = np.zeros((len(rows), t), np.int32)
  for i, r in enumerate(rows):
    ids[i, :len(r)], mask[i, :len(r)] = r, 1
  if word_ids is None:
    word_ids = np.where((mask > 0) & (ids != CLS) & (ids != SEP),
                        np.cumsum(mask, 1) - 2, -1)
  return Batch(jnp.asarray(ids), jnp.asarray(mask), jnp.zeros_like(jnp.asarray(ids)),
               word_ids=jnp.asarray(word_ids, jnp.int32))


def test_replace_top_keeps_specials_and_attention():
  batch = _batch([[CLS, 10, 11, 12, 13, SEP]])
  scores = jnp.asarray([[9.0, 1.0, 4.0, 3.0, 2.0, 9.0]])   # specials score high: never removed
  out = perturb(batch, scores, Removal((0.5,), "top", MASK))
  np.testing.assert_array_equal(out.input_ids[0, 0], [CLS, 10, MASK, MASK, 13, SEP])
  np.testing.assert_array_equal(out.attention_mask[0, 0], [1] * 6)


def test_delete_repacks_left_and_pads():
  batch = _batch([[CLS, 10, 11, 12, 13, SEP], [CLS, 20, SEP]])
  scores = jnp.asarray([[0.0, 1.0, 4.0, 3.0, 2.0, 0.0], [0.0, 5.0, 0.0, 0.0, 0.0, 0.0]])
  out = perturb(batch, scores, Removal((0.5, 1.0), "top", None))
  np.testing.assert_array_equal(out.input_ids[0, 0], [CLS, 10, 13, SEP, PAD, PAD])
  np.testing.assert_array_equal(out.attention_mask[0, 0], [1, 1, 1, 1, 0, 0])
  np.testing.assert_array_equal(out.input_ids[1, 0], [CLS, SEP, PAD, PAD, PAD, PAD])
  np.testing.assert_array_equal(out.input_ids[1, 1], [CLS, SEP, PAD, PAD, PAD, PAD])
  # round(0.5 * 1) = 0 (half to even): the one word of row 2 stays at level 0.5
  np.testing.assert_array_equal(out.input_ids[0, 1], [CLS, 20, SEP, PAD, PAD, PAD])


def test_ties_break_by_position_in_every_mode():
  batch = _batch([[CLS, 10, 11, 12, 13, SEP]])
  scores = jnp.zeros((1, 6))
  for mode, expected in (("top", [0, 1, 1, 0, 0, 0]), ("bottom", [0, 1, 1, 0, 0, 0]),
                         ("keep", [0, 0, 0, 1, 1, 0])):
    removed, _ = removal_masks(batch, scores, Removal((0.5,), mode))
    np.testing.assert_array_equal(removed[0, 0].astype(int), expected, err_msg=mode)


def test_word_level_removes_whole_words():
  # words: 0 = (10, 11), 1 = (12), 2 = (13, 14); word sums: 0.5, 3, 1.5
  batch = _batch([[CLS, 10, 11, 12, 13, 14, SEP]],
                 word_ids=[[-1, 0, 0, 1, 2, 2, -1]])
  scores = jnp.asarray([[0.0, 2.0, -1.5, 3.0, 1.0, 0.5, 0.0]])
  removed, counts = removal_masks(batch, scores, Removal((0.34, 0.67), "top", unit="word"))
  np.testing.assert_array_equal(counts[:, 0], [1, 2])
  np.testing.assert_array_equal(removed[0, 0].astype(int), [0, 0, 0, 1, 0, 0, 0])
  np.testing.assert_array_equal(removed[1, 0].astype(int), [0, 0, 0, 1, 1, 1, 0])
  # the token-level top-1 would be token 12 (3.0) too, but top-2 would take token 10 (2.0)
  removed_t, _ = removal_masks(batch, scores, Removal((0.34,), "top"))
  np.testing.assert_array_equal(removed_t[0, 0].astype(int), [0, 1, 0, 1, 0, 0, 0])


def test_counts_are_exact_in_each_rounding():
  base = jnp.asarray([20, 30, 7])
  fr = (0.05, 0.1, 0.5, 1 / 9)
  got = {r: np.asarray(level_counts(fr, base, base, r)) for r in ("round", "ceil", "floor")}
  for j, f in enumerate(fr):
    for i, n in enumerate([20, 30, 7]):
      exact = f * n
      assert got["ceil"][j, i] == math.ceil(round(exact, 9))      # 0.05 * 20 is 1, not 2
      assert got["floor"][j, i] == math.floor(round(exact, 9))
      assert got["round"][j, i] == round(exact)                    # Python: half to even
  assert int(level_counts((0.5,), jnp.asarray([5]), jnp.asarray([5]), "round")[0, 0]) == 2


def test_basis_tokens_counts_specials_and_caps():
  batch = _batch([[CLS, 10, 11, 12, SEP]])     # T_i = 5, 3 removable
  _, counts = removal_masks(batch, jnp.zeros((1, 5)), Removal((0.5, 1.0), basis="tokens"))
  np.testing.assert_array_equal(counts[:, 0], [2, 3])   # round(2.5) = 2; min(5, 3) = 3


def test_bad_removal_options():
  with pytest.raises(InputError, match="outside"):
    Removal((1.5,))
  with pytest.raises(InputError, match="mode"):
    Removal((0.5,), mode="sideways")
  with pytest.raises(InputError, match="word_ids"):
    _removal_masks(Batch(jnp.ones((1, 3), jnp.int32), jnp.ones((1, 3), jnp.int32),
                        jnp.zeros((1, 3), jnp.int32)), jnp.zeros((1, 3)), Removal((0.5,)))


# --- properties against a plain-Python reference --------------------------------------------------

def _reference(ids, mask, words, scores, removal: Removal, fraction: float):
  """The perturbed row as Python lists: rank units, remove them, replace or delete."""
  real = [j for j in range(len(ids)) if mask[j]]
  removable = [j for j in real if words[j] >= 0]
  unit_of = {j: (words[j] if removal.unit == "word" else j) for j in removable}
  units = sorted(set(unit_of.values()))
  score = {u: sum(float(scores[j]) for j in removable if unit_of[j] == u) for u in units}
  descending = removal.mode != "bottom"
  order = sorted(units, key=lambda u: (-score[u] if descending else score[u], u))
  base = len(units) if removal.basis == "removable" else len(real)
  exact = fractions.Fraction(round(fraction * 1_000_000), 1_000_000) * base
  n = {"floor": math.floor(exact), "ceil": math.ceil(exact),
       "round": round(exact)}[removal.rounding]
  chosen = set(order[:min(n, len(units))])
  gone = {j for j in removable if (unit_of[j] in chosen) != (removal.mode == "keep")}
  if removal.replacement_id is not None:
    return [removal.replacement_id if j in gone else int(ids[j]) for j in range(len(ids))], list(mask)
  kept = [int(ids[j]) for j in real if j not in gone]
  pad = len(ids) - len(kept)
  return kept + [PAD] * pad, [1] * len(kept) + [0] * pad


@PROPERTY
@hypothesis.given(
    lengths=st.lists(st.integers(2, T), min_size=3, max_size=3),
    raw=st.lists(st.integers(-2, 2), min_size=3 * T, max_size=3 * T),
    word_len=st.integers(1, 3),
    seed=st.integers(0, 3))
def test_removal_matches_reference(lengths, raw, word_len, seed):
  batch = make_batch(lengths, seed=seed, word_len=word_len)
  scores = jnp.asarray(np.asarray(raw, np.float32).reshape(3, T))   # small integers: many ties
  ids, mask, words = (np.asarray(x) for x in (batch.input_ids, batch.attention_mask,
                                             batch.word_ids))
  for removal in CONFIGS:
    out = perturb(batch, scores, removal)
    out_ids, out_mask = np.asarray(out.input_ids), np.asarray(out.attention_mask)
    for r, fraction in enumerate(FRACTIONS):
      for i in range(3):
        want_ids, want_mask = _reference(ids[i], mask[i], words[i], np.asarray(scores[i]),
                                         removal, fraction)
        np.testing.assert_array_equal(out_ids[r, i], want_ids, err_msg=str(removal))
        np.testing.assert_array_equal(out_mask[r, i], want_mask)
        # specials and padding are never touched: [CLS] first, [SEP] last of the real tokens
        n = int(out_mask[r, i].sum())
        assert out_ids[r, i, 0] == CLS and out_ids[r, i, n - 1] == SEP
        assert (out_ids[r, i, n:] == PAD).all()


@PROPERTY
@hypothesis.given(lengths=st.lists(st.integers(3, T), min_size=2, max_size=2),
                  word_len=st.integers(1, 4), seed=st.integers(0, 50))
def test_word_removal_never_splits_a_word(lengths, word_len, seed):
  batch = make_batch(lengths + [T], seed=seed, word_len=word_len)
  scores = jnp.asarray(np.random.default_rng(seed).normal(size=(3, T)), jnp.float32)
  removed, _ = removal_masks(batch, scores, CONFIGS[2])
  words = np.asarray(batch.word_ids)
  removed = np.asarray(removed)
  for i in range(3):
    for w in set(words[i][words[i] >= 0].tolist()):
      r = removed[:, i][:, words[i] == w]
      assert (r.all(-1) | ~r.any(-1)).all()
