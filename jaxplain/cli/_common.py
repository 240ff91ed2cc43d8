"""Helpers every subcommand shares: the JAX compilation cache, model loading, parsing, output.

Heavy modules (jax, transformers, the model code) are imported inside the functions that need
them, so ``jaxplain --help`` and argument errors stay fast.
"""

import os
import re
import sys
import tempfile
from typing import Any, Sequence

from jaxplain.errors import InputError, JaxplainError

_INT = re.compile(r"[+-]?\d+")


def configure_jax(cache: bool = True) -> str | None:
  """Turns on JAX's persistent compilation cache (:func:`jaxplain.enable_compilation_cache`), or
  off.

  A second run of the same command then loads its compiled programs from disk instead of
  compiling them again. A ``JAX_COMPILATION_CACHE_DIR`` the user set wins over
  :func:`jaxplain.default_cache_dir`. Call it before anything is compiled. It also quiets Hugging
  Face's own log lines (jaxplain reports what matters, such as truncation, as one-line warnings).

  Args:
    cache: ``False`` disables the persistent cache (``--no-cache``).
  Returns:
    The cache directory in use, or ``None``.
  """
  quiet_transformers()
  import jax  # pylint: disable=g-import-not-at-top
  from jaxplain._compile import enable_compilation_cache  # pylint: disable=g-import-not-at-top
  if not cache:
    jax.config.update("jax_enable_compilation_cache", False)
    return None
  try:
    return enable_compilation_cache()
  except InputError as e:  # the cache only saves time: go on without it
    from jaxplain.cli._app import warn  # pylint: disable=g-import-not-at-top
    warn(f"{str(e).split(';')[0]}; running without it.")
    return None


def quiet_transformers() -> None:
  """Hugging Face logs errors only (its long-input notice duplicates jaxplain's warning)."""
  if "transformers" in sys.modules:
    from transformers.utils import logging  # pylint: disable=g-import-not-at-top
    logging.set_verbosity_error()
  else:  # read when transformers is first imported; importing it here would cost seconds
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def load(model: str | None) -> Any:
  """``jaxplain.load_model(model)``, or the default model when ``model`` is ``None``."""
  if model is not None:
    from jaxplain.models import load_model  # pylint: disable=g-import-not-at-top
    return load_model(model)
  try:
    from jaxplain.models.default import default_model  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise JaxplainError("this jaxplain has no default model (jaxplain.models.default is "
                        "missing); pass --model PATH_OR_HUB_ID.") from None
  return default_model()


def read_texts(texts: Sequence[str]) -> list[str]:
  """The texts, with ``-`` replaced by the lines of stdin (one text per non-blank line)."""
  out = []
  for t in texts:
    if t == "-":
      lines = [line.rstrip("\r\n") for line in sys.stdin]
      lines = [line for line in lines if line.strip()]
      if not lines:
        raise InputError("no text on stdin; pipe one text per line, or pass the text as an "
                         "argument.")
      out.extend(lines)
    else:
      out.append(t)
  if not out:
    raise InputError("no text given; pass a text to explain, or - to read lines from stdin.")
  return out


def parse_value(text: str) -> Any:
  """A ``--param`` value: int, float, ``true``/``false``, ``none``, else the string itself."""
  s = text.strip()
  if _INT.fullmatch(s):
    return int(s)
  try:
    return float(s)
  except ValueError:
    pass
  low = s.lower()
  if low in ("true", "false"):
    return low == "true"
  if low in ("none", "null"):
    return None
  return s


def parse_label_map(items: Sequence[str]) -> dict[Any, Any] | None:
  """``--label-map RAW=LABEL`` items as ``{raw: label}`` (values through :func:`parse_value`);
  ``None`` when no item was given."""
  if not items:
    return None
  mapping = {}
  for item in items:
    raw, sep, lab = item.partition("=")
    if not sep:
      raise InputError(f"--label-map {item!r} is not RAW=LABEL; write e.g. fresh=positive.")
    mapping[parse_value(raw)] = parse_value(lab)
  return mapping


def parse_params(items: Sequence[str] | None) -> dict[str, Any]:
  """``["steps=32", "stdev=0.1"]`` -> ``{"steps": 32, "stdev": 0.1}``."""
  out = {}
  for item in items or ():
    key, sep, value = item.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key.isidentifier():
      raise InputError(f"--param {item!r} is not key=value; write e.g. --param steps=32.")
    out[key] = parse_value(value)
  return out


def parse_target(target: str | None, labels: Sequence[str]) -> int | None:
  """``--target``: a class index (``2``) or a label name (``positive``, any case)."""
  if target is None:
    return None
  t = target.strip()
  if _INT.fullmatch(t):
    return int(t)
  from jaxplain.models.model import label_index  # pylint: disable=g-import-not-at-top
  return label_index(t, labels)


def check_writable(path: str) -> str:
  """``path`` made absolute, after checking that its directory exists and is writable."""
  full = os.path.abspath(os.path.expanduser(path))
  parent = os.path.dirname(full)
  if os.path.isdir(full):
    raise InputError(f"{path} is a directory; pass a file name such as {path}/explain.html.")
  if not os.path.isdir(parent):
    raise InputError(f"cannot write {path}: the directory {parent} does not exist; create it "
                     "first.")
  if not os.access(parent, os.W_OK):
    raise InputError(f"cannot write {path}: the directory {parent} is not writable; choose "
                     "another path.")
  return full


def write_atomic(path: str, text: str) -> None:
  """Writes ``text`` to ``path`` through a temporary file and :func:`os.replace`.

  Readers never see a half-written file, and a failed write leaves an existing file untouched.
  The file gets the permissions ``open`` would give it (``0o666`` less the umask), not the
  owner-only ones of a temporary file.
  """
  full = check_writable(path)
  fd, tmp = tempfile.mkstemp(prefix=".jaxplain-", suffix=".tmp", dir=os.path.dirname(full))
  try:
    with os.fdopen(fd, "w", encoding="utf-8") as f:
      f.write(text)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, full)
  except OSError as e:
    try:
      os.unlink(tmp)
    except OSError:
      pass
    raise JaxplainError(f"cannot write {path} ({e.strerror or e}); choose another path.") from None
