"""Transactions that retry themselves after a deadlock or a serialization failure.

Locks are taken in one order everywhere (invoice, then case, then attempt, each by ascending id), so
deadlocks should not happen between our own paths; other writers (imports, the admin, raw SQL) can still
meet ours in another order. PostgreSQL then aborts one transaction. Its work must not be lost and its
process must not die: the transaction that was chosen runs again from the start, a few times, after a
random pause, and each retry is logged.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import DatabaseError, connection, transaction

logger = logging.getLogger(__name__)
T = TypeVar("T")

# SQLSTATEs of the failures that a fresh try of the same transaction can get past.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure
DEFAULT_TRIES = 8
BASE_PAUSE_SECONDS = 0.02
MAX_PAUSE_SECONDS = 1.0


def is_retryable(error: BaseException) -> bool:
    cause: BaseException | None = error
    while cause is not None:
        if (
            getattr(cause, "sqlstate", None) in RETRYABLE_SQLSTATES
            or getattr(cause, "pgcode", None) in RETRYABLE_SQLSTATES
        ):
            return True
        cause = cause.__cause__
    return False


def in_transaction(work: Callable[[], T], *, what: str, tries: int = DEFAULT_TRIES) -> T:
    """Run ``work`` in a transaction; after a deadlock or serialization failure, roll back and run it again.

    ``work`` must be safe to repeat: it starts from the same inputs each time and keeps nothing from an
    aborted try (build buffers and counters inside it). Inside a caller's transaction it runs in a
    savepoint, which is rolled back before the next try.
    """
    for attempt in range(1, tries + 1):
        try:
            with transaction.atomic():
                return work()
        except DatabaseError as error:
            if not is_retryable(error) or attempt == tries or connection.needs_rollback:
                raise
            pause = min(MAX_PAUSE_SECONDS, BASE_PAUSE_SECONDS * 2**attempt) * random.uniform(0.5, 1.5)
            logger.warning(
                "%s: %s (try %d of %d); running it again in %.0f ms",
                what,
                "deadlock" if "deadlock" in str(error) else "serialization failure",
                attempt,
                tries,
                pause * 1000,
            )
            time.sleep(pause)
    raise AssertionError("unreachable")
