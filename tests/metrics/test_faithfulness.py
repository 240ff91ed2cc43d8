"""Faithfulness protocols: hand-computed numbers, optimality on an additive model, bad input,
and the real encoder (all levels in one forward == one forward per level)."""

import math

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import MASK, PAD, SEP, CLS, T, UNK, additive_forward, make_batch, oracle_scores
from jaxplain.contracts import Batch, Taps
from jaxplain.errors import InputError
from jaxplain.metrics import faithfulness as fm
from jaxplain.metrics import forward_compacted, forward_levels, perturb
from jaxplain.models import EncoderConfig, init_encoder

ATOL = 1e-6  # float32 sigmoid/softmax of the same sums
ATOL_ENCODER = 2e-5  # one forward of R*B rows vs R forwards of B rows, float32 on CPU

run = jax.jit(fm.run_protocols, static_argnums=(0, 4), static_argnames=("chunk_size", "pad_id"))
sig = lambda z: 1.0 / (1.0 + math.exp(-z))

# Hand case: [CLS] a b c d [SEP]; W[a] = (0, 2), W[b] = (0, 1), W[c] = (0, -1), W[d] = (.5, 0).
A, B_, C, D = 10, 11, 12, 13
W = np.zeros((20, 2), np.float32)
W[A], W[B_], W[C], W[D] = (0, 2), (0, 1), (0, -1), (0.5, 0)
PARAMS = {"w": jnp.asarray(W)}
HAND = Batch(jnp.asarray([[CLS, A, B_, C, D, SEP, PAD, PAD], [CLS, B_, SEP, PAD, PAD, PAD, PAD, PAD]]),
             jnp.asarray([[1, 1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0, 0, 0]]),
             jnp.zeros((2, 8), jnp.int32),
             word_ids=jnp.asarray([[-1, 0, 1, 2, 3, -1, -1, -1], [-1, 0, -1, -1, -1, -1, -1, -1]]))
SCORES = jnp.asarray([[0, .9, .1, .5, .3, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0, 0]], jnp.float32)
# order by score: a (.9), c (.5), d (.3), b (.1); logits (0.5, 2) -> class 1, margin 1.5
P0 = sig(1.5)
HAND_PROTOCOLS = (
    fm.comprehensiveness_protocol((25, 50, 100)), fm.sufficiency_protocol((25, 50, 100)),
    fm.aopc_log_odds_protocol(min_length=0), fm.deletion_protocol((0, .5, 1)),
    fm.insertion_protocol((0, .5, 1)), fm.auac_protocol(UNK, (0, .5, 1)),
    fm.au_mse_protocol(UNK, (0, .5, 1)))


PREDICTED = jnp.asarray([1, 1])   # the predicted classes, passed explicitly: one compile for both


@pytest.fixture(scope="module")
def hand():
  return jax.tree.map(np.asarray, run(additive_forward, PARAMS, HAND, SCORES, HAND_PROTOCOLS,
                                      PREDICTED))


def _eraser_aopc(beta_0, beta_k):
  """ERASER's ``_instances_aopc`` for one instance: the mean of ``beta_0 - beta_k`` over bins."""
  return float(np.average([beta_0 - b for b in beta_k]))


def test_eraser_by_hand(hand):
  # ceil(25%, 50%, 100% of 4 words) = 1, 2, 4 removed: a; a, c; all.
  comp = [P0 - sig(-0.5), P0 - sig(0.5), P0 - 0.5]
  suff = [P0 - sig(2.0), P0 - sig(1.0), P0 - P0]                # keeping a; a, c; all
  np.testing.assert_allclose(hand["comprehensiveness_curve"][:, 0], comp, atol=ATOL)
  np.testing.assert_allclose(hand["sufficiency_curve"][:, 0], suff, atol=ATOL)
  assert hand["comprehensiveness"][0] == pytest.approx(_eraser_aopc(P0, [P0 - c for c in comp]),
                                                        abs=ATOL)
  assert hand["sufficiency"][0] == pytest.approx(np.mean(suff), abs=ATOL)
  # row 2 has one word: every bin removes it (ceil), leaving [CLS] [SEP]: p = 0.5
  np.testing.assert_allclose(hand["comprehensiveness_curve"][:, 1], sig(1.0) - 0.5, atol=ATOL)


