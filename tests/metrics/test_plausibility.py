"""Plausibility (hand cases, sklearn parity), rank agreement (scipy parity), the lexicon proxy,
and the bootstrap."""

import os

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from sklearn.metrics import auc, average_precision_score, precision_recall_curve

from conftest import CLS, SEP, PAD
from jaxplain.contracts import Batch
from jaxplain.errors import InputError
from jaxplain.metrics import (auprc, average_precision, bootstrap_ci, iou_f1, kendall_tau_b,
                              lexicon_rationale, plausibility, rank_agreement,
                              rationale_from_spans, rationale_from_words, read_vader_lexicon,
                              spearman)

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")
ATOL = 1e-6

HAND = Batch(jnp.asarray([[CLS, 10, 11, 12, 13, SEP, PAD, PAD]]), jnp.asarray([[1] * 6 + [0] * 2]),
             jnp.zeros((1, 8), jnp.int32), word_ids=jnp.asarray([[-1, 0, 1, 2, 3, -1, -1, -1]]))
HAND_SCORES = jnp.asarray([[0, .9, .1, .5, .3, 0, 0, 0]], jnp.float32)
HAND_GOLD = np.asarray([[0, 1, 1, 0, 0, 0, 0, 0]], bool)       # words a, b


def test_plausibility_by_hand():
  out = plausibility(HAND_SCORES, HAND_GOLD, HAND, k=2)
  # top 2: a (.9), c (.5); gold a, b -> P = R = F1 = 1/2
  for key in ("precision", "recall", "f1"):
    assert out[key][0] == pytest.approx(0.5)
  # spans: pred {a}, {c}; gold {a, b}. IOU({a}, {a, b}) = .5 >= .5 counts: P = 1/2, R = 1/1
  assert out["iou_precision"][0] == pytest.approx(0.5)
  assert out["iou_recall"][0] == pytest.approx(1.0)
  assert out["iou_f1"][0] == pytest.approx(2 / 3)
  # ranking a+, c-, d-, b+: AP = (1/1 + 2/4) / 2
  assert out["average_precision"][0] == pytest.approx(0.75)
  # ERASER: trapezoid through (0,1) (.5,1) (.5,.5) (.5,1/3) (1,.5)
  assert out["auprc"][0] == pytest.approx(0.5 + 0.5 * (1 / 3 + 0.5) / 2)
  # k=None: each example's own rationale length (2) -> the same selection
  assert plausibility(HAND_SCORES, HAND_GOLD, HAND)["f1"][0] == pytest.approx(0.5)
  # threshold: > .2 selects a, c, d
  assert plausibility(HAND_SCORES, HAND_GOLD, HAND, threshold=0.2)["precision"][0] == \
      pytest.approx(1 / 3)


def test_iou_threshold_is_inclusive_and_spans_are_runs():
  gold = np.asarray([[0, 1, 1, 1, 1, 0]], bool)
  valid = np.asarray([[0, 1, 1, 1, 1, 0]], bool)
  out = iou_f1(np.asarray([[0, 1, 1, 0, 0, 0]], bool), gold, valid)   # IOU 2/4 = .5 -> match
  assert out["f1"][0] == pytest.approx(1.0)
  out = iou_f1(np.asarray([[0, 1, 0, 0, 0, 0]], bool), gold, valid)   # IOU 1/4 -> no match
  assert out["f1"][0] == 0.0


ap_jit = jax.jit(average_precision)
auprc_jit = jax.jit(auprc)


@hypothesis.settings(max_examples=15, deadline=None, derandomize=True)
@hypothesis.given(raw=st.lists(st.integers(0, 4), min_size=24, max_size=24),
                  gold=st.lists(st.booleans(), min_size=24, max_size=24),
                  n=st.lists(st.integers(2, 12), min_size=2, max_size=2))
def test_average_precision_and_auprc_match_sklearn(raw, gold, n):
  s = np.asarray(raw, np.float32).reshape(2, 12)        # few distinct values: ties
  g = np.asarray(gold).reshape(2, 12)
  valid = np.arange(12)[None] < np.asarray(n)[:, None]
  got_ap, got_pr = np.asarray(ap_jit(s, g, valid)), np.asarray(auprc_jit(s, g, valid))
  for i in range(2):
    y, x = g[i][valid[i]].astype(int), s[i][valid[i]]
    if y.sum() == 0:
      assert np.isnan(got_ap[i]) and np.isnan(got_pr[i])
      continue
    assert got_ap[i] == pytest.approx(average_precision_score(y, x), abs=1e-6)
    precision, recall, _ = precision_recall_curve(y, x)
    assert got_pr[i] == pytest.approx(auc(recall, precision), abs=1e-6)


