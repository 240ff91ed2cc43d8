"""DiffMask: Hard Concrete gates, the Lagrangian, training, checkpoints, explanations, errors."""

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxplain.attribution import diffmask as dm
from jaxplain.attribution.diffmask import objective as obj
from jaxplain.attribution.diffmask import train as dmtrain
from jaxplain.contracts import Batch, Outputs, Taps
from jaxplain.errors import InputError, JaxplainError
from jaxplain.models import EncoderConfig, init_encoder

MC_SAMPLES = 100_000
MC_ATOL = 6e-3  # > 3.5 sigma of a Bernoulli mean over 100k samples (sigma <= 1.6e-3)
V, E = 12, 4
RELEVANT = (1, 2)  # the toy model counts token 1 minus token 2; every other token is ignored


def _toy_params():
  """Word table: tokens 1/2 are +-e0 (what the model reads); others only use dims 2, 3."""
  rng = np.random.default_rng(0)
  table = np.zeros((V, E), np.float32)
  table[3:, 2:] = rng.normal(size=(V - 3, 2))
  table[1, 0], table[2, 1] = 1.0, 1.0
  return {"table": jnp.asarray(table)}


def toy_forward(params, batch: Batch, taps: Taps = Taps()) -> Outputs:
  """A one-state model (L = 0): logits ``[0, 2 * (#1 - #2)]`` from the word embeddings."""
  words = params["table"][batch.input_ids] if taps.word_embeddings is None else taps.word_embeddings
  h = words if taps.hidden is None else taps.hidden
  if taps.hidden_delta is not None:
    h = h + taps.hidden_delta[0]
  m = batch.attention_mask[..., None].astype(jnp.float32)
  s = 2.0 * jnp.sum((h[..., 0] - h[..., 1])[..., None] * m, axis=(1, 2))
  b, t = batch.input_ids.shape
  return Outputs(jnp.stack([jnp.zeros_like(s), s], -1), h[None], jnp.zeros((0, b, 1, t, t)),
                 words)


def _toy_batch(n=64, t=8, seed=0):
  rng = np.random.default_rng(seed)
  ids = rng.choice(V, (n, t), p=[0.0, 0.15, 0.15] + [0.7 / (V - 3)] * (V - 3)).astype(np.int32)
  lengths = rng.integers(3, t + 1, n)
  mask = (np.arange(t)[None] < lengths[:, None]).astype(np.int32)
  return Batch(np.where(mask > 0, ids, 0).astype(np.int32), mask, np.zeros_like(ids))


# Gate learning rate 10x the authors' 3e-4, with a short warm-up. Not more: RMSprop's first steps
# move every probe weight by ~10 x lr while the slack constraint drives lambda to 0, so at 3e-2
# without warm-up the gates shut within ~20 steps, before any multiplier grows; a Hard Concrete
# gate that is exactly 0 in every sample gets no gradient from the KL (the clip), and the log-L0
# penalty's gradient sigma(-alpha) ~ 1 keeps pushing it: every keep probability ends at ~5e-5.
# All runs here share this config up to run-only fields, so the step compiles once.
FAST = dm.DiffMaskConfig(variant="input", margin=0.05, batch_size=32, steps=6,
                         learning_rate=3e-3, baseline_learning_rate=3e-3, warmup_steps=50,
                         eval_every=1000, checkpoint_every=3, log_every=1, eval_size=32)


# --- gates -------------------------------------------------------------------------------------

def test_keep_probability_closed_form_matches_monte_carlo(key):
  alphas = jnp.array([-3.0, -0.5, 0.0, 1.0, 5.0])
  z = dm.sample(key, jnp.broadcast_to(alphas[:, None], (5, MC_SAMPLES)))
  np.testing.assert_allclose(np.mean(np.asarray(z) > 0, axis=1), dm.expected_l0(alphas),
                             atol=MC_ATOL)
  # the spec's reference values (2M-sample check): alpha = 0 -> 0.5798, alpha = 5 -> 0.9951
  np.testing.assert_allclose(dm.expected_l0(jnp.array([0.0, 5.0])), [0.5798, 0.9951], atol=1e-4)
  np.testing.assert_allclose(jnp.exp(dm.log_expected_l0(alphas)), dm.expected_l0(alphas),
                             rtol=1e-6)


