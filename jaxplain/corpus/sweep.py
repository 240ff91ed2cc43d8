"""``sweep(config)``: attribute a whole corpus on every local device, shard by shard, resumably.

The corpus is read in file order; this process takes its slice (:func:`~jaxplain.corpus.mesh.
process_slice`) and cuts it into shards of ``shard_size`` examples, ``shard k = slice[k*S :
(k+1)*S]``. A shard is the unit of work and of resumption: its rows are checked (bad rows go to
the errors file), tokenised, sorted into length buckets, run through the one compiled step
(:func:`~jaxplain.corpus.step.sweep_step`) batch by batch with the batch laid out over the device
mesh, and written as one Parquet file, after which the manifest is updated. Rerunning the same
command skips finished shards, so a sweep killed at any point ends with exactly the rows of an
uninterrupted one.
"""

import contextlib
import dataclasses
import hashlib
import logging
import math
import sys
import time
import warnings
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxplain._progress import progress_bar
from jaxplain.corpus import mesh as meshlib
from jaxplain.corpus.buckets import PaddingStats, plan_batches
from jaxplain.corpus.output import OutputDir
from jaxplain.corpus.plan import SweepConfig
from jaxplain.corpus.read import Corpus, check_text, label_ids, read_corpus
from jaxplain.corpus.rows import RowBuilder
from jaxplain.corpus.step import (check_method_hyper, metric_protocols, sweep_step,
                                  with_token_ids)
from jaxplain.errors import InputError, TruncationWarning
from jaxplain.models.tokenize import encode, resolve_buckets


@dataclasses.dataclass
class SweepSummary:
  """What a sweep did (this process).

  Attributes:
    examples: rows written in this run (shards already done are not counted).
    shards_written, shards_skipped: shards written now, and shards found done.
    errors: bad rows recorded in this run (skipped or truncated).
    seconds: wall time of this run, compilation included.
    padding: :meth:`PaddingStats.as_dict` of the shards written now.
    output: the output directory.
    devices: local devices used; process_index, process_count: this process of how many.
  """

  examples: int
  shards_written: int
  shards_skipped: int
  errors: int
  seconds: float
  padding: dict[str, float]
  output: str
  devices: int
  process_index: int = 0
  process_count: int = 1

  @property
  def examples_per_second(self) -> float:
    return self.examples / self.seconds if self.seconds > 0 else 0.0

  def __str__(self) -> str:
    p = self.padding
    return (f"{self.examples} examples in {self.seconds:.1f} s ({self.examples_per_second:.1f} "
            f"examples/s) on {self.devices} device(s), process {self.process_index + 1}/"
            f"{self.process_count}; shards written {self.shards_written}, already done "
            f"{self.shards_skipped}; padding waste {p.get('padding_waste', 0):.1%} with "
            f"bucketing, {p.get('padding_waste_file_order', 0):.1%} without (file order), "
            f"{p.get('padding_waste_fixed', 0):.1%} padding all to max_length; "
            f"errors {self.errors}; output {self.output}")


def corpus_digest(corpus: Corpus) -> dict[str, Any]:
  """``{"examples": N, "sha256": ...}`` over ids, texts, pairs and labels in order."""
  h = hashlib.sha256()
  columns = (corpus.ids, corpus.texts, corpus.text_pairs or [], corpus.labels or [])
  for col in columns:
    for v in col:
      h.update(repr(v).encode("utf-8", "surrogateescape"))
      h.update(b"\x00")
    h.update(b"\x01")
  return {"examples": len(corpus), "sha256": h.hexdigest()}


_SWEEPS_RUN = 0


class _Progress:
  """A rich progress bar on a terminal, plain log lines otherwise."""

  def __init__(self, total: int, done: int, enabled: bool | None, log: Callable[[str], None]):
    self.total, self.done, self.log = total, done, log
    self.start = time.perf_counter()
    self.count = 0
    self.bar = None
    if enabled is None:
      enabled = sys.stderr.isatty()
    if enabled:
      self.bar = progress_bar("sweep", total, done, suffix="{task.fields[rate]} ex/s", rate="-")
      self.task = self.bar.task_ids[0]

  def advance(self, n: int) -> None:
    self.count += n
    if self.bar is not None:
      rate = self.count / max(time.perf_counter() - self.start, 1e-9)
      self.bar.update(self.task, advance=n, rate=f"{rate:.1f}")

  def shard(self, k: int, shards: int, rows: int) -> None:
    if self.bar is not None:
      return
    elapsed = time.perf_counter() - self.start
    rate = self.count / max(elapsed, 1e-9)
    left = self.total - self.done - self.count
    eta = left / rate if rate > 0 else float("nan")
    self.log(f"shard {k + 1}/{shards}: {rows} rows; {self.done + self.count}/{self.total} "
             f"examples, {rate:.1f} examples/s, ETA {_hms(eta)}")

  def close(self) -> None:
    if self.bar is not None:
      self.bar.stop()


