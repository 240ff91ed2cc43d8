"""EncoderConfig: one frozen description of a BERT-family encoder and its head.

Built from a Hugging Face ``config.json`` by :func:`from_hf_config`, which maps each family's
field names (DistilBERT's ``dim``/``n_layers``, ELECTRA's ``embedding_size``) onto one vocabulary.
"""

import dataclasses
from typing import Any

from jaxplain.errors import ModelLoadError

FAMILIES = ("bert", "roberta", "distilbert", "electra")
HEADS = ("sequence_classification", "token_classification", "question_answering", "masked_lm",
         "embedding")
ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu", "silu", "swish")

_ARCHITECTURE_HEADS = {
    "ForSequenceClassification": "sequence_classification",
    "ForTokenClassification": "token_classification",
    "ForQuestionAnswering": "question_answering",
    "ForMaskedLM": "masked_lm",
    "ForPreTraining": "embedding",
    "Model": "embedding",
}


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
  """Shape and behaviour of an encoder; hashable, so it can key jit caches.

  Attributes:
    family: one of :data:`FAMILIES`.
    head: one of :data:`HEADS`.
    vocab_size, hidden_size, num_layers, num_heads, intermediate_size: sizes.
    embedding_size: width of the word embeddings (ELECTRA may project them to ``hidden_size``);
      ``None`` means ``hidden_size``.
    max_positions: learned position embeddings.
    type_vocab_size: segment vocabulary (0 for DistilBERT, which has none).
    num_labels: classes of the classification heads.
    activation: feed-forward activation.
    layer_norm_eps: LayerNorm epsilon.
    pad_token_id: padding id (RoBERTa's positions are offset by it).
    dtype: compute dtype name (``"float32"`` or ``"bfloat16"``); parameters stay float32.
  """

  family: str
  head: str = "sequence_classification"
  vocab_size: int = 30522
  hidden_size: int = 768
  num_layers: int = 12
  num_heads: int = 12
  intermediate_size: int = 3072
  embedding_size: int | None = None
  max_positions: int = 512
  type_vocab_size: int = 2
  num_labels: int = 2
  activation: str = "gelu"
  layer_norm_eps: float = 1e-12
  pad_token_id: int = 0
  classifier_activation: str = "gelu"
  dtype: str = "float32"

  def __post_init__(self):
    if self.embedding_size is None:
      object.__setattr__(self, "embedding_size", self.hidden_size)
    if self.family not in FAMILIES:
      raise ModelLoadError(f"unsupported model family {self.family!r}; jaxplain supports "
                           f"{', '.join(FAMILIES)}.")
    if self.head not in HEADS:
      raise ModelLoadError(f"unknown head {self.head!r}; choose one of {', '.join(HEADS)}.")
    if self.activation not in ACTIVATIONS:
      raise ModelLoadError(f"unsupported activation {self.activation!r}; supported: "
                           f"{', '.join(ACTIVATIONS)}.")
    if self.hidden_size % self.num_heads:
      raise ModelLoadError(f"hidden_size {self.hidden_size} is not divisible by num_heads "
                           f"{self.num_heads}; the config is corrupt.")

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_heads

  @property
  def max_length(self) -> int:
    """Longest input (special tokens included) the position embeddings allow."""
    if self.family == "roberta":
      return self.max_positions - self.pad_token_id - 1
    return self.max_positions

  def replace(self, **changes: Any) -> "EncoderConfig":
    return dataclasses.replace(self, **changes)


def head_from_architectures(architectures: list[str] | None) -> str:
  """The head named by ``config.json``'s ``architectures`` (``BertForMaskedLM`` -> masked_lm)."""
  for arch in architectures or []:
    for suffix, head in _ARCHITECTURE_HEADS.items():
      if arch.endswith(suffix):
        return head
  return "embedding"


def from_hf_config(hf: dict[str, Any], head: str | None = None) -> EncoderConfig:
  """Maps a Hugging Face ``config.json`` dict onto :class:`EncoderConfig`.

  Args:
    hf: the parsed ``config.json``.
    head: the head to build; ``None`` reads it from ``architectures``.
  Raises:
    ModelLoadError: unsupported ``model_type`` or missing fields.
  """
  family = hf.get("model_type")
  if family not in FAMILIES:
    raise ModelLoadError(
        f"unsupported model_type {family!r} in config.json; jaxplain supports "
        f"{', '.join(FAMILIES)}. Use a checkpoint of one of these families.")
  head = head or head_from_architectures(hf.get("architectures"))
  labels = hf.get("id2label")
  num_labels = len(labels) if labels else int(hf.get("num_labels", 2))
  try:
    if family == "distilbert":
      return EncoderConfig(
          family=family, head=head, vocab_size=hf["vocab_size"], hidden_size=hf["dim"],
          num_layers=hf["n_layers"], num_heads=hf["n_heads"],
          intermediate_size=hf["hidden_dim"], embedding_size=hf["dim"],
          max_positions=hf["max_position_embeddings"], type_vocab_size=0,
          num_labels=num_labels, activation=hf.get("activation", "gelu"),
          layer_norm_eps=1e-12, pad_token_id=hf.get("pad_token_id", 0))
    return EncoderConfig(
        family=family, head=head, vocab_size=hf["vocab_size"], hidden_size=hf["hidden_size"],
        num_layers=hf["num_hidden_layers"], num_heads=hf["num_attention_heads"],
        intermediate_size=hf["intermediate_size"],
        embedding_size=hf.get("embedding_size", hf["hidden_size"]),
        max_positions=hf["max_position_embeddings"],
        type_vocab_size=hf.get("type_vocab_size", 2), num_labels=num_labels,
        activation=hf.get("hidden_act", "gelu"), layer_norm_eps=hf.get("layer_norm_eps", 1e-12),
        pad_token_id=hf.get("pad_token_id", 0) if hf.get("pad_token_id") is not None else 0,
        classifier_activation=hf.get("hidden_act", "gelu"))
  except KeyError as e:
    raise ModelLoadError(f"config.json lacks the field {e.args[0]!r} that a {family} model "
                         "needs; the file is incomplete or from another library.") from None
