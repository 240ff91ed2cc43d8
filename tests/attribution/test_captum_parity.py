"""The gradient family equals Captum on a tiny Hugging Face BERT classifier.

References come from ``tests/fixtures/make_captum_fixtures.py`` (Captum + PyTorch on the
checkpoint in ``tests/fixtures/tiny/bert_seq_cls``), committed as ``captum/gradients.npz``; the
suite itself needs neither torch nor Captum. Captum returns ``[B, T, E]``; jaxplain's token
scores are those summed over ``E``, and the ``*_dims`` forms are compared with Captum's
``[B, T, E]`` as they are. NoiseTunnel runs on the very noise the fixture drew.
"""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxplain
from jaxplain import Batch
from jaxplain.attribution import (PER_DIMENSION, gradient, gradient_dims, gradient_x_input,
                                  gradient_x_input_dims, ig_convergence_delta,
                                  integrated_gradients, integrated_gradients_dims,
                                  layer_gradient_x_activation, layer_integrated_gradients,
                                  noise_tunnel, saliency, saliency_dims, smoothgrad,
                                  smoothgrad_sq, vargrad)
from jaxplain.errors import InputError

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")
RTOL_PARITY = 1e-4  # max |ours - Captum| <= 1e-4 * max |Captum|: float32, XLA CPU vs torch CPU.


@pytest.fixture(scope="module")
def ref():
  return dict(np.load(os.path.join(FIXTURES, "captum", "gradients.npz"), allow_pickle=False))


@pytest.fixture(scope="module")
def setup(ref):
  model = jaxplain.load_model(os.path.join(FIXTURES, "tiny", "bert_seq_cls"))
  batch = Batch(jnp.asarray(ref["input_ids"]), jnp.asarray(ref["attention_mask"]),
                jnp.asarray(ref["token_type_ids"]))
  ids = dict(pad_id=int(ref["pad_id"]), mask_id=int(ref["mask_id"]), unk_id=int(ref["unk_id"]),
             special_ids=tuple(int(i) for i in ref["special_ids"]))
  return model.forward, model.params, batch, jnp.asarray(ref["target"]), ids


ERRORS = {}  # relative max errors, printed by -s for the record


def _close(ours, theirs, what):
  ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
  assert ours.shape == theirs.shape, (what, ours.shape, theirs.shape)
  err = np.abs(ours - theirs).max()
  scale = np.abs(theirs).max()
  ERRORS[what] = err / scale
  print(f"parity {what}: max |error| / max |Captum| = {err / scale:.2e}")
  assert err <= RTOL_PARITY * scale, f"{what}: max error {err:.3g} > {RTOL_PARITY} x {scale:.3g}"


def _run(kernel, setup, noise=None, **hyper):
  forward, params, batch, target, _ = setup
  extra = {} if noise is None else {"noise": noise}
  fn = jax.jit(functools.partial(kernel, forward, **hyper))
  return np.asarray(fn(params, batch, target, **extra))


def test_baseline_is_the_captum_tutorial_baseline(ref, setup):
  forward, params, batch, _, ids = setup
  from jaxplain.attribution._common import embed  # pylint: disable=g-import-not-at-top
  from jaxplain.attribution.gradients import baseline_embeddings
  b0 = Batch(jnp.asarray(ref["baseline_ids"]), batch.attention_mask, batch.token_type_ids)

  @jax.jit
  def both(params, batch, b0):
    x = embed(forward, params, batch)
    return baseline_embeddings(forward, params, batch, x, "pad", **ids), embed(forward, params, b0)

  ours, theirs = both(params, batch, b0)
  np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


def test_saliency_and_input_x_gradient(ref, setup):
  _close(_run(saliency, setup, norm="l1"), ref["saliency_abs"].sum(-1), "saliency l1")
  _close(_run(saliency, setup, norm="l2"), np.linalg.norm(ref["saliency_raw"], axis=-1),
         "saliency l2")
  # The signed sum of a gradient over E is ~0 on BERT: the embedding LayerNorm ignores a shift
  # of all E coordinates. Compare it against the gradient's own scale instead.
  err = np.abs(_run(gradient, setup) - ref["saliency_raw"].sum(-1)).max()
  assert err <= RTOL_PARITY * np.abs(ref["saliency_raw"]).max()
  _close(_run(gradient_x_input, setup), ref["input_x_gradient"].sum(-1), "input x gradient")


@pytest.mark.parametrize("quadrature", ["gausslegendre", "riemann_trapezoid"])
def test_integrated_gradients(ref, setup, quadrature):
  forward, params, batch, target, ids = setup
  ours = _run(integrated_gradients, setup, steps=50, quadrature=quadrature, **ids)
  _close(ours, ref[f"ig_{quadrature}"].sum(-1), f"IG {quadrature}")
  _close(ours, ref[f"lig_word_{quadrature}"].sum(-1), f"LIG word embeddings {quadrature}")
  delta = jax.jit(functools.partial(ig_convergence_delta, forward, **ids))(
      params, batch, target, jnp.asarray(ours))
  np.testing.assert_allclose(np.asarray(delta), ref[f"ig_delta_{quadrature}"], atol=1e-4)