def test_gates_in_unit_interval_and_finite_in_float32(key):
  alphas = jnp.array([-1e4, -50.0, -1.0, 0.0, 1.0, 50.0, 1e4], jnp.float32)
  z = dm.sample(key, jnp.broadcast_to(alphas[:, None], (7, 10_000)))
  assert z.dtype == jnp.float32 and bool(jnp.all((z >= 0) & (z <= 1)))
  assert float(z[0].max()) == 0.0 and float(z[-1].min()) == 1.0
  lp = dm.log_expected_l0(alphas)
  assert bool(jnp.all(jnp.isfinite(lp))) and bool(jnp.all(lp <= 0))
  g = jax.grad(lambda a: jnp.sum(dm.log_expected_l0(a)))(alphas)
  assert bool(jnp.all(jnp.isfinite(g)))


def test_gradient_flows_through_gates(key):
  alphas = jnp.zeros((1000,))
  g = jax.jit(jax.grad(lambda a: jnp.sum(dm.sample(key, a))))(alphas)
  assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.sum(g)) > 0
  params, batch = _toy_params(), _toy_batch(8)
  gates = dm.init_gates(key, variant="input", num_layers=0, hidden_size=E, embedding_size=E)
  # half-open gates, so that some z < 1 and the baseline matters
  gates = dataclasses.replace(gates, probes={**gates.probes, "bias": jnp.zeros((2,))})
  _, states = obj.model_states(toy_forward, params, batch, E)

  def loss(g):
    logits, lp, _ = obj.masked_logits(toy_forward, params, batch, g, states, jnp.int32(1), key)
    return obj.lagrangian(toy_forward(params, batch).logits, logits, lp, batch.attention_mask,
                          1.0, 0.05)[0]
  grads = jax.jit(jax.grad(loss))(gates)
  for name in ("v1", "g1", "b1", "v2", "g2", "bias"):
    assert float(jnp.abs(grads.probes[name]).sum()) > 0, name
  assert float(jnp.abs(grads.baseline).sum()) > 0


# --- the Lagrangian ----------------------------------------------------------------------------

@pytest.mark.parametrize("constraint,direction", [(0.5, 1), (-0.5, -1)])
def test_lagrangian_step_moves_lambda(constraint, direction):
  cfg = dm.DiffMaskConfig()
  lam = jnp.full((4,), 1.0)
  state = dm.init_state(dm.init_gates(jax.random.key(0), variant="hidden", num_layers=2,
                                      hidden_size=4, embedding_size=4), cfg)
  new, _ = dmtrain.lambda_step(state.lam, state.lam_opt, jnp.float32(constraint), jnp.int32(2), cfg)
  assert direction * (float(new.fast[2]) - 1.0) > 0       # up when violated, down when slack
  np.testing.assert_array_equal(np.asarray(new.fast)[[0, 1, 3]], np.asarray(lam)[[0, 1, 3]])


def test_lagrangian_step_clips_lambda():
  cfg = dm.DiffMaskConfig()
  state = dm.init_state(dm.init_gates(jax.random.key(0), variant="hidden", num_layers=0,
                                      hidden_size=4, embedding_size=4), cfg)
  lam, opt = state.lam, state.lam_opt
  for sign in (1e6, -1e6):
    lam0 = jax.tree.map(lambda x: x.at[0].set(199.9 if sign > 0 else 0.01), lam)
    for _ in range(3):
      lam0, opt = dmtrain.lambda_step(lam0, opt, jnp.float32(sign), jnp.int32(0), cfg)
    assert 0.0 <= float(lam0.fast[0]) <= 200.0
    assert float(lam0.fast[0]) == (200.0 if sign > 0 else 0.0)


def test_penalty_versions():
  logits0 = jnp.array([[0.0, 1.0]])
  lp = jnp.log(jnp.array([[0.5, 0.25, 1.0]]))
  mask = jnp.array([[1, 1, 0]])
  log_loss, aux = obj.lagrangian(logits0, logits0, lp, mask, 0.0, 0.1, "log_l0")
  l0_loss, _ = obj.lagrangian(logits0, logits0, lp, mask, 0.0, 0.1, "l0")
  np.testing.assert_allclose(log_loss, np.mean(np.log([0.5, 0.25])), rtol=1e-6)
  np.testing.assert_allclose(l0_loss, 0.375, rtol=1e-6)
  np.testing.assert_allclose(aux["l0"], 0.375, rtol=1e-6)
  np.testing.assert_allclose(aux["constraint"], -0.1, atol=1e-7)


# --- masking through the taps ------------------------------------------------------------------

