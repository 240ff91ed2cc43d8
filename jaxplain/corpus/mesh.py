"""Devices and hosts: the data-parallel mesh, multi-process start-up, and each process's slice.

A sweep is data parallel. On one host, every batch is laid out over a ``Mesh`` of all local
devices along one ``"data"`` axis (``NamedSharding(mesh, P("data", None))``), with the
parameters replicated; the batch size is rounded up to a multiple of the device count. On several
hosts, each process (after :func:`initialize_distributed`, only when asked) takes its own
deterministic slice of the corpus, runs it on its own local devices and writes its own shards;
processes meet only at the end (:func:`barrier`), when process 0 writes the merged manifest.
"""

import math

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxplain.errors import InputError

DATA_AXIS = "data"


def initialize_distributed(coordinator: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> None:
  """``jax.distributed.initialize`` with the given (or auto-detected, on TPU/SLURM) settings.

  Call it before any other JAX call, and only for multi-process runs.

  Raises:
    InputError: incomplete settings, or the coordinator could not be reached.
  """
  given = [coordinator is not None, num_processes is not None, process_id is not None]
  if any(given) and not all(given):
    raise InputError("a multi-process sweep needs --coordinator HOST:PORT, --num-processes N and "
                     "--process-id I together (or none of them, to auto-detect on a TPU slice).")
  if num_processes is not None and not 0 <= process_id < num_processes:
    raise InputError(f"--process-id {process_id} is outside 0..{num_processes - 1}.")
  try:
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id)
  except Exception as e:  # unreachable coordinator, already initialised, undetectable cluster
    raise InputError(f"jax.distributed.initialize failed ({type(e).__name__}: {e}); check "
                     "--coordinator/--num-processes/--process-id (every process needs the same "
                     "coordinator and count, and a distinct id).") from None


def process_info() -> tuple[int, int]:
  """``(process_index, process_count)``: ``(0, 1)`` unless distributed was initialised."""
  return jax.process_index(), jax.process_count()


def local_mesh() -> Mesh:
  """A one-axis ``("data",)`` mesh over this process's devices."""
  return Mesh(np.asarray(jax.local_devices()), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """``[B, T]`` arrays split over ``"data"`` along the batch axis."""
  return NamedSharding(mesh, P(DATA_AXIS, None))


def row_sharding(mesh: Mesh) -> NamedSharding:
  """``[B]`` arrays split over ``"data"``."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  """Every device holds a full copy (parameters)."""
  return NamedSharding(mesh, P())


def round_up(batch_size: int, devices: int) -> int:
  """``batch_size`` rounded up to a multiple of ``devices``."""
  return int(math.ceil(batch_size / devices) * devices)


def process_slice(n: int, process_index: int, process_count: int,
                  slicing: str = "round_robin") -> np.ndarray:
  """Example indices (in ``0..n-1``, increasing) this process handles.

  ``"round_robin"``: ``i % process_count == process_index`` (balances length-sorted files);
  ``"block"``: a contiguous block, the first ``n % process_count`` blocks one longer.
  """
  if slicing == "round_robin":
    return np.arange(process_index, n, process_count, dtype=np.int64)
  if slicing == "block":
    size, extra = divmod(n, process_count)
    start = process_index * size + min(process_index, extra)
    return np.arange(start, start + size + (process_index < extra), dtype=np.int64)
  raise InputError(f"unknown slicing {slicing!r}; use round_robin or block.")


BARRIER_TIMEOUT_S = 7 * 24 * 3600
"""How long a process that finished its slice waits for the others (a slow host, a resumed one)."""


def barrier(name: str, timeout_s: float = BARRIER_TIMEOUT_S) -> None:
  """Waits until every process reaches ``barrier(name)`` (a no-op for one process).

  Uses the ``jax.distributed`` coordination service's barrier, which waits without any device
  collective: processes of a sweep finish their slices at very different times, and a device
  collective (gloo on CPU) times out within a minute while the others are still working. Falls
  back to ``multihost_utils.sync_global_devices`` if the client is not reachable.
  """
  if jax.process_count() == 1:
    return
  try:
    from jax._src import distributed  # pylint: disable=g-import-not-at-top
    client = distributed.global_state.client
  except (ImportError, AttributeError):
    client = None
  if client is not None and hasattr(client, "wait_at_barrier"):
    client.wait_at_barrier(name, int(timeout_s * 1000))
    return
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  multihost_utils.sync_global_devices(name)
