"""The rich progress bar of long work: ``attribute`` over many calls, sweeps, DiffMask training."""

from typing import Any


def progress_bar(label: str, total: int, completed: int = 0, *, suffix: str = "",
                 **fields: Any) -> Any:
  """A started ``rich.progress.Progress`` on stderr with one task (``bar.task_ids[0]``).

  Columns: ``label``, the bar, done/total, elapsed time, time remaining, then ``suffix``, a
  template that may read the task's ``fields`` (e.g. ``"{task.fields[rate]} ex/s"``). Stop it
  with ``bar.stop()``.
  """
  from rich.console import Console  # pylint: disable=g-import-not-at-top
  from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,  # pylint: disable=g-import-not-at-top
                             TimeElapsedColumn, TimeRemainingColumn)
  columns = [TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
             TextColumn("ETA"), TimeRemainingColumn()]
  if suffix:
    columns.append(TextColumn(suffix))
  bar = Progress(*columns, console=Console(stderr=True), transient=False)
  bar.add_task(label, total=total, completed=completed, **fields)
  bar.start()
  return bar