def test_mask_lrp_aopc_log_odds_by_hand(hand):
  # T_i = 6 counts [CLS]/[SEP]: n_k = round(6k/9) = 1,1,2,3,3,4,5,5,6, capped at the 4 words.
  logits_after = {1: (0.5, 0.0), 2: (0.5, 1.0), 3: (0.0, 1.0), 4: (0.0, 0.0)}
  n = [min(round(6 * k / 9), 4) for k in range(1, 10)]
  p = [sig(logits_after[m][1] - logits_after[m][0]) for m in n]
  np.testing.assert_allclose(hand["aopc_curve"][:, 0], [P0 - q for q in p], atol=ATOL)
  np.testing.assert_allclose(hand["log_odds_curve"][:, 0], [math.log(q / P0) for q in p],
                             atol=1e-5)
  assert hand["aopc"][0] == pytest.approx(np.mean([P0 - q for q in p]), abs=ATOL)
  assert hand["log_odds"][0] == pytest.approx(np.mean([math.log(q / P0) for q in p]), abs=1e-5)


def test_curves_by_hand(hand):
  trap = lambda y: 0.5 * (y[0] + y[1]) / 2 + 0.5 * (y[1] + y[2]) / 2
  morf = [P0, sig(0.5), 0.5]                   # remove nothing; a, c; all
  lerf = [P0, sig(1.0), 0.5]                   # remove nothing; b, d; all
  np.testing.assert_allclose(hand["deletion_morf_curve"][:, 0], morf, atol=ATOL)
  np.testing.assert_allclose(hand["deletion_lerf_curve"][:, 0], lerf, atol=ATOL)
  assert hand["deletion_gap"][0] == pytest.approx(trap(lerf) - trap(morf), abs=ATOL)
  ins = [0.5, sig(1.0), P0]                    # keep nothing; a, c; all
  assert hand["insertion_area"][0] == pytest.approx(trap(ins), abs=ATOL)
  # Ali: n = ceil(f * N), N = 6 with specials: 0, 3 (a, c, d), 6 -> all 4 words
  assert hand["auac"][0] == pytest.approx(trap([0.5, sig(0.5), P0]), abs=ATOL)
  # pruning by ascending |R|: b, d, c then a; logits (0,2) then (0,0) vs y0 = (0.5, 2)
  assert hand["au_mse"][0] == pytest.approx(trap([0.0, 0.25, 4.25]), abs=1e-5)


def test_target_none_is_the_predicted_class_and_gold_is_honoured(hand):
  logits = additive_forward(PARAMS, HAND).logits
  np.testing.assert_array_equal(fm.resolve_target(None, logits), PREDICTED)
  np.testing.assert_array_equal(fm.resolve_target(0, logits), [0, 0])
  gold = run(additive_forward, PARAMS, HAND, SCORES, HAND_PROTOCOLS, jnp.asarray([0, 0]))
  np.testing.assert_allclose(gold["comprehensiveness_curve"][:, 0],
                             [(1 - P0) - (1 - sig(-0.5)), (1 - P0) - (1 - sig(0.5)),
                              (1 - P0) - 0.5], atol=ATOL)


FILTERED = (fm.aopc_log_odds_protocol(min_length=6),)


def test_min_length_filter():
  out = run(additive_forward, PARAMS, HAND, SCORES, FILTERED)
  assert np.isfinite(out["aopc"][0]) and np.isnan(out["aopc"][1])   # row 2 has T_i = 3 < 6


def test_log_odds_stay_finite_when_p_underflows():
  params = {"w": PARAMS["w"] * 200.0}   # level 1: logits (100, 0), p_k = 4e-44 underflows float32
  out = run(additive_forward, params, HAND, SCORES, FILTERED)
  assert np.isfinite(np.asarray(out["log_odds_curve"][:, 0])).all()
  # log sigmoid(-100) - log sigmoid(300) = -100 (float32 softmax then log would give -inf)
  assert float(out["log_odds_curve"][0, 0]) == pytest.approx(-100.0, rel=1e-5)


