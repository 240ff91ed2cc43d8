"""LRP: AttnLRP / CP-LRP conservation, Chefer relprop vs a NumPy reference, Mask-LRP semantics."""

import functools
import types

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pytest
from flax import nnx

from jaxplain.attribution import _relprop, lrp
from jaxplain.attribution.gradients import gradient_x_input
from jaxplain.contracts import Batch, Taps
from jaxplain.errors import InputError
from jaxplain.models import EncoderConfig, init_encoder

TINY = dict(family="bert", hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
            vocab_size=100, max_positions=64, num_labels=2)
# Tolerances, relative to |logit|, fp32, biases zeroed:
RTOL_CP_LRP = 1e-5     # every CP-LRP rule is exactly conservative; float32 rounding only
RTOL_ATTNLRP = 2e-2    # AttnLRP's softmax rule (Prop. 3.1) gives part of R to the softmax bias;
                       # measured <= 7.3e-3 on this near-uniform-attention tiny model
RTOL_REFERENCE = 2e-4  # JAX f32 relprop vs the float64 NumPy reference
ATOL_SCORES = 1e-6     # equalities that are exact up to float32 reordering
SEP = 52               # the tiny vocabulary's stand-in for [SEP]


def _batch(b=3, t=10, pad_from=7, seed=0):
  ids = np.random.RandomState(seed).randint(3, 100, (b, t)).astype(np.int32)
  ids[:, 0] = 1  # "[CLS]"
  ids[:, 5] = SEP  # plays [SEP] for mask_sep_key
  mask = np.ones((b, t), np.int32)
  mask[1, pad_from:] = 0
  return Batch(jnp.asarray(ids), jnp.asarray(mask), jnp.zeros((b, t), jnp.int32))


def _zero_biases(params):
  def zero(path, x):
    return jnp.zeros_like(x) if "bias" in [str(getattr(k, "key", "")) for k in path] else x
  state = nnx.State(params)
  nnx.replace_by_pure_dict(state, jtu.tree_map_with_path(zero, nnx.to_pure_dict(params)))
  return state


@pytest.fixture(scope="module")
def tiny():
  return init_encoder(EncoderConfig(**TINY))


# ------------------------------------------------------------------- rule pieces (closed form)

def test_identity_rule_passes_relevance_unchanged():
  x = jnp.linspace(-3.0, 3.0, 13)
  for name in ("gelu", "tanh", "relu", "gelu_new"):
    g = jax.grad(lambda v: lrp.activation_identity(name, v).sum())(x)
    np.testing.assert_allclose(x * g, lrp.activation_identity(name, x), atol=1e-6)


