"""Parsing the moments and periods commands accept: ISO dates and times, or "48h" / "7d" ago."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta

from django.core.management.base import CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

AGO = re.compile(r"^(\d+)\s*([mhd])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str, *, now: datetime | None = None) -> datetime:
    """``2026-05-01``, ``2026-05-01T09:00:00Z`` or a period back from now (``90m``, ``48h``, ``7d``)."""
    now = now or timezone.now()
    text = value.strip()
    ago = AGO.match(text)
    if ago:
        return now - timedelta(**{UNITS[ago.group(2)]: int(ago.group(1))})
    moment = parse_datetime(text)
    if moment is not None:
        return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)
    day = parse_date(text)
    if day is not None:
        return datetime.combine(day, time(0), tzinfo=UTC)
    raise CommandError(f"--since {value!r}: give a date (2026-05-01), a time (2026-05-01T09:00Z) or 48h / 7d")
