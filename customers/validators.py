"""Validators shared by models, forms and the CSV importer. Each error names what is wrong."""

from __future__ import annotations

import re
import zoneinfo
from functools import lru_cache

from django.core.exceptions import ValidationError

LOCALE_RE = re.compile(r"^[a-z]{2,3}([-_][A-Za-z]{2,4})?([-_][A-Za-z0-9]{2,8})?$")


@lru_cache(maxsize=1)
def available_time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def validate_time_zone(value: str) -> None:
    if value not in available_time_zones():
        raise ValidationError(
            "%(value)s is not a known IANA time zone (for example Europe/Paris, America/New_York, UTC).",
            code="invalid_time_zone",
            params={"value": repr(value)},
        )


def validate_locale(value: str) -> None:
    if not LOCALE_RE.match(value):
        raise ValidationError(
            "%(value)s is not a locale tag (for example en, en-GB, fr-FR).",
            code="invalid_locale",
            params={"value": repr(value)},
        )
