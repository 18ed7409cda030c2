"""Decline classification: processor + code -> category and customer message."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import F

from dunning.models import DeclineCategory, DeclineCode

GENERIC_CODE = "generic_decline"


@dataclass(frozen=True)
class Classification:
    processor: str
    code: str
    category: str
    customer_message: str
    is_classified: bool


class DeclineTable:
    """The whole decline table, read once (a few dozen rows) and used for a tick's every decision."""

    def __init__(self) -> None:
        self._rows = {
            (row.processor, row.code): row
            for row in DeclineCode.objects.only(
                "processor", "code", "category", "customer_message", "is_classified"
            )
        }

    def customer_message(self, code: str) -> str:
        """The customer message for a code, whichever processor reported it (card codes first)."""
        for processor in ("stripe", "ach", "internal"):
            row = self._rows.get((processor, code))
            if row is not None:
                return row.customer_message
        return ""

    def lookup(self, processor: str, code: str) -> Classification:
        row = self._rows.get((processor, code))
        if row is None:
            # Unknown codes are treated as soft (retry) until staff classify them.
            return Classification(processor, code, DeclineCategory.SOFT, "", is_classified=False)
        return Classification(processor, code, row.category, row.customer_message, row.is_classified)


def normalise(processor: str, code: str) -> tuple[str, str]:
    return (processor or "stripe").strip().lower(), (code or GENERIC_CODE).strip()


def decline_codes_record_seen(*, seen: Iterable[tuple[str, str]], table: DeclineTable, now: datetime) -> None:
    """Create rows for codes never seen before (unclassified, soft) and count sightings of unclassified ones.

    Staff see them under "Unclassified codes seen" in the admin and can classify them there.
    """
    counts = Counter(seen)
    unclassified = {key: n for key, n in counts.items() if not table.lookup(*key).is_classified}
    if not unclassified:
        return
    DeclineCode.objects.bulk_create(
        [
            DeclineCode(
                processor=processor,
                code=code,
                category=DeclineCategory.SOFT,
                is_classified=False,
                staff_description="Seen at run time and not classified yet: treated as soft.",
                first_seen_at=now,
            )
            for processor, code in unclassified
        ],
        ignore_conflicts=True,
    )
    for (processor, code), n in unclassified.items():
        DeclineCode.objects.filter(processor=processor, code=code, is_classified=False).update(
            times_seen=F("times_seen") + n, last_seen_at=now
        )


def decline_classify(*, processor: str, code: str, now: datetime) -> Classification:
    """Classify one decline and record it if it is unknown (for single charges outside the tick)."""
    processor, code = normalise(processor, code)
    table = DeclineTable()
    decline_codes_record_seen(seen=[(processor, code)], table=table, now=now)
    return table.lookup(processor, code)
