"""Flax BERT-family encoders with taps, checkpoint loading, tokenising, the default model."""

from jaxplain.models.config import EncoderConfig, from_hf_config
from jaxplain.models.forward import init_encoder, make_forward
from jaxplain.models.grouping import length_groups
from jaxplain.models.model import Model, load_model, model_from_params
from jaxplain.models.packing import (PackLayout, default_row_length, pack, plan_rows, unpack,
                                     unpack_slots)
from jaxplain.models.tokenize import (BUCKET_PRESETS, BUCKETS, FINE_BUCKETS, bucket_length,
                                      resolve_buckets)

__all__ = ["BUCKET_PRESETS", "BUCKETS", "FINE_BUCKETS", "EncoderConfig", "Model", "PackLayout",
           "bucket_length", "default_row_length", "from_hf_config", "init_encoder", "length_groups",
           "load_model", "make_forward", "model_from_params", "pack", "plan_rows",
           "resolve_buckets", "unpack", "unpack_slots"]
