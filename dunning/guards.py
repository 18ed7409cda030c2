"""The send guard dunning registers with notifications: no reminder leaves once its case has closed."""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING

from dunning.models import CaseState, DunningCase

if TYPE_CHECKING:
    from notifications.models import Notification

ACTIVE_STATES = frozenset({CaseState.OPEN, CaseState.PAUSED})
_states: ContextVar[dict[int, str] | None] = ContextVar("dunning_case_states", default=None)


def prefetch_case_states(notifications: Sequence[Notification]) -> None:
    """One query for a dispatch batch, instead of one per message."""
    refs = {n.case_ref for n in notifications if n.case_ref is not None}
    _states.set(dict(DunningCase.objects.filter(pk__in=refs).values_list("pk", "state")) if refs else {})


def case_still_active(notification: Notification) -> str | None:
    if notification.case_ref is None:
        return None
    states = _states.get()
    state = states.get(notification.case_ref) if states is not None else None
    if state is None:
        state = DunningCase.objects.filter(pk=notification.case_ref).values_list("state", flat=True).first()
    # Cases are never deleted, so an unknown reference is not one of ours: let the other checks decide.
    if state is not None and state not in ACTIVE_STATES:
        return f"the dunning case is {state}"
    return None