def test_layer_norm_rule_is_linear_and_conservative():
  x = jax.random.normal(jax.random.key(1), (5, 16)) * 3 + 1
  y, vjp = jax.vjp(lambda v: lrp.layer_norm_std_constant(v, 1e-12), x)
  r_out = jax.random.normal(jax.random.key(2), y.shape)
  (g,) = vjp(r_out / y)  # R_x = x * J^T (R_y / y)
  np.testing.assert_allclose((x * g).sum(-1), r_out.sum(-1), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(y, _relprop._plain_layer_norm(x, 1.0, 0.0, 1e-12), atol=1e-6)


def test_bilinear_rule_halves_both_operands():
  a, v = jax.random.normal(jax.random.key(3), (2, 4, 4)), jax.random.normal(jax.random.key(4),
                                                                             (2, 4, 3))
  f = lambda a, v: lrp.halve_gradient(lambda p, q: p @ q)(a, v).sum()
  ga, gv = jax.grad(f, (0, 1))(a, v)
  pa, pv = jax.grad(lambda a, v: (a @ v).sum(), (0, 1))(a, v)
  np.testing.assert_allclose(ga, pa / 2, atol=1e-6)
  np.testing.assert_allclose(gv, pv / 2, atol=1e-6)
  # uniform rule: the two halves of gradient x input sum to the product's relevance
  np.testing.assert_allclose((a * ga).sum() + (v * gv).sum(), (a @ v).sum(), rtol=1e-5)


# ------------------------------------------------- everything on the tiny model, compiled once

def _everything(forward, params, batch, head_mask):
  """Every quantity the tests below check, in ONE compiled program (compiles dominate CPU time)."""
  out = {}
  for rules in ("attnlrp", "cp-lrp"):
    out[f"layers/{rules}"] = lrp.lrp_layer_relevance(forward, params, batch, 1, rules=rules)
    out[f"parts/{rules}"] = lrp.lrp_embedding_relevance(forward, params, batch, 1, rules=rules)
    out[f"gxi/{rules}"] = gradient_x_input(forward, params, batch, 1, rules=rules)
  for name, kernel in (("attnlrp", lrp.attnlrp), ("cp_lrp", lrp.cp_lrp)):
    out[name] = kernel(forward, params, batch, 1)
    out[name + "/all"] = kernel(forward, params, batch, 1, include="all")
  out["gae"] = lrp.gae(forward, params, batch, 1)
  out["full_lrp"] = lrp.full_lrp(forward, params, batch, 1)
  out["mask_lrp"] = lrp.mask_lrp(forward, params, batch, 1, head_mask=head_mask,
                                 mask_sep_key=False)
  out["mask_lrp/sep"] = lrp.mask_lrp(forward, params, batch, 1, head_mask=head_mask,
                                     sep_token_id=SEP)
  out["mask_lrp/halved"] = lrp.mask_lrp(forward, params, batch, 1, head_mask=head_mask,
                                        mask_sep_key=False, halve_saved_relevance=True)
  for halve in (True, False):
    out[f"r_att/{halve}"] = lrp.chefer_relevance(forward, params, batch, 1,
                                                 head_mask=head_mask, halve_saved=halve)[0]
  out["logits"] = forward(params, batch, Taps()).logits
  out["logits/masked"] = forward(params, batch, Taps(head_relevance_mask=head_mask * 0)).logits
  return out


@pytest.fixture(scope="module")
def run(tiny):
  forward, _ = tiny
  fn = jax.jit(functools.partial(_everything, forward))
  return lambda params, batch, mask=jnp.ones((2, 4)): jax.tree.map(np.asarray,
                                                                    fn(params, batch, mask))


# ---------------------------------------------------------------------------- conservation

@pytest.mark.parametrize("rules,rtol", [("cp-lrp", RTOL_CP_LRP), ("attnlrp", RTOL_ATTNLRP)])
def test_conservation_block_by_block(tiny, run, rules, rtol):
  res = run(_zero_biases(tiny[1]), _batch())
  logit = res["logits"][:, 1]
  layers = res[f"layers/{rules}"].sum(-1)                       # [L+1, B]
  assert np.all(np.abs(layers - logit[None]) <= rtol * np.abs(logit)[None]), (layers, logit)
  # word + position + token type = relevance of the first hidden state (the LN rule is exact)
  parts = res[f"parts/{rules}"]
  np.testing.assert_allclose(parts.sum((0, 2)), layers[0], rtol=1e-4)
  # attnlrp / cp_lrp return the word share (default) or all three
  name = "attnlrp" if rules == "attnlrp" else "cp_lrp"
  np.testing.assert_allclose(res[name], parts[0], atol=ATOL_SCORES)
  np.testing.assert_allclose(res[name + "/all"], parts.sum(0), atol=ATOL_SCORES)


def test_lrp_kernels_are_gradient_x_input_under_rules(tiny, run):
  res = run(tiny[1], _batch())
  np.testing.assert_allclose(res["attnlrp"], res["gxi/attnlrp"], atol=1e-7)
  np.testing.assert_allclose(res["cp_lrp"], res["gxi/cp-lrp"], atol=1e-7)
  assert np.all(res["attnlrp"][1, 7:] == 0)


# ------------------------------------------------------------ Chefer relprop, NumPy reference

def _np_sdiv(a, b):
  return np.where(b != 0, a / np.where(b != 0, b + 1e-9, 1.0), 0.0)


def _np_linear(x, w, r):
  wp, wn, xp, xn = np.maximum(w, 0), np.minimum(w, 0), np.maximum(x, 0), np.minimum(x, 0)
  s = _np_sdiv(r, xp @ wp + xn @ wn)
  return xp * (s @ wp.T) + xn * (s @ wn.T)


def _np_matmul(a, b, r):  # z-rule through the product, each operand gets the full R
  s = _np_sdiv(r, np.einsum("nij,njk->nik", a, b))
  return a * np.einsum("nik,njk->nij", s, b), b * np.einsum("nij,nik->njk", a, s)


def _np_add(a, b, r):
  s = _np_sdiv(r, a + b)
  ra, rb = a * s, b * s
  den = abs(ra.sum()) + abs(rb.sum())
  return (ra * _np_sdiv(_np_sdiv(abs(ra.sum()), den) * r.sum(), ra.sum()),
          rb * _np_sdiv(_np_sdiv(abs(rb.sum()), den) * r.sum(), rb.sum()))


def _np_ln(x, g, b):
  mu = x.mean(-1, keepdims=True)
  return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-12) * g + b


