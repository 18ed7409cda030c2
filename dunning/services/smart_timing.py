"""Smart retry timing in the engine: the learnt model, read once per tick, the slot a case's smart step gets,
and the situation each tick retry is sent in (what the next rebuild learns from).

The maths is in :mod:`dunning.timing` (pure); this module joins it to cases, invoices and cards.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from customers.currencies import minor_unit_exponent
from dunning.models import RetryTimingModel
from dunning.services.planning import CaseSnapshot, VersionRules, smart_window
from dunning.timing.features import FEATURES, RawFeatures, RetryContext, level, raw_features_at
from dunning.timing.model import TimingModel, choose_slot_cached
from dunning.timing.payday import PaydayPattern

if TYPE_CHECKING:
    from dunning.services.batch_load import PlannedCase

_cache_lock = threading.Lock()
# A smart slot replaces the policy's own only when its estimate is this much better (relative).
MIN_GAIN = 0.10
_cached: tuple[int | None, TimingModel] | None = None


def current_model() -> TimingModel:
    """The newest learnt model (priors only before the first ``learn_retry_timing``). One short query; the
    JSON is parsed again only when a newer model was built."""
    global _cached
    newest = RetryTimingModel.objects.order_by("-built_at", "-pk").values_list("pk", flat=True).first()
    with _cache_lock:
        if _cached is not None and _cached[0] == newest:
            return _cached[1]
    model = (
        TimingModel.from_json(RetryTimingModel.objects.get(pk=newest).model)
        if newest is not None
        else TimingModel.empty()
    )
    with _cache_lock:
        _cached = (newest, model)
    _PREDICTIONS.clear()  # the old model's estimates (and the references that keep it alive)
    return model


def payday_of(data: Any) -> PaydayPattern | None:
    if not data:
        return None
    try:
        return PaydayPattern.from_json(data)
    except (KeyError, TypeError, ValueError):
        return None  # written by an older version: the country default applies until the next rebuild


def retry_context(item: PlannedCase, *, retry_number: int) -> RetryContext:
    """What is known about a case's next retry, from the batch's rows (see ``batch_load``)."""
    case, method = item.case, item.method
    customer, invoice = case.customer, case.invoice
    country = (customer.country or (method.country if method else "") or "").upper()
    return RetryContext(
        decline_code=case.decline_code or "generic_decline",
        decline_category=case.decline_category or "soft",
        retry_number=retry_number,
        funding=(method.funding if method else "") or "unknown",
        brand=(method.brand if method else "") or "",
        amount_minor=invoice.amount_due_minor - invoice.amount_paid_minor,
        exponent=minor_unit_exponent(invoice.currency),
        segment=customer.segment or "",
        country=country,
        time_zone=customer.time_zone,
        last_failure_at=case.last_failure_at or case.opened_at,
        payday=payday_of(customer.payday),
    )


@dataclass(frozen=True)
class SlotDecision:
    at: datetime
    retry_timing: dict[str, Any]
    reason: str  # the timeline's sentence
    skipped: bool


def decide_slot(
    model: TimingModel,
    rules: VersionRules,
    snapshot: CaseSnapshot,
    index: int,
    ctx: RetryContext,
    *,
    now: datetime,
) -> SlotDecision:
    """The slot for the smart retry at ``index``: the best estimate in its window, at least the policy's
    spacing after the last failure; skipped (at once) when no slot qualifies or the best is below the
    policy's threshold, so the card's network budget is kept for retries that can work."""
    start, end = smart_window(rules, snapshot, index)
    fixed_at = start
    start, end = max(start, now), max(end, now)
    not_before = ctx.last_failure_at + rules.min_spacing
    record: dict[str, Any] = {
        "step": index,
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
    }
    if not_before > end:
        reason = (
            f"smart retry skipped: no slot in its window is {rules.min_spacing.total_seconds() / 3600:.0f} "
            "hours after the last failure"
        )
        return SlotDecision(now, {**record, "at": now.isoformat(), "skip": reason}, reason, True)
    choice = choose_slot_cached(
        model,
        ctx,
        window_start=start,
        window_end=end,
        not_before=max(not_before, now),
        fixed_at=fixed_at,
    )
    explanation = choice.explain(ctx)
    best_p = choice.estimate.p  # the threshold judges the best the window offers
    # Move away from the policy's own slot only for a real expected gain: the best of many noisy estimates
    # is biased upward, and without this a thin model moved retries for nothing (the simulation).
    policy_slot = max(fixed_at, now)
    if (
        choice.fixed_estimate is not None
        and start <= policy_slot <= end
        and policy_slot >= not_before
        and choice.estimate.p < choice.fixed_estimate.p * (1 + MIN_GAIN)
    ):
        explanation = (
            f"the policy's slot kept: the best other slot is estimated at {choice.estimate.p:.0%} against "
            f"{choice.fixed_estimate.p:.0%} here (n={choice.fixed_estimate.attempts:,}), under the "
            f"{MIN_GAIN:.0%} gain that moving needs"
        )
        choice = replace(choice, at=policy_slot, estimate=choice.fixed_estimate, explanation=explanation)
    record.update(
        at=choice.at.isoformat(),
        p=round(choice.estimate.p, 4),
        n=choice.estimate.attempts,
        explanation=explanation,
        choice=choice.to_json(),
        skip="",
    )
    if best_p < rules.smart_min_success:
        reason = (
            f"smart retry skipped: best estimated success {best_p:.1%} is below the policy's "
            f"{rules.smart_min_success:.1%} threshold ({explanation})"
        )
        record.update(at=now.isoformat(), skip=reason)
        return SlotDecision(now, record, reason, True)
    return SlotDecision(choice.at, record, f"smart retry scheduled: {explanation}", False)


def slot_of(retry_timing: Any) -> tuple[int, datetime, str] | None:
    """The (step, slot, skip reason) stored on a case, for planning."""
    if not retry_timing or retry_timing.get("step") is None or not retry_timing.get("at"):
        return None
    try:
        return (
            int(retry_timing["step"]),
            datetime.fromisoformat(retry_timing["at"]),
            retry_timing.get("skip") or "",
        )
    except (TypeError, ValueError):
        return None


# Keyed on the model object itself (identity hash): a dead model's id can never be mistaken for a new one.
_PREDICTIONS: dict[tuple[TimingModel, str, str, RawFeatures], float] = {}
_PREDICTIONS_MAX = 200_000


def predicted_success(model: TimingModel, ctx: RetryContext, raw: RawFeatures) -> float:
    """The model's estimate for a retry sent in ``raw``'s situation. Memoised: the cases of one tick share
    their situations (same hour, same decline, same kind of card), and an estimate costs ~40 µs."""
    key = (model, ctx.decline_code, ctx.decline_category, raw)
    p = _PREDICTIONS.get(key)
    if p is None:
        if len(_PREDICTIONS) >= _PREDICTIONS_MAX:
            _PREDICTIONS.clear()
        levels = {feature: level(feature, getattr(raw, feature)) for feature in FEATURES}
        p = _PREDICTIONS[key] = round(
            model.estimate_levels(ctx.decline_code, ctx.decline_category, levels).p, 4
        )
    return p


def attempt_features(model: TimingModel, ctx: RetryContext, *, at: datetime, smart: bool) -> dict[str, Any]:
    """The timing columns of a tick retry's attempt row."""
    raw: RawFeatures = raw_features_at(ctx, at)
    return {
        "timing_mode": "smart" if smart else "fixed",
        "retried_decline_code": ctx.decline_code,
        "retried_decline_category": ctx.decline_category,
        "local_weekday": raw.weekday,
        "local_hour": raw.hour,
        "local_day": raw.day_of_month,
        "payday_days": raw.payday_days,
        "hours_since_failure": raw.hours_since_failure,
        "retry_number": raw.retry_number,
        "card_funding": raw.funding,
        "card_brand": raw.brand[:30],
        "amount_band": raw.amount_band,
        "segment": raw.segment[:50],
        "country": raw.country[:2],
        "predicted_success": predicted_success(model, ctx, raw),
    }


TIMING_COLUMNS = (
    "timing_mode",
    "retried_decline_code",
    "retried_decline_category",
    "local_weekday",
    "local_hour",
    "local_day",
    "payday_days",
    "hours_since_failure",
    "retry_number",
    "card_funding",
    "card_brand",
    "amount_band",
    "segment",
    "country",
    "predicted_success",
)
