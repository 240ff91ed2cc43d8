"""``jax.jit`` with jaxplain's per-backend XLA compiler options.

On the CPU backend jaxplain's compiled kernels ask XLA to hand each matmul to YNNPACK on its own
(``xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT``) instead of fusing
matmuls with their neighbours. Measured, not assumed, and host-dependent: on the AMD EPYC host
of 2026-12-06 ``experiments/benchmarks/ab_compiler_options.py`` (256 snippets, both builds timed
interleaved) read IG-50 1.088-1.095x and SmoothGrad-10 1.06x faster, gradient x input 1.00x,
same values to 1e-6 (``experiments/benchmarks/results/bench_gradients.md``), while
``profile_ig_pass.py``'s variants read 1.00-1.12x on the host of 2026-11-23. Other backends get
no options.

The option is experimental in XLA; a jaxlib that no longer knows it would reject every compile,
so it is used only after a one-off probe compile accepts it. Setting the flag yourself in
``XLA_FLAGS``, or ``JAXPLAIN_XLA_OPTIONS=0``, leaves XLA's defaults alone.

:func:`enable_compilation_cache` keeps compiled programs on disk across processes (the CLI turns
it on by default; from Python it is one call).
"""

import functools
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxplain.errors import InputError

CPU_COMPILER_OPTIONS: dict[str, str] = {
    "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT",
}


@functools.cache
def compiler_options(backend: str | None = None) -> dict[str, str] | None:
  """The options :func:`jit` compiles with on ``backend`` (default ``jax.default_backend()``).

  ``None`` off the CPU, when ``JAXPLAIN_XLA_OPTIONS=0``, when ``XLA_FLAGS`` already sets one of
  the options, or when this jaxlib rejects them.
  """
  backend = jax.default_backend() if backend is None else backend
  if backend != "cpu" or os.environ.get("JAXPLAIN_XLA_OPTIONS", "1") == "0":
    return None
  flags = os.environ.get("XLA_FLAGS", "")
  if any(name in flags for name in CPU_COMPILER_OPTIONS):
    return None
  try:
    jax.jit(lambda a, b: a @ b, compiler_options=CPU_COMPILER_OPTIONS).lower(
        jnp.ones((2, 2)), jnp.ones((2, 2))).compile()
  except Exception:  # pylint: disable=broad-except  # an unknown option: keep XLA's defaults
    return None
  return dict(CPU_COMPILER_OPTIONS)


def jit(fun: Callable, **kwargs: Any) -> Callable:
  """``jax.jit(fun, **kwargs)`` with :func:`compiler_options` for the default backend."""
  return jax.jit(fun, compiler_options=compiler_options(), **kwargs)


def default_cache_dir() -> str:
  """``$XDG_CACHE_HOME/jaxplain/jax``, or ``~/.cache/jaxplain/jax`` when ``XDG_CACHE_HOME`` is
  unset: where :func:`enable_compilation_cache` and the CLI keep compiled programs."""
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "jaxplain", "jax")


def enable_compilation_cache(path: str | os.PathLike | None = None) -> str:
  """Keeps every program JAX compiles from now on in a directory (JAX's persistent
  compilation cache), so the next process that runs the same method on the same shapes loads
  it instead of compiling it again.

  For one-off calls of the cheap methods compiling is most of the time (gradient x input on
  512 snippets: 2.7 s of a 4.9 s call). The ``jaxplain`` commands do this by default.

  Args:
    path: the cache directory; default: one already given to JAX (``JAX_COMPILATION_CACHE_DIR``)
      or else :func:`default_cache_dir`. Created if missing.
  Returns:
    The directory in use.
  Raises:
    InputError: the directory cannot be created.
  Example:
    >>> jaxplain.enable_compilation_cache()          # doctest: +SKIP
    '/home/me/.cache/jaxplain/jax'
  """
  path = os.fspath(path) if path is not None else (
      jax.config.jax_compilation_cache_dir or default_cache_dir())
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise InputError(f"cannot create the compilation cache directory {path} ({e.strerror}); "
                     "pass another path, or run without the cache.") from None
  jax.config.update("jax_enable_compilation_cache", True)
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return path