def test_chunked_levels_equal_one_fold():
  levels = perturb(HAND, SCORES, HAND_PROTOCOLS[2].removals[0])          # 9 levels
  fold = forward_levels(additive_forward, PARAMS, levels)
  for chunk in (1, 4, 9):
    np.testing.assert_allclose(forward_levels(additive_forward, PARAMS, levels, chunk), fold,
                               atol=ATOL)


# --- bad input -----------------------------------------------------------------------------------

def test_scores_shape_mismatch():
  with pytest.raises(InputError, match=r"shape \(2, 7\).*\(2, 8\)"):
    fm.comprehensiveness(additive_forward, PARAMS, HAND, SCORES[:, :7])


def test_nan_scores_name_the_examples():
  bad = SCORES.at[1, 1].set(jnp.nan)
  with pytest.raises(InputError, match=r"1 example\(s\): 1\b"):
    fm.sufficiency(additive_forward, PARAMS, HAND, bad)


@pytest.mark.parametrize("bins", [(0, 5), (5, 101), (-1,), ()])
def test_bins_outside_range(bins):
  with pytest.raises(InputError, match=r"\(0, 100\]"):
    fm.comprehensiveness_protocol(bins)


# --- optimality on the additive model ------------------------------------------------------------

OPT_PROTOCOLS = (fm.comprehensiveness_protocol(), fm.sufficiency_protocol(),
                 fm.aopc_log_odds_protocol(min_length=0), fm.deletion_protocol(),
                 fm.auac_protocol(UNK))


@hypothesis.settings(max_examples=5, deadline=None, derandomize=True)
@hypothesis.given(seed=st.integers(0, 10_000))
def test_oracle_beats_random_beats_anti_oracle(additive, seed):
  forward, params = additive
  rng = np.random.default_rng(seed)
  batch = make_batch(list(rng.integers(4, T + 1, 6)), seed=seed)
  target = jnp.argmax(forward(params, batch, Taps()).logits, -1)
  oracle = oracle_scores(params, batch, target)
  noise = jnp.asarray(rng.normal(size=oracle.shape), jnp.float32)
  res = {name: jax.tree.map(np.asarray, run(forward, params, batch, s, OPT_PROTOCOLS))
         for name, s in (("oracle", oracle), ("random", noise), ("anti", -oracle))}
  for key, sign in (("comprehensiveness_curve", 1), ("sufficiency_curve", -1),
                    ("aopc_curve", 1), ("log_odds_curve", -1), ("deletion_morf_curve", -1),
                    ("auac", 1)):
    o, r, a = (sign * res[n][key] for n in ("oracle", "random", "anti"))
    assert (o >= r - 1e-5).all() and (r >= a - 1e-5).all(), key


# --- the real encoder ----------------------------------------------------------------------------

def _encoder_case():
  """A tiny random BERT, three examples of 5, 9 and 16 tokens, and random scores."""
  forward, params = init_encoder(EncoderConfig(
      family="bert", hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
      vocab_size=100, max_positions=64, num_labels=2))
  batch = make_batch([5, 9, 16], seed=1, word_len=2)
  scores = jnp.asarray(np.random.default_rng(1).normal(size=(3, T)), jnp.float32)
  return forward, params, batch, scores


def test_encoder_all_levels_in_one_forward_equal_a_loop():
  forward, params, batch, scores = _encoder_case()
  protos = (fm.comprehensiveness_protocol(unit="word"), fm.aopc_log_odds_protocol(min_length=0))
  out = run(forward, params, batch, scores, protos)
  one = jax.jit(lambda b: jax.nn.softmax(forward(params, b, Taps()).logits, -1))
  p_full = one(Batch(batch.input_ids, batch.attention_mask, batch.token_type_ids))
  y = jnp.argmax(p_full, -1)
  pick = lambda p: np.asarray(jnp.take_along_axis(p, y[:, None], 1)[:, 0])
  for proto, key in ((protos[0], "comprehensiveness_curve"), (protos[1], "aopc_curve")):
    levels = jax.jit(perturb, static_argnums=2)(batch, scores, proto.removals[0])
    loop = [pick(p_full) - pick(one(jax.tree.map(lambda x: x[r], levels)))
            for r in range(proto.removals[0].levels)]
    np.testing.assert_allclose(np.asarray(out[key]), np.stack(loop), atol=ATOL_ENCODER)