def test_empty_rationale_and_bad_shapes():
  with pytest.raises(InputError, match=r"empty for 1 example\(s\): 0"):
    plausibility(HAND_SCORES, np.zeros((1, 8), bool), HAND)
  with pytest.raises(InputError, match="rationale has shape"):
    plausibility(HAND_SCORES, HAND_GOLD[:, :7], HAND)
  with pytest.raises(InputError, match="NaN"):
    plausibility(HAND_SCORES.at[0, 2].set(jnp.nan), HAND_GOLD, HAND)


def test_word_level_aggregates_scores_and_rationale():
  batch = Batch(HAND.input_ids, HAND.attention_mask, HAND.token_type_ids,
                word_ids=jnp.asarray([[-1, 0, 0, 1, 2, -1, -1, -1]]))   # word 0 = tokens a, b
  out = plausibility(HAND_SCORES, HAND_GOLD, batch, unit="word", k=1)
  assert out["precision"][0] == 1.0 and out["recall"][0] == 1.0      # word 0 sums to 1.0


def test_rationales_from_spans_and_words(tiny_model):
  text = "a film , great and fun"
  batch = tiny_model.encode([text])
  start = text.index("great")
  mask = rationale_from_spans(batch, [[(start, start + len("great"))]])
  words = np.asarray(batch.word_ids)[0]
  assert set(words[mask[0]].tolist()) == {3}
  np.testing.assert_array_equal(rationale_from_words(batch, [[3]]), mask)


def test_lexicon_proxy(tiny_model):
  lexicon = read_vader_lexicon(os.path.join(FIXTURES, "vader_sample.txt"))
  assert lexicon["great"] == pytest.approx(3.1) and lexicon["okay"] == pytest.approx(0.9)
  texts = ["a charming film , okay and great", "nothing here"]
  batch = tiny_model.encode(texts)
  rat = lexicon_rationale(texts, batch, lexicon, threshold=1.5)
  assert rat.lexicon_proxy and "not human rationales" in rat.label
  assert rat.words == [["charming", "great"], []]
  assert rat.mask[0].sum() >= 2 and not rat.mask[1].any()
  with pytest.raises(InputError, match="no lexicon file"):
    read_vader_lexicon(os.path.join(FIXTURES, "missing.txt"))


@jax.jit
def _agree(a, b, valid):
  return spearman(a, b, valid), kendall_tau_b(a, b, valid)


@hypothesis.settings(max_examples=15, deadline=None, derandomize=True)
@hypothesis.given(a=st.lists(st.integers(0, 3), min_size=20, max_size=20),
                  b=st.lists(st.integers(0, 3), min_size=20, max_size=20),
                  n=st.integers(3, 10))
def test_rank_agreement_matches_scipy(a, b, n):
  a = np.asarray(a, np.float32).reshape(2, 10)
  b = np.asarray(b, np.float32).reshape(2, 10)
  valid = np.broadcast_to(np.arange(10) < n, (2, 10))
  rho, tau = (np.asarray(x) for x in _agree(a, b, valid))
  for i in range(2):
    x, y = a[i, :n], b[i, :n]
    if np.ptp(x) == 0 or np.ptp(y) == 0:
      assert np.isnan(rho[i]) and np.isnan(tau[i])
      continue
    assert rho[i] == pytest.approx(scipy.stats.spearmanr(x, y)[0], abs=1e-5)
    assert tau[i] == pytest.approx(scipy.stats.kendalltau(x, y)[0], abs=1e-5)


def test_rank_agreement_ignores_specials_and_padding():
  other = HAND_SCORES.at[0, 0].set(100.0).at[0, 7].set(-100.0)   # [CLS], padding differ
  out = jax.jit(rank_agreement)(HAND, HAND_SCORES, other)
  assert float(out["spearman"][0]) == pytest.approx(1.0)
  assert float(out["kendall_tau_b"][0]) == pytest.approx(1.0)


def test_bootstrap_is_seeded_and_sane():
  x = np.concatenate([np.linspace(0, 1, 200), [np.nan]])
  a, b = bootstrap_ci(x, seed=3), bootstrap_ci(x, seed=3)
  assert a == b and a.n == 200 and a.mean == pytest.approx(0.5)
  assert a.low < 0.5 < a.high and a.high - a.low < 0.2
  assert bootstrap_ci(x, seed=4) != a
  assert np.isnan(bootstrap_ci([np.nan]).mean) and bootstrap_ci([]).n == 0
