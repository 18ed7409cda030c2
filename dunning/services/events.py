"""Case events are written through a buffer so a batch of cases costs one INSERT, not one per case."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from customers.actors import Actor
from customers.services import AuditBuffer
from dunning.models import CaseEvent


class EventBuffer:
    """Collects CaseEvent rows (and account audit rows) for one transaction; one INSERT each on flush."""

    def __init__(self) -> None:
        self.events: list[CaseEvent] = []
        self.audit = AuditBuffer()

    def add(
        self,
        *,
        case_id: int,
        kind: str,
        actor: Actor,
        at: datetime,
        reason: str = "",
        details: dict[str, Any] | None = None,
        from_state: str = "",
        to_state: str = "",
        step_index: int | None = None,
    ) -> None:
        self.events.append(
            CaseEvent(
                case_id=case_id,
                kind=kind,
                occurred_at=at,
                reason=reason,
                details=details or {},
                from_state=from_state,
                to_state=to_state,
                step_index=step_index,
                **actor.audit_fields(),
            )
        )

    def flush(self) -> int:
        count = len(self.events)
        if self.events:
            CaseEvent.objects.bulk_create(self.events)
            self.events = []
        self.audit.flush()
        return count
