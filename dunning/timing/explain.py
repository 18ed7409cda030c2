"""The sentence shown on a case for a chosen retry slot.

Example: "Fri 16 Jan 09:00 local: day after the 15th (US usual payday); insufficient_funds, debit, retry 2: 38 %
(n=1,204), vs 17 % at the fixed slot". It names the local time, the main reason (payday first, because it is the
reason staff ask about; otherwise the time feature that adds most), the decline, card and retry number the
estimate is for, the probability with the attempts behind it, and the fixed schedule's probability.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from dunning.timing.features import TIME_FEATURES, effective_payday, zone

if TYPE_CHECKING:
    from dunning.timing.features import RetryContext
    from dunning.timing.model import Estimate

PAYDAY_WINDOW_DAYS = 2
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
SINCE_FAILURE_PHRASES = {
    "<6h": "within 6 hours of the failure",
    "6-24h": "6 to 24 hours after the failure",
    "1-3d": "1 to 3 days after the failure",
    "3-7d": "3 to 7 days after the failure",
    "7d+": "a week or more after the failure",
}


def percent(p: float) -> str:
    return f"{p * 100:.0f} %"


def _payday_reason(ctx: RetryContext, local: datetime) -> str | None:
    pattern = effective_payday(ctx)
    if pattern is None:
        return None
    payday = pattern.last_payday_on_or_before(local.date())
    if payday is None:
        return None
    days = (local.date() - payday).days
    if days > PAYDAY_WINDOW_DAYS:
        return None
    label = pattern.payday_label(payday)
    lead = {0: f"on {label}", 1: f"day after {label}"}.get(days, f"{days} days after {label}")
    whose = "customer's payday" if ctx.payday is not None else f"usual payday in {ctx.country.upper()}"
    return f"{lead} ({whose})"


def _time_reason(estimate: Estimate) -> str:
    strongest = max(
        (part for part in estimate.parts if part.feature in TIME_FEATURES),
        key=lambda part: part.contribution,
        default=None,
    )
    if strongest is None or strongest.contribution <= 0:
        return "no time stands out; the policy's hour kept"
    feature, level_name = strongest.feature, strongest.level
    if feature == "hour":
        return f"{level_name} h is the best hour block"
    if feature == "weekday":
        return f"{level_name.capitalize()} is a good day"
    if feature == "day_of_month":
        return f"day {level_name} of the month does well"
    if feature == "hours_since_failure":
        return SINCE_FAILURE_PHRASES.get(level_name, level_name)
    return f"{level_name} days after payday"


def explain_choice(
    ctx: RetryContext,
    *,
    at: datetime,
    estimate: Estimate,
    fixed_estimate: Estimate | None,
) -> str:
    local = at.astimezone(zone(ctx.time_zone))
    reason = _payday_reason(ctx, local) or _time_reason(estimate)
    funding = ctx.funding or "unknown"
    evidence = f"n={estimate.attempts:,}" if estimate.attempts else "n=0, built-in priors only"
    text = (
        f"{local:%a %d %b %H:%M} local: {reason}; {ctx.decline_code}, {funding}, retry {ctx.retry_number}: "
        f"{percent(estimate.p)} ({evidence})"
    )
    if fixed_estimate is not None:
        text += f", vs {percent(fixed_estimate.p)} at the fixed slot"
    return text
