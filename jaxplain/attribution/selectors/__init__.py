"""Attention-based interpretation models and their combinatorial shortcuts (Bai et al. 2021)."""

from jaxplain.attribution.selectors.checkpoint import Selector, load_selector, save_selector
from jaxplain.attribution.selectors.explain import attention_pooling, l2x
from jaxplain.attribution.selectors.models import KINDS
from jaxplain.attribution.selectors.relaxed import hard_top_k, relaxed_top_k
from jaxplain.attribution.selectors.train import (TrainConfig, instance_weights, predict,
                                                  shortcut_probe, train, train_instance_weighted,
                                                  train_random_pretrained)

__all__ = ["KINDS", "Selector", "TrainConfig", "attention_pooling", "hard_top_k",
           "instance_weights", "l2x", "load_selector", "predict", "relaxed_top_k",
           "save_selector", "shortcut_probe", "train", "train_instance_weighted",
           "train_random_pretrained"]