def test_hidden_masking_equals_replacing_the_state(key):
  cfg = EncoderConfig(family="bert", vocab_size=30, hidden_size=8, num_layers=2, num_heads=2,
                      intermediate_size=16, embedding_size=8, max_positions=16)
  forward, params = init_encoder(cfg)
  batch = Batch(jnp.array([[2, 5, 7, 3, 0]]), jnp.array([[1, 1, 1, 1, 0]]), jnp.zeros((1, 5), int))
  gates = dm.init_gates(key, variant="hidden", num_layers=2, hidden_size=8, embedding_size=8)
  _, states = jax.jit(lambda p, b: obj.model_states(forward, p, b, 8))(params, batch)
  masked_fn = jax.jit(lambda p, b, g, s, l: obj.masked_logits(forward, p, b, g, s, l, key))
  replaced = jax.jit(forward, static_argnums=())
  for layer in (0, 1, 3):  # word embeddings, the first layer's input, the last layer's output
    logits, _, z = masked_fn(params, batch, gates, states, jnp.int32(layer))
    masked = z[..., None] * states[layer] + (1 - z[..., None]) * gates.baseline[layer]
    taps = (Taps(word_embeddings=masked) if layer == 0
            else Taps(hidden=masked, hidden_layer=layer - 1))
    np.testing.assert_allclose(logits, replaced(params, batch, taps).logits, atol=1e-5)
  keep = dm.explain(forward, batch, gates, params=params)["keep"]
  assert keep.shape == (1, 5, 4) and float(keep[0, 4].max()) == 0.0


# --- training, checkpoints, explanations -------------------------------------------------------

def test_resume_gives_identical_parameters(tmp_path):
  params, data = _toy_params(), _toy_batch(64)
  full = dm.train_gates(toy_forward, data, FAST, tmp_path / "a", params=params, progress=False)
  part = dm.train_gates(toy_forward, data, FAST, tmp_path / "b", params=params, progress=False,
                        stop_after=3)
  assert int(part.state.step) == 3
  rest = dm.train_gates(toy_forward, data, FAST, tmp_path / "b", params=params, progress=False)
  assert int(rest.state.step) == 6
  for a, b in zip(jax.tree.leaves(full.state), jax.tree.leaves(rest.state)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  with pytest.raises(InputError, match="another model or configuration"):
    dm.train_gates(toy_forward, data, dataclasses.replace(FAST, seed=1), tmp_path / "b",
                   params=params, progress=False)


def test_toy_training_beats_a_random_mask(tmp_path):
  params, data = _toy_params(), _toy_batch(256, seed=1)
  cfg = dataclasses.replace(FAST, steps=300, eval_every=300, checkpoint_every=300, log_every=50)
  res = dm.train_gates(toy_forward, data, cfg, tmp_path, params=params, progress=False)
  test = _toy_batch(64, seed=2)
  out = dm.explain(toy_forward, test, tmp_path, params=params)
  keep = np.asarray(out["keep"])
  assert keep.shape == (64, 8, 2) and np.all(np.diff(keep, axis=-1) <= 1e-6)  # input: monotone
  ids, mask = np.asarray(test.input_ids), np.asarray(test.attention_mask) > 0
  relevant = np.isin(ids, RELEVANT) & mask
  a = keep[..., 1]
  assert a[relevant].mean() > 0.9 and a[mask & ~relevant].mean() < 0.5
  # hard masks with the same number of kept tokens: DiffMask's top tokens vs random tokens
  kept = (a > 0.5) & mask
  rng = np.random.default_rng(0)
  rand = np.zeros_like(kept)
  for i in range(len(ids)):
    rand[i, rng.choice(np.flatnonzero(mask[i]), kept[i].sum(), replace=False)] = True
  b = res.gates.baseline[0]
  words = toy_forward(params, test).word_embeddings

  def kl(keep_mask):
    masked = jnp.where(jnp.asarray(keep_mask)[..., None], words, b)
    return float(jnp.mean(dm.kl_divergence(toy_forward(params, test).logits,
                                           toy_forward(params, test, Taps(word_embeddings=masked)).logits)))
  assert kl(kept) < 0.1 < kl(rand)
  scores = dm.diffmask(toy_forward, params, test, gates=res.gates, layer=1)
  np.testing.assert_allclose(scores, a, rtol=1e-6)
  assert float(jnp.abs(scores[~mask]).max()) == 0.0
  png = dm.plot_heatmap(keep[0], [str(t) for t in ids[0][mask[0]]], str(tmp_path / "h.png"))
  assert os.path.getsize(png) > 0


# --- bad input ---------------------------------------------------------------------------------

def test_gates_for_another_model_are_refused(key, tmp_path):
  params, batch = _toy_params(), _toy_batch(4)
  for shape in (dict(num_layers=0, hidden_size=8, embedding_size=8),   # other hidden size
                dict(num_layers=2, hidden_size=E, embedding_size=E)):  # other layer count
    gates = dm.init_gates(key, variant="input", **shape)
    with pytest.raises(InputError, match="trained for a model with"):
      dm.keep_probabilities(toy_forward, params, batch, gates=gates)
    path = dm.save_gates(tmp_path / str(shape["num_layers"]), gates)
    with pytest.raises(InputError, match="train gates for this model"):
      dm.explain(toy_forward, batch, path, params=params)
  with pytest.raises(InputError, match="variant"):
    dm.diffmask(toy_forward, params, batch, gates=dm.init_gates(
        key, variant="input", num_layers=0, hidden_size=E, embedding_size=E), variant="hidden")


def test_missing_or_corrupt_gates_raise_clear_errors(key, tmp_path):
  with pytest.raises(JaxplainError, match="no DiffMask gates"):
    dm.load_gates(tmp_path / "nowhere")
  gates = dm.init_gates(key, variant="hidden", num_layers=0, hidden_size=E, embedding_size=E)
  path = dm.save_gates(tmp_path / "g", gates)
  loaded = dm.load_gates(path)
  for a, b in zip(jax.tree.leaves(gates), jax.tree.leaves(loaded)):
    np.testing.assert_array_equal(a, b)
  with open(os.path.join(path, "meta.json"), "w") as f:
    f.write("{not json")
  with pytest.raises(JaxplainError, match="corrupt"):
    dm.load_gates(path)
  path = dm.save_gates(tmp_path / "h", gates)
  for root, _, files in os.walk(os.path.join(path, "params")):
    for name in files:
      with open(os.path.join(root, name), "wb") as f:
        f.write(b"\x00garbage")
  with pytest.raises(JaxplainError, match="corrupt"):
    dm.load_gates(path)


@pytest.mark.parametrize("margin", [0.0, -0.1, float("nan")])
def test_non_positive_margin_is_refused(margin, tmp_path):
  with pytest.raises(InputError, match="margin must be > 0"):
    dm.train_gates(toy_forward, _toy_batch(8), dataclasses.replace(FAST, margin=margin),
                   tmp_path, params=_toy_params(), progress=False)


# --- the method registry and the command line (tiny BERT) --------------------------------------

TINY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures",
                    "tiny", "bert_seq_cls")
