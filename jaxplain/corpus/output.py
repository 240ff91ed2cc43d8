"""Output files: Parquet shards, per-process manifests, errors files, all written atomically.

Layout of an output directory (``docs/sweep_schema.md`` documents the columns)::

    part-p00000-of-00002-00000.parquet     shard 0 of process 0 (of 2)
    manifest-p00000-of-00002.json          process 0's manifest, rewritten after every shard
    errors-p00000-of-00002.jsonl           process 0's skipped/truncated rows (index, id, reason)
    manifest.json                          the merged manifest, written by process 0 at the end

Every file is written to a temporary name in the same directory, flushed and fsynced, then
renamed over its final name with :func:`os.replace`, so a reader (or a resumed sweep) sees a
file whole or not at all. A shard counts as done only when its file exists *and* the manifest
lists it with the same SHA-256; anything else is redone, and temporary files left by a killed
process are deleted when it starts again.
"""

import glob
import hashlib
import json
import os
import time
from typing import Any, Callable

from jaxplain.corpus.plan import SCHEMA_VERSION, SweepConfig, diff_fingerprints
from jaxplain.errors import JaxplainError

MANIFEST = "manifest.json"


def _tag(process_index: int, process_count: int) -> str:
  return f"p{process_index:05d}-of-{process_count:05d}"


class OutputError(JaxplainError):
  """The output directory cannot be used (unwritable, or holds another sweep)."""