def _hms(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  s = int(round(seconds))
  return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


@contextlib.contextmanager
def _quiet_tokenizer():
  """Silences Hugging Face's "sequence longer than the maximum" notice for a moment."""
  logger = logging.getLogger("transformers.tokenization_utils_base")
  level = logger.level
  logger.setLevel(logging.ERROR)
  try:
    yield
  finally:
    logger.setLevel(level)


def _stderr(line: str) -> None:
  print(f"jaxplain: {line}", file=sys.stderr, flush=True)


class _Runner:
  """Everything a shard needs: the model, its compiled step, the mesh and the shapes."""

  def __init__(self, config: SweepConfig, model: Any, corpus: Corpus):
    self.config, self.model, self.corpus = config, model, corpus
    self.tokenizer = model.tokenizer
    if self.tokenizer is None:
      raise InputError(f"{model.name} has no tokenizer; a sweep reads texts and needs one.")
    self.max_length = model.max_length if config.max_length is None else config.max_length
    if not 2 < self.max_length <= model.max_length:
      raise InputError(f"max_length {self.max_length} is outside 3..{model.max_length}, the "
                       "model's range.")
    self.buckets = (tuple(model.buckets) if config.buckets == "default"
                    else resolve_buckets(config.buckets))
    self.mesh = meshlib.local_mesh()
    self.devices = self.mesh.devices.size
    self.global_batch = meshlib.round_up(config.batch_size, self.devices)
    pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
    methods = []
    for name, hyper in config.methods:
      check_method_hyper(name, hyper)
      methods.append((name, with_token_ids(name, hyper, self.tokenizer, pad)))
    protocols = metric_protocols(config.metrics, config.metric_options, self.tokenizer)
    self.step = sweep_step(model.forward, tuple(methods), protocols, config.target, int(pad))
    self.params = jax.device_put(model.params, meshlib.replicated(self.mesh))
    self.key = jax.random.key(config.seed)
    self.rows = RowBuilder(config, self.tokenizer, model.labels)
    self.labels = (None if corpus.labels is None
                   else label_ids(corpus.labels, model.labels, config.label_map))
    self._keys: list[str] | None = None

  def _check_rows(self, indices: np.ndarray) -> tuple[list[int], list[dict[str, Any]]]:
    good, errors = [], []
    c = self.corpus
    for i in indices.tolist():
      text, reason = check_text(c.texts[i])
      if reason is None and c.text_pairs is not None:
        _, pair_reason = check_text(c.text_pairs[i])
        reason = None if pair_reason is None else f"text pair: {pair_reason}"
      if reason is None and self.labels is not None and self.labels[i][1] is not None:
        reason = self.labels[i][1]
      if reason is None and self.config.target == "label" and self.labels[i][0] is None:
        reason = "no label (the sweep explains the gold label)"
      if reason is None:
        good.append(i)
      else:
        errors.append({"index": i, "id": c.ids[i], "reason": reason, "action": "skipped"})
    return good, errors

  def run_shard(self, indices: np.ndarray, progress: _Progress
                ) -> tuple[Any, list[dict[str, Any]], PaddingStats]:
    """The rows (a ``pyarrow.Table``, in index order), errors and padding of one shard."""
    c = self.corpus
    good, errors = self._check_rows(indices)
    texts = [c.texts[i] for i in good]
    pairs = None if c.text_pairs is None else [c.text_pairs[i] for i in good]
    lengths = []
    if good:
      full = self.tokenizer(texts, pairs, truncation=False, add_special_tokens=True,
                            verbose=False)
      lengths = [len(ids) for ids in full["input_ids"]]
    keep, kept_len, truncated = [], [], set()
    for j, n in enumerate(lengths):
      i = good[j]
      if n > self.max_length:
        action = "truncated" if self.config.on_long == "truncate" else "skipped"
        errors.append({"index": i, "id": c.ids[i], "action": action,
                       "reason": f"too long: {n} tokens > max_length {self.max_length}"})
        if action == "skipped":
          continue
        truncated.add(i)
      keep.append(j)
      kept_len.append(min(n, self.max_length))
    errors.sort(key=lambda e: e["index"])
    progress.advance(sum(e["action"] == "skipped" for e in errors))  # counted as handled
    plans = plan_batches(kept_len, self.global_batch, self.max_length, self.buckets)
    stats = PaddingStats()
    stats.add(kept_len, plans, self.global_batch, self.max_length, self.buckets)
    records: dict[int, dict[str, Any]] = {}

    def finish(batch, idx, b_texts, b_pairs, out) -> None:
      out = {k: np.asarray(v)[:len(idx)] for k, v in out.items()}  # waits for the device
      for r, i in enumerate(idx):
        label = None if self.labels is None else self.labels[i][0]
        records[i] = self.rows.record(i, c.ids[i], b_texts[r], None if b_pairs is None
                                      else b_pairs[r], label, i in truncated, batch, r, out)
      progress.advance(len(idx))

    # Dispatch is asynchronous: batch k+1 is tokenised and queued before batch k's rows are
    # built, so host work overlaps device work (on accelerators; results are the same).
    pending = None
    for plan in plans:
      rows = [keep[r] for r in plan.rows]
      idx = [good[j] for j in rows]
      b_texts = [texts[j] for j in rows]
      b_pairs = None if pairs is None else [pairs[j] for j in rows]
      with warnings.catch_warnings(), _quiet_tokenizer():  # long rows are in the errors file
        warnings.simplefilter("ignore", TruncationWarning)
        batch = encode(self.tokenizer, b_texts, b_pairs, self.max_length, truncate=True,
                       buckets=(plan.length,))
      out = self._dispatch(batch, idx)
      if pending is not None:
        finish(*pending)
      pending = (batch, idx, b_texts, b_pairs, out)
    if pending is not None:
      finish(*pending)
    ordered = [records[i] for i in sorted(records)]
    return self.rows.table(ordered, self._columns()), errors, stats

  def _dispatch(self, batch, idx: list[int]) -> dict[str, jax.Array]:
    """Starts the step on one batch (filled to the global batch size); returns its outputs
    (device arrays over all ``global_batch`` rows, not yet waited for)."""
    n, g = len(idx), self.global_batch
    fill = lambda x: np.concatenate([x, np.repeat(x[:1], g - n, 0)], 0) if n < g else x
    labels = np.full((n,), -1, np.int32)
    if self.labels is not None:
      labels[:] = [-1 if self.labels[i][0] is None else self.labels[i][0] for i in idx]
    sh_bt = meshlib.batch_sharding(self.mesh)
    sh_b = meshlib.row_sharding(self.mesh)
    put = lambda x, s: jax.device_put(fill(np.asarray(x, np.int32)), s)
    dev = batch.device_part()
    dev = type(dev)(put(dev.input_ids, sh_bt), put(dev.attention_mask, sh_bt),
                    put(dev.token_type_ids, sh_bt))
    out = self.step(self.params, dev, put(batch.word_ids, sh_bt), put(labels, sh_b),
                    put(np.asarray(idx), sh_b), self.key)
    self._keys = sorted(out)
    return out

  def _columns(self) -> list[str]:
    """Output keys of the step (from a batch already run, else its abstract evaluation)."""
    if self._keys is None:
      t, g = min(self.buckets[0], self.max_length), self.global_batch
      ids = jax.ShapeDtypeStruct((g, t), jnp.int32)
      row = jax.ShapeDtypeStruct((g,), jnp.int32)
      from jaxplain.contracts import Batch  # pylint: disable=g-import-not-at-top
      shapes = jax.eval_shape(self.step, self.params, Batch(ids, ids, ids), ids, row, row,
                              self.key)
      self._keys = sorted(shapes)
    return self._keys


def sweep(config: SweepConfig, *, model: Any = None, progress: bool | None = None,
          log: Callable[[str], None] = _stderr) -> SweepSummary:
  """Runs (or resumes) a sweep; see the module docstring.

  Call :func:`jaxplain.corpus.initialize_distributed` first for a multi-process run.

  Args:
    config: the :class:`SweepConfig`.
    model: an already loaded :class:`~jaxplain.models.Model` (default: load ``config.model``
      with ``config.dtype``, or the default model).
    progress: a rich progress bar (``True``), log lines (``False``), or ``None``: a bar when
      stderr is a terminal.
    log: where progress lines and notes go (default: stderr).
  Returns:
    A :class:`SweepSummary` of this process's run.
  Raises:
    JaxplainError: unreadable data, an unwritable output directory, an output directory
      holding another config, an unknown method or metric.
  """
  t0 = time.perf_counter()
  process_index, process_count = meshlib.process_info()
  corpus = read_corpus(config.data)
  out = OutputDir(config.output, config, process_index, process_count, corpus_digest(corpus))
  mine = meshlib.process_slice(len(corpus), process_index, process_count, config.slicing)
  n_shards = int(math.ceil(len(mine) / config.shard_size))
  shards = [mine[k * config.shard_size:(k + 1) * config.shard_size] for k in range(n_shards)]
  todo = [k for k in range(n_shards) if not out.done(k)]
  done_rows = sum(len(shards[k]) for k in range(n_shards) if k not in set(todo))
  if model is None:
    model = _load_model(config)
  runner = _Runner(config, model, corpus)
  header = {"model": {"name": model.name, "labels": list(model.labels), "dtype": config.dtype,
                      "max_length": runner.max_length},
            "shard_size": config.shard_size, "num_shards": n_shards,
            "process_examples": int(len(mine)), "slicing": config.slicing,
            "curves": _curve_levels(config)}
  if len(todo) < n_shards:
    log(f"resuming {out.directory}: {n_shards - len(todo)} of {n_shards} shards already done")
  bar = _Progress(len(mine), done_rows, progress, log)
  padding, written, errors = PaddingStats(), 0, 0
  try:
    for k in todo:
      table, errs, stats = runner.run_shard(shards[k], bar)
      header["columns"] = table.schema.names
      out.write_shard(k, table, errs, stats.as_dict(), header)
      padding.merge(stats)
      written += table.num_rows
      errors += len(errs)
      bar.shard(k, n_shards, table.num_rows)
  finally:
    bar.close()
  header.setdefault("columns", out.manifest.get("columns"))
  out.finish(header)
  global _SWEEPS_RUN
  _SWEEPS_RUN += 1  # a fresh barrier name for every sweep this process runs
  meshlib.barrier(f"jaxplain-sweep-{config.config_hash()[:16]}-{_SWEEPS_RUN}")
  if process_index == 0:
    out.write_merged()
  return SweepSummary(examples=written, shards_written=len(todo),
                      shards_skipped=n_shards - len(todo), errors=errors,
                      seconds=time.perf_counter() - t0, padding=padding.as_dict(),
                      output=out.directory, devices=runner.devices,
                      process_index=process_index, process_count=process_count)


def _load_model(config: SweepConfig) -> Any:
  if config.model is not None:
    from jaxplain.models import load_model  # pylint: disable=g-import-not-at-top
    return load_model(config.model, dtype=config.dtype)
  try:
    from jaxplain.models.default import default_model  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise InputError("this jaxplain has no default model; set model in the sweep config "
                     "(--model PATH_OR_HUB_ID).") from None
  model = default_model()
  if config.dtype != model.config.dtype:  # same weights, another compute dtype
    from jaxplain.models.model import model_from_params  # pylint: disable=g-import-not-at-top
    model = model_from_params(model.config.replace(dtype=config.dtype), model.params,
                              model.tokenizer, model.labels, name=model.name)
  return model


def _curve_levels(config: SweepConfig) -> dict[str, list[float]]:
  """x positions (fraction of tokens removed) of the ERASER metrics' ``_curve`` columns."""
  out = {}
  opts = {m: dict(o) for m, o in config.metric_options}
  for m in ("comprehensiveness", "sufficiency"):
    if m in config.metrics:
      from jaxplain.metrics.faithfulness import ERASER_BINS  # pylint: disable=g-import-not-at-top
      out[f"{m}_curve"] = [float(b) / 100 for b in opts.get(m, {}).get("bins", ERASER_BINS)]
  return out
