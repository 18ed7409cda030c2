"""Send guards: last-moment checks, registered by higher layers, run right before a message leaves.

This app must not import ``dunning``, yet a message must not go out once its case is closed. So the
dunning app registers a guard at start-up (in its ``AppConfig.ready``)::

    from notifications.guards import register_send_guard

    def case_still_open(notification):
        if notification.case_ref is not None and not DunningCase.objects.filter(
            pk=notification.case_ref, state="open"
        ).exists():
            return "case no longer open"
        return None

    register_send_guard(case_still_open)

The dispatcher calls every registered guard for every customer reminder (staff alerts, and messages
queued with ``only_while_unpaid=False`` such as the recovered confirmation, are not guarded), after it has claimed the row and after its
own invoice check (a paid, void or uncollectible invoice suppresses the row), and immediately before
sending. A guard returns ``None`` to let the message go, or a short reason: the row then becomes
``suppressed`` with that reason, and nothing is sent. A guard that raises counts as a transient error:
the row is retried later rather than sent unchecked.

Guards receive the ``Notification`` row (``case_ref``, ``step_ref``, ``customer_id``, ``invoice_id``,
``template_key``, ``audience``...). They run outside the dunning tick, so a query per row is acceptable;
``prefetch_guard`` lets a guard load what it needs for a whole batch in one query first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from notifications.models import Notification

SendGuard = Callable[["Notification"], "str | None"]
BatchPrefetch = Callable[[Sequence["Notification"]], None]

_guards: list[SendGuard] = []
_prefetchers: list[BatchPrefetch] = []


def register_send_guard(guard: SendGuard, *, prefetch: BatchPrefetch | None = None) -> SendGuard:
    """Register ``guard`` (idempotent, so a module reloaded in development does not register twice).

    ``prefetch``, if given, is called once per dispatch batch with all its rows before the guard runs.
    Usable as a decorator.
    """
    if guard not in _guards:
        _guards.append(guard)
    if prefetch is not None and prefetch not in _prefetchers:
        _prefetchers.append(prefetch)
    return guard


def unregister_send_guard(guard: SendGuard) -> None:
    if guard in _guards:
        _guards.remove(guard)


def registered_guards() -> tuple[SendGuard, ...]:
    return tuple(_guards)


def prefetch_guards(notifications: Sequence[Notification]) -> None:
    for prefetch in list(_prefetchers):
        prefetch(notifications)


def check_guards(notification: Notification) -> str | None:
    """The first reason a registered guard gives for not sending, or None."""
    for guard in list(_guards):
        reason = guard(notification)
        if reason:
            return str(reason)
    return None