TEXTS = ["a good film", "the worst movie , really boring"]


@pytest.fixture(scope="module")
def tiny():
  import jaxplain  # pylint: disable=g-import-not-at-top
  return jaxplain.load_model(TINY)


def _tiny_gates(model, key, variant="input"):
  c = model.config
  gates = dm.init_gates(key, variant=variant, num_layers=c.num_layers, hidden_size=c.hidden_size,
                        embedding_size=c.embedding_size)
  # a spread of keep probabilities, so that layers and tokens differ
  bias = jnp.linspace(-2.0, 3.0, gates.num_states)
  return dataclasses.replace(gates, probes={**gates.probes, "bias": bias})


def test_attribute_with_a_gates_path(tiny, key, tmp_path, monkeypatch):
  """``attribute(..., "diffmask", gates=PATH)`` once the lead registers the kernel and loader."""
  import jaxplain  # pylint: disable=g-import-not-at-top
  from jaxplain import attribution  # pylint: disable=g-import-not-at-top
  monkeypatch.setitem(attribution.METHODS, "diffmask", dm.diffmask)
  monkeypatch.setitem(attribution.PATH_HYPERPARAMETERS, "gates",
                      lambda path, config: dm.load_gates(path, config))
  gates = _tiny_gates(tiny, key)
  path = str(dm.save_gates(tmp_path / "gates", gates))
  batch = tiny.encode(TEXTS)
  want = np.asarray(dm.explain(tiny, batch, gates)["keep"])
  k = tiny.config.num_layers + 2
  full = jaxplain.attribute(tiny, TEXTS, "diffmask", gates=path, per_layer=True)
  assert full.extra["layers"].shape == (k,) + want.shape[:2]
  np.testing.assert_allclose(full.extra["layers"], np.moveaxis(want, -1, 0), rtol=1e-5,
                             atol=1e-6)
  assert np.all(np.diff(full.extra["layers"], axis=0) <= 1e-6)   # input gates: non-increasing
  mean = jaxplain.attribute(tiny, TEXTS, "diffmask", gates=gates)   # a Gates object works too
  np.testing.assert_allclose(mean.scores, want.mean(-1), rtol=1e-5, atol=1e-6)
  assert float(np.abs(mean.scores[np.asarray(batch.attention_mask) == 0]).max()) == 0.0
  other = str(dm.save_gates(tmp_path / "other", dm.init_gates(
      key, variant="input", num_layers=1, hidden_size=tiny.config.hidden_size,
      embedding_size=tiny.config.embedding_size)))
  with pytest.raises(InputError, match="trained for a model with 1 layers"):
    jaxplain.attribute(tiny, TEXTS, "diffmask", gates=other)
  with pytest.raises(InputError, match="needs trained gates"):
    jaxplain.attribute(tiny, TEXTS, "diffmask")
  with pytest.raises(InputError, match="out of range"):
    jaxplain.attribute(tiny, TEXTS, "diffmask", gates=path, layer=k)
  with pytest.raises(JaxplainError, match="no DiffMask gates"):
    jaxplain.attribute(tiny, TEXTS, "diffmask", gates=str(tmp_path / "nowhere"))