def test_compact_runner_equals_one_fold_on_the_encoder():
  """Rows re-bucketed by remaining length give the same metrics as the jitted one-fold run."""
  forward, params, batch, scores = _encoder_case()
  protos = (fm.comprehensiveness_protocol(), fm.sufficiency_protocol(),
            fm.aopc_log_odds_protocol(replacement_id=PAD, min_length=0))
  folded = run(forward, params, batch, scores, protos)
  compact = fm.run_protocols_compact(forward, params, batch, scores, protos, rows=8,
                                     buckets=(2, 4, 8, 16))
  assert set(compact) == set(folded)
  for k in folded:
    np.testing.assert_allclose(np.asarray(compact[k]), np.asarray(folded[k]), atol=ATOL_ENCODER,
                               err_msg=k)
  with pytest.raises(InputError, match="rows must be >= 1"):
    fm.run_protocols_compact(forward, params, batch, scores, protos, rows=0)
  with pytest.raises(InputError, match=r"NaN or inf in 1 example\(s\): 1"):
    fm.run_protocols_compact(forward, params, batch, scores.at[1, 2].set(jnp.nan), protos)


def test_forward_compacted_runs_short_rows_short():
  """A deleted row runs at a short bucket: the widths the forward sees follow the rows."""
  seen = []

  def forward(params, batch, taps):
    seen.append(batch.input_ids.shape)
    return additive_forward(params, batch, taps)

  levels = Batch(jnp.asarray([[[CLS, A, SEP, PAD, PAD, PAD, PAD, PAD]],
                              [[CLS, A, B_, C, D, SEP, PAD, PAD]]]),
                 jnp.asarray([[[1, 1, 1, 0, 0, 0, 0, 0]], [[1, 1, 1, 1, 1, 1, 0, 0]]]),
                 jnp.zeros((2, 1, 8), jnp.int32))
  out = forward_compacted(forward, PARAMS, levels, rows=1, buckets=(4, 8))
  assert sorted(seen) == [(1, 4), (1, 8)]
  np.testing.assert_allclose(out, forward_levels(additive_forward, PARAMS, levels), atol=ATOL)


_SHORT = [CLS, A, SEP, PAD, PAD, PAD, PAD, PAD]
_LONG = [CLS, A, B_, C, D, SEP, PAD, PAD]


@pytest.mark.parametrize("rows, buckets, ids", [
    # Overlapping protocols give identical rows: 6 rows, 2 distinct, one call of 2.
    (8, (8,), [[_SHORT, _LONG], [_LONG, _SHORT], [_SHORT, _SHORT]]),
    # The default (rows=None) sizes calls by a token-row budget, a small input by the power of
    # two that holds it: the 2 distinct rows run in one call at the wider bucket, not two calls.
    (None, (4, 8), [[_SHORT, _LONG], [_LONG, _LONG], [_SHORT, _SHORT]]),
])
def test_forward_compacted_runs_each_distinct_row_once_in_one_call(rows, buckets, ids):
  """Each distinct row is run once and the results scattered back to every copy."""
  seen = []

  def forward(params, batch, taps):
    seen.append(batch.input_ids.shape)
    return additive_forward(params, batch, taps)

  ids = jnp.asarray(ids)                                                        # [R=3, B=2, T]
  levels = Batch(ids, (ids != PAD).astype(jnp.int32), jnp.zeros_like(ids))
  out = forward_compacted(forward, PARAMS, levels, rows=rows, buckets=buckets)
  assert seen == [(2, 8)]
  np.testing.assert_allclose(out, forward_levels(additive_forward, PARAMS, levels), atol=ATOL)