def _np_gelu(x):
  from scipy.special import erf  # pylint: disable=g-import-not-at-top
  return 0.5 * x * (1 + erf(x / np.sqrt(2)))


def _np_one_layer(p, x, cls, n):
  """Float64 forward of one BERT layer + head, and Chefer's relprop from a one-hot seed."""
  lp, t, h = p["layers"][0], x.shape[0], x.shape[1]
  d = h // n
  lin = lambda name, y: y @ lp[name]["kernel"] + lp[name]["bias"]
  split = lambda y: y.reshape(t, n, d).transpose(1, 0, 2)
  q, k, v = split(lin("query", x)), split(lin("key", x)), split(lin("value", x))
  s = np.einsum("nid,njd->nij", q, k) / np.sqrt(d)
  a = np.exp(s - s.max(-1, keepdims=True))
  a /= a.sum(-1, keepdims=True)
  ctx = np.einsum("nij,njd->nid", a, v).transpose(1, 0, 2).reshape(t, h)
  dense = lin("attn_out", ctx)
  y1 = _np_ln(dense + x, lp["attn_norm"]["scale"], lp["attn_norm"]["bias"])
  pre = lin("ffn_in", y1)
  act = _np_gelu(pre)
  ffn = lin("ffn_out", act)
  y2 = _np_ln(ffn + y1, lp["ffn_norm"]["scale"], lp["ffn_norm"]["bias"])
  hp = p["head"]
  pooled = np.tanh(y2[0] @ hp["pooler"]["kernel"] + hp["pooler"]["bias"])
  logits = pooled @ hp["out"]["kernel"] + hp["out"]["bias"]
  # relprop
  r = _np_linear(pooled, hp["out"]["kernel"], np.eye(logits.shape[0])[cls])
  r_y2 = np.zeros_like(y2)
  r_y2[0] = _np_linear(y2[0], hp["pooler"]["kernel"], r)
  r_ffn, r_y1 = _np_add(ffn, y1, r_y2)
  r_y1 = r_y1 + _np_linear(y1, lp["ffn_in"]["kernel"], _np_linear(act, lp["ffn_out"]["kernel"],
                                                                  r_ffn))
  r_dense, r_res = _np_add(dense, x, r_y1)
  r_ctx = split(_np_linear(ctx, lp["attn_out"]["kernel"], r_dense))
  r_a, r_v = _np_matmul(a, v, r_ctx)
  r_a, r_v = r_a / 2, r_v / 2
  r_s, _ = _np_add(s, np.zeros_like(s), r_a)
  r_q, r_kt = _np_matmul(q, k.transpose(0, 2, 1), r_s)
  merge = lambda y: y.transpose(1, 0, 2).reshape(t, h)
  r_x = (_np_linear(x, lp["query"]["kernel"], merge(r_q / 2))
         + _np_linear(x, lp["key"]["kernel"], merge(r_kt.transpose(0, 2, 1) / 2))
         + _np_linear(x, lp["value"]["kernel"], merge(r_v)) + r_res)
  return dict(attention=a, hidden=y2, logits=logits, r_attention=r_a, r_input=r_x)