def fsync_dir(directory: str) -> None:
  try:
    fd = os.open(directory, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


def atomic_write(path: str, write: Callable[[Any], None], tmp_prefix: str,
                 binary: bool = False) -> None:
  """Writes ``path`` via ``write(file)`` on a temporary file, fsync and :func:`os.replace`."""
  directory = os.path.dirname(path)
  tmp = os.path.join(directory, f"{tmp_prefix}{os.path.basename(path)}.{os.getpid()}")
  try:
    with open(tmp, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except OSError as e:
    try:
      os.unlink(tmp)
    except OSError:
      pass
    raise OutputError(f"cannot write {path} ({e.strerror or e}); check the disk and the "
                      "directory's permissions.") from None
  fsync_dir(directory)


def sha256_file(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


class OutputDir:
  """One process's view of a sweep's output directory.

  Creating it checks that the directory is writable, deletes this process's stray temporary
  files, refuses a directory written under another config (naming the fields that changed), and
  loads the shards already done.

  Args:
    directory: the output directory (created if missing).
    config: the sweep config.
    process_index, process_count: this process and how many there are.
    corpus_info: ``{"examples": N, "sha256": ...}`` of the corpus read.
  Raises:
    OutputError: the directory cannot be created or written, or holds another sweep.
  """

  def __init__(self, directory: str, config: SweepConfig, process_index: int,
               process_count: int, corpus_info: dict[str, Any]):
    self.directory = os.path.abspath(os.path.expanduser(directory))
    self.config = config
    self.process_index, self.process_count = process_index, process_count
    self.tag = _tag(process_index, process_count)
    self.tmp_prefix = f".tmp-{self.tag}-"
    self.corpus_info = dict(corpus_info)
    self._check_writable()
    for stray in glob.glob(os.path.join(glob.escape(self.directory), self.tmp_prefix + "*")):
      try:
        os.unlink(stray)
      except OSError:
        pass
    self._check_other_manifests()
    self.manifest = self._load_manifest()

  @property
  def manifest_path(self) -> str:
    return os.path.join(self.directory, f"manifest-{self.tag}.json")

  @property
  def errors_path(self) -> str:
    return os.path.join(self.directory, f"errors-{self.tag}.jsonl")

  def shard_name(self, k: int) -> str:
    return f"part-{self.tag}-{k:05d}.parquet"

  def _check_writable(self) -> None:
    if os.path.exists(self.directory) and not os.path.isdir(self.directory):
      raise OutputError(f"{self.directory} exists and is not a directory; choose another "
                        "--output.")
    try:
      os.makedirs(self.directory, exist_ok=True)
    except OSError as e:
      raise OutputError(f"cannot create the output directory {self.directory} "
                        f"({e.strerror or e}); choose a writable --output.") from None
    if not os.path.isdir(self.directory):
      raise OutputError(f"{self.directory} exists and is not a directory; choose another "
                        "--output.")
    probe = os.path.join(self.directory, f".tmp-probe-{os.getpid()}")
    try:
      with open(probe, "w") as f:
        f.write("")
      os.unlink(probe)
    except OSError as e:
      raise OutputError(f"the output directory {self.directory} is not writable "
                        f"({e.strerror or e}); fix its permissions or choose another "
                        "--output.") from None

  def _refuse_if_changed(self, found: dict[str, Any], path: str) -> None:
    if found.get("schema_version") != SCHEMA_VERSION:
      raise OutputError(f"{path} was written with sweep schema version "
                        f"{found.get('schema_version')}, this jaxplain writes {SCHEMA_VERSION}; "
                        "use a new --output directory.")
    if found.get("config_hash") != self.config.config_hash():
      changed = diff_fingerprints(found.get("config", {}), self.config.fingerprint())
      raise OutputError(f"{self.directory} holds a sweep with a different config (changed: "
                        f"{'; '.join(changed) or 'unknown fields'}); rerun with the same config "
                        "to resume, or choose a new --output directory.")
    corpus = found.get("corpus")
    if corpus and corpus != self.corpus_info:
      raise OutputError(f"the data changed since {self.directory} was written (was "
                        f"{corpus.get('examples')} examples, sha256 {corpus.get('sha256', '')[:12]}"
                        f"; now {self.corpus_info.get('examples')}, "
                        f"{self.corpus_info.get('sha256', '')[:12]}); use a new --output "
                        "directory.")

  def _check_other_manifests(self) -> None:
    pattern = os.path.join(glob.escape(self.directory), "manifest*.json")
    for path in sorted(glob.glob(pattern)):
      found = _read_json(path)
      if found is None:
        continue
      self._refuse_if_changed(found, path)
      count = found.get("process_count")
      if count is not None and count != self.process_count:
        raise OutputError(f"{self.directory} was written by {count} process(es), this sweep runs "
                          f"{self.process_count}; resume with the same number of processes or "
                          "choose a new --output directory.")

  def _load_manifest(self) -> dict[str, Any]:
    found = _read_json(self.manifest_path)
    if found is None:
      return {"shards": {}}
    return found

  def done(self, k: int) -> bool:
    """Whether shard ``k`` is complete: listed in the manifest and its file intact."""
    entry = self.manifest.get("shards", {}).get(str(k))
    if entry is None:
      return False
    path = os.path.join(self.directory, entry["file"])
    return (os.path.exists(path) and os.path.getsize(path) == entry.get("bytes")
            and sha256_file(path) == entry.get("sha256"))

  def entries(self) -> list[dict[str, Any]]:
    return [self.manifest["shards"][k] for k in sorted(self.manifest.get("shards", {}), key=int)]

  def write_shard(self, k: int, table: Any, errors: list[dict[str, Any]],
                  padding: dict[str, Any], header: dict[str, Any]) -> dict[str, Any]:
    """Writes shard ``k`` (a ``pyarrow.Table``), then the errors file, then the manifest."""
    import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
    name = self.shard_name(k)
    path = os.path.join(self.directory, name)
    atomic_write(path, lambda f: pq.write_table(table, f, compression="zstd"), self.tmp_prefix,
                 binary=True)
    entry = {"shard": k, "file": name, "rows": table.num_rows, "bytes": os.path.getsize(path),
             "sha256": sha256_file(path), "errors": errors, "padding": padding,
             "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    shards = dict(self.manifest.get("shards", {}))
    shards[str(k)] = entry
    self._write_errors(shards)
    self.manifest = {**header, **self._identity(), "complete": False, "shards": shards}
    self.write_manifest()
    return entry

  def _identity(self) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "config_hash": self.config.config_hash(),
            "config": self.config.fingerprint(), "process_index": self.process_index,
            "process_count": self.process_count, "corpus": self.corpus_info}

  def _write_errors(self, shards: dict[str, Any]) -> None:
    lines = [json.dumps(e, ensure_ascii=False) + "\n"
             for k in sorted(shards, key=int) for e in shards[k]["errors"]]
    atomic_write(self.errors_path, lambda f: f.writelines(lines), self.tmp_prefix)

  def write_manifest(self) -> None:
    text = json.dumps(self.manifest, indent=1, sort_keys=True)
    atomic_write(self.manifest_path, lambda f: f.write(text), self.tmp_prefix)

  def finish(self, header: dict[str, Any]) -> None:
    """Marks this process's manifest complete (and rewrites its errors file)."""
    shards = dict(self.manifest.get("shards", {}))
    self._write_errors(shards)
    self.manifest = {**self.manifest, **header, **self._identity(), "complete": True,
                     "shards": shards}
    self.write_manifest()

  def write_merged(self) -> dict[str, Any]:
    """Process 0, after every process finished: ``manifest.json`` over all processes."""
    files, rows, errors, parts = [], 0, 0, []
    for p in range(self.process_count):
      path = os.path.join(self.directory, f"manifest-{_tag(p, self.process_count)}.json")
      m = _read_json(path)
      if m is None or not m.get("complete"):
        raise OutputError(f"process {p} has not finished ({os.path.basename(path)} is missing "
                          "or incomplete); run it, then rerun this process to merge.")
      parts.append(os.path.basename(path))
      for k in sorted(m["shards"], key=int):
        e = m["shards"][k]
        files.append(e["file"])
        rows += e["rows"]
        errors += len(e["errors"])
    padding: dict[str, int] = {"real_tokens": 0, "padded_slots": 0}
    for p in range(self.process_count):
      m = _read_json(os.path.join(self.directory, f"manifest-{_tag(p, self.process_count)}.json"))
      for e in (m or {}).get("shards", {}).values():
        for k in padding:
          padding[k] += int(e.get("padding", {}).get(k, 0))
    slots = padding["padded_slots"]
    padding["padding_waste"] = round((slots - padding["real_tokens"]) / slots, 6) if slots else 0.0
    carried = {k: self.manifest.get(k) for k in ("columns", "model", "curves", "shard_size",
                                                 "slicing")}
    merged = {**self._identity(), **carried, "process_index": None, "complete": True,
              "files": files, "rows": rows, "errors": errors, "process_manifests": parts,
              "errors_files": [f"errors-{_tag(p, self.process_count)}.jsonl"
                               for p in range(self.process_count)],
              "padding": padding}
    text = json.dumps(merged, indent=1, sort_keys=True)
    atomic_write(os.path.join(self.directory, MANIFEST), lambda f: f.write(text),
                 self.tmp_prefix)
    return merged


def _read_json(path: str) -> dict[str, Any] | None:
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except FileNotFoundError:
    return None
  except (OSError, json.JSONDecodeError) as e:
    raise OutputError(f"{path} is unreadable ({e}); it is not a jaxplain sweep manifest, or it "
                      "is corrupt. Choose a new --output directory.") from None


def read_sweep(directory: str | os.PathLike, *, errors: bool = False) -> Any:
  """A finished sweep's rows as one pandas DataFrame, ordered by example ``index``.

  Reads the files the merged ``manifest.json`` lists (a sweep that has not finished is refused:
  rerun it to resume). The same rows load with ``datasets.load_dataset("parquet",
  data_files=f"{directory}/part-*.parquet")`` or ``pandas.read_parquet(sorted(glob(...)))``.

  Args:
    directory: the sweep's output directory.
    errors: also return the errors files' records as a second DataFrame (index, id, reason,
      action).
  Raises:
    OutputError: no finished sweep in ``directory``.
  """
  import pandas as pd  # pylint: disable=g-import-not-at-top
  directory = os.fspath(directory)
  merged = _read_json(os.path.join(directory, MANIFEST))
  if merged is None or not merged.get("complete"):
    raise OutputError(f"{directory} holds no finished sweep (no {MANIFEST}); run `jaxplain "
                      "sweep` into it, or rerun the same command to finish it.")
  frames = [pd.read_parquet(os.path.join(directory, f)) for f in merged["files"]]
  rows = (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame())
  if len(rows):
    rows = rows.sort_values("index", kind="stable").reset_index(drop=True)
  if not errors:
    return rows
  records = []
  for name in merged.get("errors_files", []):
    try:
      with open(os.path.join(directory, name), encoding="utf-8") as f:
        records += [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
      pass
  errs = pd.DataFrame(records, columns=["index", "id", "reason", "action"])
  return rows, errs.sort_values("index", kind="stable").reset_index(drop=True)
