"""jaxplain's jit: the CPU compiler options, when they apply, and that they keep the values;
the persistent compilation cache."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxplain
from jaxplain import _compile


@pytest.fixture
def fresh_options(monkeypatch):
  """Clears the probe's cache around a test that changes the environment it reads."""
  _compile.compiler_options.cache_clear()
  yield monkeypatch
  _compile.compiler_options.cache_clear()


def test_cpu_options_are_used_where_xla_accepts_them():
  try:  # does this jaxlib know the options? (jax 0.10 does; an older or newer one may not)
    jax.jit(jnp.sin, compiler_options=_compile.CPU_COMPILER_OPTIONS).lower(1.0).compile()
    expected = _compile.CPU_COMPILER_OPTIONS
  except Exception:  # pylint: disable=broad-except
    expected = None
  assert _compile.compiler_options("cpu") == expected
  assert _compile.compiler_options("gpu") is None
  assert _compile.compiler_options("tpu") is None


def test_environment_switches_the_options_off(fresh_options):
  fresh_options.setenv("JAXPLAIN_XLA_OPTIONS", "0")
  assert _compile.compiler_options("cpu") is None
  _compile.compiler_options.cache_clear()
  fresh_options.delenv("JAXPLAIN_XLA_OPTIONS")
  fresh_options.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_DOT")
  assert _compile.compiler_options("cpu") is None


def test_rejected_options_fall_back_to_xla_defaults(fresh_options):
  fresh_options.setattr(_compile, "CPU_COMPILER_OPTIONS", {"xla_cpu_no_such_option": "1"})
  assert _compile.compiler_options("cpu") is None


def test_jit_matches_plain_jit_on_a_matmul_gradient():
  rng = np.random.default_rng(0)
  w1, w2 = (jnp.asarray(rng.normal(size=s), jnp.float32) for s in ((64, 96), (96, 8)))
  x = jnp.asarray(rng.normal(size=(16, 64)), jnp.float32)

  def loss(x, w1, w2):
    return jnp.sum(jax.nn.gelu(x @ w1) @ w2)

  ours = _compile.jit(jax.grad(loss))(x, w1, w2)
  plain = jax.jit(jax.grad(loss))(x, w1, w2)
  np.testing.assert_allclose(ours, plain, rtol=1e-5, atol=1e-5)


TINY = os.path.join(os.path.dirname(__file__), "fixtures", "tiny", "bert_seq_cls")


def test_compilation_cache_keeps_programs_on_disk(tmp_path):
  """In a fresh process (the setting is global): the directory is returned and filled."""
  script = ("import sys, jaxplain; m = jaxplain.load_model(sys.argv[1]); "
            "print(jaxplain.enable_compilation_cache(sys.argv[2])); "
            "jaxplain.attribute(m, ['a film'], 'gradient')")
  cache = tmp_path / "cache"
  proc = subprocess.run([sys.executable, "-c", script, TINY, str(cache)], capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.strip() == str(cache) and os.listdir(cache)


def test_compilation_cache_in_an_unusable_place(tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("")
  with pytest.raises(jaxplain.InputError, match="cannot create the compilation cache directory"):
    jaxplain.enable_compilation_cache(blocker / "cache")
