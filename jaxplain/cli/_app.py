"""The one ``typer`` app every ``jaxplain`` subcommand is defined on, and its error handling.

A subcommand module (``jaxplain/cli/sweep.py``) does ``from jaxplain.cli._app import app`` and
decorates its function with ``@app.command()``; ``jaxplain/cli/__init__.py`` imports the module
once so the command exists. Nothing else is needed: every command runs inside
:meth:`_Group.invoke`, which turns

- a :class:`~jaxplain.errors.JaxplainError` into one line ``jaxplain: error: <message>`` on
  stderr and exit code 2 (no traceback);
- Ctrl-C (:class:`KeyboardInterrupt`) into exit code 130, quietly;
- any warning (a :class:`~jaxplain.errors.TruncationWarning`, say) into one line
  ``jaxplain: warning: <message>`` on stderr.

Unexpected exceptions (bugs) keep their traceback.
"""

import sys
import warnings
from typing import Any

import click
import typer
from typer.core import TyperGroup

from jaxplain.errors import JaxplainError

EXIT_ERROR = 2
"""Exit code of a user error (the same as click's usage errors)."""
EXIT_INTERRUPTED = 130
"""Exit code after Ctrl-C (128 + SIGINT), as shells report it."""


def one_line(message: Any) -> str:
  """``message`` with all whitespace runs (newlines included) collapsed to single spaces."""
  return " ".join(str(message).split())


def error(message: Any) -> None:
  """Prints ``jaxplain: error: <message>`` on stderr (one line)."""
  click.echo(f"jaxplain: error: {one_line(message)}", err=True)


def warn(message: Any) -> None:
  """Prints ``jaxplain: warning: <message>`` on stderr (one line)."""
  click.echo(f"jaxplain: warning: {one_line(message)}", err=True)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
  del filename, lineno, file, line
  text = str(message)
  if not (category.__module__ or "").startswith("jaxplain") and category is not UserWarning:
    text = f"{category.__name__}: {text}"  # third-party warnings say what kind they are
  warn(text)


class _Group(TyperGroup):
  """The root command group: runs every subcommand under jaxplain's error handling."""

  def invoke(self, ctx: click.Context) -> Any:
    with warnings.catch_warnings():
      warnings.showwarning = _show_warning  # restored when the block exits
      try:
        return super().invoke(ctx)
      except JaxplainError as e:
        error(e)
        raise typer.Exit(EXIT_ERROR) from None
      except KeyboardInterrupt:
        click.echo("", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None


app = typer.Typer(
    name="jaxplain", cls=_Group, no_args_is_help=True, add_completion=False,
    rich_markup_mode=None,  # help texts say "[default: ...]"; rich markup would drop it
    pretty_exceptions_enable=False, context_settings={"help_option_names": ["-h", "--help"]},
    help="Explain transformer text classifiers with token attributions (JAX/Flax).")
"""The ``jaxplain`` command group. Define subcommands with ``@app.command()``."""


def _version(value: bool) -> None:
  if value:
    from jaxplain import __version__  # pylint: disable=g-import-not-at-top
    click.echo(f"jaxplain {__version__}")
    raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
  """Explain transformer text classifiers with token attributions (JAX/Flax)."""
  del version


def run(argv: list[str] | None = None) -> None:
  """Runs the app on ``argv`` (default ``sys.argv[1:]``) and exits with its status."""
  try:
    app(args=argv, prog_name="jaxplain")
  except KeyboardInterrupt:  # Ctrl-C outside a command (while parsing or importing)
    sys.stderr.write("\n")
    sys.exit(EXIT_INTERRUPTED)
