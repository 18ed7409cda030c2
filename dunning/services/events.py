"""Case events are written through a buffer so a batch of cases costs one INSERT, not one per case."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from customers.actors import Actor
from customers.bulk import insert_rows
from customers.services import AuditBuffer
from dunning.models import CaseEvent

EVENT_COLUMNS = (
    "case",
    "occurred_at",
    "kind",
    "actor_type",
    "actor_user",
    "actor_label",
    "from_state",
    "to_state",
    "step_index",
    "reason",
    "details",
)


class EventBuffer:
    """Collects CaseEvent rows (and account audit rows) for one transaction; one INSERT each on flush.

    Rows are kept as plain tuples: a tick batch writes thousands, and model instances would cost more
    than the database does.
    """

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
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
        self.rows.append(
            (
                case_id,
                at,
                kind,
                actor.type,
                actor.user.pk if actor.user is not None else None,
                actor.label[:150],
                from_state,
                to_state,
                step_index,
                reason,
                details or {},
            )
        )

    def flush(self) -> int:
        count = len(self.rows)
        if self.rows:
            insert_rows(CaseEvent, EVENT_COLUMNS, self.rows)
            self.rows = []
        self.audit.flush()
        return count
