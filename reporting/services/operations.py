"""The figures of the metrics endpoint that must be written down as they happen: every tick adds its counts
(``dunning.signals.tick_finished``), in whichever process it runs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import F

from reporting.models import OperationsFigure

# Tick summary keys that say the gateway gave no usable answer, and the error kind they count as.
GATEWAY_ERROR_KINDS = {".unknown": "no_answer", "reconcile.unreachable": "truth_query_failed"}


def gateway_error_kind(key: str) -> str | None:
    """``retry.unknown`` (any ``<source>.unknown``) -> ``no_answer``; ``reconcile.unreachable`` ->
    ``truth_query_failed``; other keys are not gateway errors."""
    for suffix, kind in GATEWAY_ERROR_KINDS.items():
        if key.endswith(suffix):
            return kind
    return None


def _add(name: str, amount: float, *, now: datetime) -> None:
    if OperationsFigure.objects.filter(name=name).update(value=F("value") + amount, updated_at=now):
        return
    try:
        with transaction.atomic():
            OperationsFigure.objects.create(name=name, value=amount, updated_at=now)
    except IntegrityError:  # another tick process created it meanwhile
        OperationsFigure.objects.filter(name=name).update(value=F("value") + amount, updated_at=now)


def _set(name: str, value: float, *, now: datetime) -> None:
    OperationsFigure.objects.update_or_create(name=name, defaults={"value": value, "updated_at": now})


def tick_figures_record(
    *, counts: Mapping[str, int], cases: int, duration_seconds: float | None, finished_at: datetime
) -> None:
    """Add one finished tick to the counters and make it the last tick."""
    with transaction.atomic():
        _add("ticks", 1, now=finished_at)
        _add("tick_cases", cases, now=finished_at)
        for kind, count in counts.items():
            if count:
                _add(f"tick_actions:{kind}", count, now=finished_at)
                error_kind = gateway_error_kind(kind)
                if error_kind:
                    _add(f"gateway_errors:{error_kind}", count, now=finished_at)
        if duration_seconds is not None:
            _add("timed_ticks", 1, now=finished_at)
            _add("tick_seconds", duration_seconds, now=finished_at)
            _set("last_tick_duration_seconds", duration_seconds, now=finished_at)
        _set("last_tick_finished_at", finished_at.timestamp(), now=finished_at)
        _set("last_tick_cases", cases, now=finished_at)