def test_layer_integrated_gradients_layer_path(ref, setup):
  ours = _run(layer_integrated_gradients, setup, steps=16, path="layer", **setup[-1])
  _close(ours, ref["lig_layers_gausslegendre"], "LIG per layer")


def test_layer_gradient_x_activation(ref, setup):
  _close(_run(layer_gradient_x_activation, setup), ref["lgxa"], "LayerGradientXActivation")


def _tunnel_hyper(base, ids):
  """The fixture's NoiseTunnel bases: Saliency (|grad|, so L1) and IG with 8 steps."""
  return (dict(base="saliency", norm="l1") if base == "saliency" else
          dict(base="integrated_gradients", steps=8, **ids))


@pytest.mark.parametrize("base", ["saliency", "ig"])
def test_noise_tunnel_same_noise(ref, setup, base):
  hyper, noise = _tunnel_hyper(base, setup[-1]), jnp.asarray(ref["noise"])
  per_sample = ref[f"per_sample_{base}"].sum(-1)                             # [K, B, T]
  # Captum's mean per dimension, summed over E, is the mean of token scores: exactly SmoothGrad.
  sg = _run(smoothgrad, setup, noise, **hyper)
  _close(sg, ref[f"nt_{base}_smoothgrad"].sum(-1), f"SmoothGrad({base})")
  _close(sg, per_sample.mean(0), f"SmoothGrad({base}) per sample")
  # Squared kinds reduce token scores (see noise_tunnel's Notes): compare per sample.
  sq = _run(smoothgrad_sq, setup, noise, **hyper)
  _close(sq, (per_sample ** 2).mean(0), f"SmoothGrad-sq({base})")
  vg = _run(vargrad, setup, noise, **hyper)
  _close(vg, per_sample.var(0), f"VarGrad({base})")
  if base == "saliency":  # |g| per dimension, so Captum's own VarGrad is reachable per dim
    captum_sq = ref["nt_saliency_smoothgrad_sq"]
    np.testing.assert_allclose(captum_sq, (ref["per_sample_saliency"] ** 2).mean(0), rtol=1e-5,
                               atol=1e-7)


def test_per_dimension_forms_are_captums_outputs(ref, setup):
  ids = setup[-1]
  _close(_run(gradient_dims, setup), ref["saliency_raw"], "gradient [B, T, E]")
  _close(_run(saliency_dims, setup), ref["saliency_abs"], "Saliency [B, T, E]")
  _close(_run(gradient_x_input_dims, setup), ref["input_x_gradient"], "InputXGradient [B, T, E]")
  # chunk_size=16 of 50 steps: three chunks summed in a scan plus a remainder of 2.
  for chunk in (None, 16):
    _close(_run(integrated_gradients_dims, setup, steps=50, chunk_size=chunk, **ids),
           ref["ig_gausslegendre"], f"IG [B, T, E], chunk {chunk}")
  assert set(PER_DIMENSION) == {gradient, saliency, gradient_x_input, integrated_gradients}


@pytest.mark.parametrize("base", ["saliency", "ig"])
def test_noise_tunnel_per_dimension_is_captums_noise_tunnel(ref, setup, base):
  hyper, noise = _tunnel_hyper(base, setup[-1]), jnp.asarray(ref["noise"])
  for kernel in (smoothgrad, smoothgrad_sq, vargrad):
    kind = kernel.__name__
    ours = _run(kernel, setup, noise, per_dimension=True, **hyper)
    _close(ours, ref[f"nt_{base}_{kind}"].sum(-1), f"NoiseTunnel {kind}({base}) per dimension")
  if base == "ig":  # the combinator takes a functools.partial of a kernel too
    tunnel = noise_tunnel(functools.partial(integrated_gradients, steps=8, **setup[-1]),
                          kind="vargrad", samples=4, per_dimension=True)
    _close(_run(tunnel, setup, noise), ref["nt_ig_vargrad"].sum(-1),
           "noise_tunnel(partial(IG)) per dimension")


def test_per_dimension_needs_a_per_dimension_form(setup):
  forward, params, batch, target, _ = setup
  with pytest.raises(InputError, match="norm='l1'"):
    vargrad(forward, params, batch, target, key=jax.random.key(0), base="saliency", norm="l2",
            samples=2, per_dimension=True)
  with pytest.raises(InputError, match="has none"):
    noise_tunnel(layer_gradient_x_activation, per_dimension=True)
  with pytest.raises(InputError, match="True or False"):
    noise_tunnel(gradient, per_dimension="yes")