def test_cli_train_resume_and_explain(tiny, tmp_path, monkeypatch):
  from typer.testing import CliRunner  # pylint: disable=g-import-not-at-top
  from jaxplain.cli import _common, app  # pylint: disable=g-import-not-at-top
  import jaxplain.cli.diffmask  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  real = _common.load
  monkeypatch.setattr(_common, "load", lambda m: tiny if m == TINY else real(m))
  runner = CliRunner()
  words = ["good", "bad", "great", "boring", "fun", "film", "movie", "plot", "actors", "music"]
  rng = np.random.default_rng(0)
  data = tmp_path / "texts.txt"
  data.write_text("\n".join(" ".join(rng.choice(words, rng.integers(2, 7))) for _ in range(24)))
  out = tmp_path / "run"
  train = ["diffmask", "train", str(data), "--model", TINY, "--out", str(out), "--steps", "4",
           "--batch-size", "8", "--eval-every", "4", "--checkpoint-every", "2", "--warmup", "2",
           "--max-length", "16", "--no-cache", "--no-progress"]
  r = runner.invoke(app, train)
  assert r.exit_code == 0, r.output
  assert "validation at step 4" in r.stdout and os.path.exists(out / "gates" / "meta.json")
  again = runner.invoke(app, train)                                  # finished run: resumes, no-op
  assert again.exit_code == 0, again.output
  refused = runner.invoke(app, train + ["--no-resume"])
  assert refused.exit_code == 2 and "already holds a DiffMask run" in refused.stderr
  bad = runner.invoke(app, train[:5] + ["--out", str(tmp_path / "m0"), "--margin", "0"])
  assert bad.exit_code == 2 and "margin must be > 0" in bad.stderr
  assert "Traceback" not in bad.output
  figs = tmp_path / "figs"
  ex = runner.invoke(app, ["diffmask", "explain", *TEXTS, "--gates", str(out), "--model", TINY,
                           "--plots", str(figs), "--format", "svg", "--no-cache"])
  assert ex.exit_code == 0, ex.output
  assert "survived" in ex.stdout and "boring" in ex.stdout
  assert os.path.getsize(figs / "diffmask_0.svg") > 0 and os.path.exists(figs / "survival_1.svg")
  js = runner.invoke(app, ["diffmask", "explain", *TEXTS, "--gates", str(out), "--model", TINY,
                           "--json", "--no-cache"])
  assert js.exit_code == 0, js.output
  doc = __import__("json").loads(js.stdout)
  row = doc["examples"][0]
  assert len(row["keep"]) == len(row["tokens"]) and len(row["keep"][0]) == 4
  assert row["indices"] == ["E", "1", "2", "3"]
  missing = runner.invoke(app, ["diffmask", "explain", "x", "--gates", str(tmp_path / "none"),
                                "--model", TINY, "--no-cache"])
  assert missing.exit_code == 2 and missing.stderr.startswith("jaxplain: error: no DiffMask gates")
  assert "\n" not in missing.stderr.strip()
