"""jaxplain: token attributions for BERT-family text models, in JAX."""

from jaxplain.contracts import Batch, Outputs, Taps
from jaxplain.errors import InputError, JaxplainError, ModelLoadError, TruncationWarning
from jaxplain.models import EncoderConfig, Model, load_model

__version__ = "0.1.0"
