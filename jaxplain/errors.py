"""The one exception type users see, and the warnings jaxplain emits.

Every error a user can cause (an unknown model, an unsupported architecture, empty text, a
target out of range, an over-long input, a corrupt checkpoint, an unwritable output directory)
raises :class:`JaxplainError` with a message that names the problem and says what to do. The CLI
turns it into one line on stderr and a non-zero exit code.
"""


class JaxplainError(Exception):
  """A problem the user can fix; the message says how."""


class ModelLoadError(JaxplainError):
  """A checkpoint or tokenizer could not be loaded."""


class InputError(JaxplainError):
  """Bad text, batch, target, scores or hyperparameters."""


class TruncationWarning(UserWarning):
  """An input was longer than the model allows and was truncated."""
