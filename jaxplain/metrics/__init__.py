"""Faithfulness and plausibility metrics, computed on device and vmapped over removal levels.

Faithfulness protocols (ERASER, Mask-LRP/AttCAT, deletion/insertion, Ali et al.) build every
perturbed input on device and run them through one forward; plausibility compares scores with
rationales (or a labelled lexicon proxy); agreement ranks two explainers against each other;
``evaluate`` puts it together with bootstrap intervals.
"""

from jaxplain.metrics._removal import (Removal, apply_removal, forward_compacted, forward_levels,
                                       perturb)
from jaxplain.metrics._removal import removable_mask, removal_masks
from jaxplain.metrics.agreement import kendall_tau_b, rank_agreement, spearman
from jaxplain.metrics.evaluate import METRICS, Evaluation, evaluate, read_dataset
from jaxplain.metrics.faithfulness import (CURVE_FRACTIONS, ERASER_BINS, Protocol, aopc_log_odds,
                                           aopc_log_odds_protocol, au_mse, au_mse_protocol, auac,
                                           auac_protocol, comprehensiveness,
                                           comprehensiveness_protocol, deletion_curves,
                                           deletion_protocol, insertion_curve,
                                           insertion_protocol, perturb_protocols,
                                           reduce_protocols, run_protocols,
                                           run_protocols_compact, sufficiency,
                                           sufficiency_protocol, trapezoid)
from jaxplain.metrics.lexicon import LexiconRationale, lexicon_rationale, read_vader_lexicon
from jaxplain.metrics.plausibility import (auprc, average_precision, iou_f1, plausibility,
                                           precision_recall_f1, rationale_from_spans,
                                           rationale_from_words, to_words, top_k_mask)
from jaxplain.metrics.stats import Interval, bootstrap_ci

__all__ = [
    "CURVE_FRACTIONS", "ERASER_BINS", "Evaluation", "Interval", "LexiconRationale", "METRICS",
    "Protocol", "Removal", "aopc_log_odds", "aopc_log_odds_protocol", "apply_removal", "au_mse",
    "au_mse_protocol", "auac", "auac_protocol", "auprc", "average_precision", "bootstrap_ci",
    "comprehensiveness", "comprehensiveness_protocol", "deletion_curves", "deletion_protocol",
    "evaluate", "forward_compacted", "forward_levels", "insertion_curve", "insertion_protocol",
    "iou_f1", "kendall_tau_b", "lexicon_rationale", "perturb", "perturb_protocols",
    "plausibility", "precision_recall_f1", "rank_agreement", "rationale_from_spans",
    "rationale_from_words", "read_dataset", "read_vader_lexicon", "reduce_protocols",
    "removable_mask", "removal_masks", "run_protocols", "run_protocols_compact", "spearman",
    "sufficiency", "sufficiency_protocol", "to_words", "top_k_mask", "trapezoid",
]
