"""Smart retry timing: a pure, stdlib-only model of when a retry is likely to succeed.

Nothing in this package imports Django or touches a database. The engine feeds it counts of past attempts
(``TimingModel.from_raw_counts``) and a ``RetryContext`` per case, and stores the ``SlotChoice`` it returns.
"""

from dunning.timing.features import (
    FEATURES,
    RawFeatures,
    RetryContext,
    amount_band,
    level,
    levels,
    raw_features_at,
)
from dunning.timing.model import (
    Estimate,
    Evidence,
    SlotChoice,
    TimingModel,
    choose_slot,
    choose_slot_cached,
    clear_slot_cache,
)
from dunning.timing.payday import PaydayPattern, default_payday, detect_payday

__all__ = [
    "FEATURES",
    "Estimate",
    "Evidence",
    "PaydayPattern",
    "RawFeatures",
    "RetryContext",
    "SlotChoice",
    "TimingModel",
    "amount_band",
    "choose_slot",
    "choose_slot_cached",
    "clear_slot_cache",
    "default_payday",
    "detect_payday",
    "level",
    "levels",
    "raw_features_at",
]