def test_chefer_relprop_matches_numpy_reference_layer_by_layer():
  cfg = EncoderConfig(**{**TINY, "num_layers": 1})
  forward, params = init_encoder(cfg, seed=3)
  batch = _batch(b=2, t=8, pad_from=8)
  fn = jax.jit(lambda p, bt: (lrp.chefer_relevance(forward, p, bt, 1),
                              lrp.gae(forward, p, bt, 1, mask_sep_key=False)))
  (r_att, grad_a, r_in, outputs), gae = fn(params, batch)
  p64 = jax.tree.map(lambda x: np.asarray(x, np.float64), nnx.to_pure_dict(params))
  for i in range(2):
    ref = _np_one_layer(p64, np.asarray(outputs.hidden[0, i], np.float64), 1, cfg.num_heads)
    np.testing.assert_allclose(outputs.attention[0, i], ref["attention"], atol=1e-5)
    np.testing.assert_allclose(outputs.hidden[1, i], ref["hidden"], atol=1e-4)
    np.testing.assert_allclose(outputs.logits[i], ref["logits"], atol=1e-5)
    for got, want in ((r_att[0, i], ref["r_attention"]), (r_in[i], ref["r_input"])):
      np.testing.assert_allclose(got, want, rtol=RTOL_REFERENCE,
                                 atol=RTOL_REFERENCE * np.abs(want).max())
    # GAE for one layer: rownorm(mean_h (grad * R_A)^+ + I), [CLS] row, [CLS] entry 0
    m = np.maximum(np.asarray(grad_a[0, i], np.float64) * ref["r_attention"], 0).mean(0)
    m = m + np.eye(m.shape[0])
    want = (m / m.sum(-1, keepdims=True))[0]
    want[0] = 0
    np.testing.assert_allclose(gae[i], want, rtol=1e-4, atol=1e-7)


def test_layer_recompute_equals_encoder(tiny):
  forward, params = tiny
  batch = _batch()
  out = forward(params, batch, Taps())
  p = nnx.to_pure_dict(params)
  cfg = _relprop.encoder_config(forward, params)
  bias = jnp.where(batch.attention_mask > 0, 0.0, jnp.finfo(jnp.float32).min)
  for i in range(cfg.num_layers):
    c = jax.vmap(lambda x, m, i=i: _relprop.layer_forward(
        p["layers"][i], x, m, cfg.num_heads, cfg.layer_norm_eps, cfg.activation))(
            out.hidden[i], bias)
    np.testing.assert_allclose(c.out, out.hidden[i + 1], atol=1e-5)
    np.testing.assert_allclose(c.probs, out.attention[i], atol=1e-6)


# ------------------------------------------------------------------------ Mask-LRP semantics

def _differs(a, b, rel=1e-4):
  return np.abs(a - b).max() > rel * np.abs(b).max()


def test_mask_lrp_semantics(tiny, run):
  params, batch = tiny[1], _batch()
  ones = jnp.ones((2, 4), jnp.float32)
  res = run(params, batch, ones)
  np.testing.assert_array_equal(res["logits"], res["logits/masked"])  # forward untouched
  # an all-ones mask with GAE's halving is GAE; by default the saved maps are exactly twice GAE's
  np.testing.assert_allclose(res["mask_lrp/halved"], res["gae"], atol=ATOL_SCORES)
  np.testing.assert_allclose(res["r_att/False"], 2 * res["r_att/True"], rtol=1e-6, atol=1e-12)
  assert _differs(res["mask_lrp"], res["gae"])  # the factor 2 changes the rollout (it adds I)
  # masking the top layer's heads leaves its own saved map alone and changes the one below
  cut = run(params, batch, ones.at[1].set(0.0))
  np.testing.assert_allclose(cut["r_att/False"][1], res["r_att/False"][1], atol=1e-12)
  assert _differs(cut["r_att/False"][0], res["r_att/False"][0])
  assert _differs(cut["mask_lrp"], res["mask_lrp"])


