"""The ``jaxplain`` command line: ``jaxplain explain | sweep | evaluate | ...``.

Every subcommand lives in its own module and is defined on the one shared app::

    # jaxplain/cli/sweep.py
    from jaxplain.cli._app import app

    @app.command()
    def sweep(...) -> None:
      '''Attribute a whole corpus.'''

and is registered by one import line below. Commands raise
:class:`~jaxplain.errors.JaxplainError` for anything the user can fix; the app prints it as one
line and exits with code 2 (see :mod:`jaxplain.cli._app`). Import heavy modules (jax, the model)
inside the command function, and call ``_common.configure_jax(cache)`` before compiling.
"""

from jaxplain.cli._app import app, run

# Subcommands: one import line per module (each defines its commands on `app`).
from jaxplain.cli import explain  # noqa: E402,F401  pylint: disable=g-import-not-at-top
from jaxplain.cli import diffmask  # noqa: E402,F401  pylint: disable=g-import-not-at-top
from jaxplain.cli import evaluate  # noqa: E402,F401  pylint: disable=g-import-not-at-top
from jaxplain.cli import heads  # noqa: E402,F401  pylint: disable=g-import-not-at-top
from jaxplain.cli import report  # noqa: E402,F401  pylint: disable=g-import-not-at-top
from jaxplain.cli import sweep  # noqa: E402,F401  pylint: disable=g-import-not-at-top


def main() -> None:
  """The ``jaxplain`` console script (``[project.scripts]`` in pyproject.toml)."""
  run()


__all__ = ["app", "main"]
