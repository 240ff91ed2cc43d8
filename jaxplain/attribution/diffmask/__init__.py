"""DiffMask (De Cao et al., EMNLP 2020): differentiable masking with Hard Concrete gates.

Train gates once per model with :func:`train_gates` (optax, orbax checkpoints, resumable), then
read attributions with :func:`diffmask` (``[B, T]`` kernel), :func:`keep_probabilities`
(``[B, T, L+2]``) or :func:`explain` (host level, loads gates from a directory). Defaults match
the authors' code (``nicola-decao/diffmask``); departures are named options of
:class:`DiffMaskConfig`.
"""

from jaxplain.attribution.diffmask.checkpoint import load_gates, save_gates
from jaxplain.attribution.diffmask.explain import (check_gates, diffmask, expected_layers_survived,
                                                   explain, keep_probabilities)
from jaxplain.attribution.diffmask.gates import (STRETCH_HIGH, STRETCH_LOW, TEMPERATURE,
                                                 expected_l0, log_expected_l0, sample)
from jaxplain.attribution.diffmask.objective import kl_divergence, lagrangian
from jaxplain.attribution.diffmask.plots import plot_heatmap, plot_survival, words_survival
from jaxplain.attribution.diffmask.probes import Gates, init_gates
from jaxplain.attribution.diffmask.train import (DiffMaskConfig, TrainResult, TrainState,
                                                 evaluate_gates, init_state, make_train_step,
                                                 train_gates)

__all__ = ["DiffMaskConfig", "Gates", "STRETCH_HIGH", "STRETCH_LOW", "TEMPERATURE", "TrainResult",
           "TrainState", "check_gates", "diffmask", "evaluate_gates", "expected_l0",
           "expected_layers_survived", "explain", "init_gates", "init_state", "keep_probabilities",
           "kl_divergence", "lagrangian", "load_gates", "log_expected_l0", "make_train_step",
           "plot_heatmap", "plot_survival", "sample", "save_gates", "train_gates",
           "words_survival"]