def test_sep_key_masking(tiny, run):
  res = run(tiny[1], _batch())
  assert np.all(res["mask_lrp/sep"][:, 5] == 0)  # no attention reaches the masked [SEP] key
  assert _differs(res["mask_lrp/sep"], res["mask_lrp"])


def test_padding_and_neighbours_never_matter(tiny, run):
  """Masked == dropped, at one compiled shape: garbage ids on padding and other neighbours."""
  batch = _batch()
  ids = np.asarray(batch.input_ids).copy()
  ids[1, 7:] = [99, 98, 97]                     # different ids under the padding mask
  ids[0], ids[2] = ids[2].copy(), ids[0].copy()  # different neighbours
  other = Batch(jnp.asarray(ids), batch.attention_mask, batch.token_type_ids)
  a, b = run(tiny[1], batch), run(tiny[1], other)
  for name in ("gae", "mask_lrp", "mask_lrp/sep", "full_lrp", "attnlrp", "cp_lrp"):
    np.testing.assert_allclose(a[name][1], b[name][1], rtol=1e-5,
                               atol=1e-5 * np.abs(a[name][1]).max(), err_msg=name)
    np.testing.assert_allclose(a[name][0], b[name][2], rtol=1e-5,
                               atol=1e-5 * np.abs(a[name][0]).max(), err_msg=name)
    assert np.all(a[name][1, 7:] == 0), name


# ------------------------------------------------------------------------------- bad input

def test_bad_inputs(tiny):
  forward, params = tiny
  batch = _batch()
  with pytest.raises(InputError, match="2 layers x 4 heads"):
    lrp.mask_lrp(forward, params, batch, 1, head_mask=jnp.ones((6, 12)))
  with pytest.raises(InputError, match="unknown rule set 'lrp-eps'"):
    gradient_x_input(forward, params, batch, 1, rules="lrp-eps")
  with pytest.raises(InputError, match="callable"):
    lrp.gae(forward, params, batch, lambda out: out.logits[:, 0])
  with pytest.raises(InputError, match="include"):
    lrp.attnlrp(forward, params, batch, 1, include="segments")
  qa_forward, qa_params = init_encoder(EncoderConfig(**{**TINY, "head": "question_answering"}))
  with pytest.raises(InputError, match="'question_answering' head"):
    lrp.gae(qa_forward, qa_params, batch, 0)
  with pytest.raises(InputError, match="jaxplain model's forward"):
    lrp.gae(lambda p, b, t: forward(p, b, t), params, batch, 1)
  # a family without Chefer rules (every loadable family has them; a future one must say so)
  other = types.SimpleNamespace(head="sequence_classification", family="gpt2")
  with pytest.raises(InputError, match="no rules for the 'gpt2' family; supported: bert, "
                     "roberta, electra, distilbert"):
    _relprop.check_supported(other)
  with pytest.raises(InputError, match="unknown rule set 'lrp-eps'; choose one of attnlrp, "
                     "cp-lrp, gradient"):
    lrp.lrp_embedding_relevance(forward, params, batch, 1, rules="lrp-eps")


def test_attribute_takes_head_mask_as_dynamic_array(tiny):
  from jaxplain.api import attribute  # pylint: disable=g-import-not-at-top
  from jaxplain.models import model_from_params  # pylint: disable=g-import-not-at-top
  model = model_from_params(EncoderConfig(**TINY), tiny[1])
  batch = _batch()
  a = attribute(model, batch, "mask_lrp", target=1, head_mask=np.ones((2, 4), np.float32),
                mask_sep_key=False)
  b = attribute(model, batch, "mgae", target=1, head_mask=np.zeros((2, 4), np.float32),
                mask_sep_key=False)
  assert a.scores.shape == (3, 10)
  assert _differs(a.scores, b.scores)
