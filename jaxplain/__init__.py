"""jaxplain: token attributions for BERT-family text models, in JAX."""

from jaxplain._compile import default_cache_dir, enable_compilation_cache
from jaxplain.api import attribute, methods
from jaxplain.contracts import Batch, Outputs, Packing, Taps
from jaxplain.errors import InputError, JaxplainError, ModelLoadError, TruncationWarning
from jaxplain.models import EncoderConfig, Model, load_model
from jaxplain.models.default import default_model
from jaxplain.result import Attribution

__version__ = "0.1.0"

__all__ = ["Attribution", "Batch", "EncoderConfig", "InputError", "JaxplainError", "Model",
           "Packing", "ModelLoadError", "Outputs", "Taps", "TruncationWarning", "attribute",
           "default_cache_dir", "default_model", "enable_compilation_cache", "load_model",
           "methods"]
