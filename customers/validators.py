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


# C0 controls (NUL among them: PostgreSQL refuses it in text) and DEL. Tab, line feed and carriage return
# are controls too: an identifier never holds them.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
# Half of a UTF-16 pair, which JSON's \\ud800 escapes can produce: no database can store it as UTF-8.
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
EXTERNAL_ID_MAX_LENGTH = 100


def text_problem(value: str) -> str | None:
    """Why text from outside cannot be stored or looked up as it is, or None when it can."""
    if _CONTROL_CHARACTERS.search(value):
        return "must not contain control characters (such as NUL)"
    if _LONE_SURROGATE.search(value):
        return "must be valid Unicode text"
    return None


def external_id_problem(value: object) -> str | None:
    """Why ``value`` is not a customer external id that could exist (a string of 1-100 printable
    characters), or None. For the API edges: the answer is a 400, never a database error."""
    if not isinstance(value, str):
        return "must be a string"
    if not value.strip():
        return "is required"
    if len(value) > EXTERNAL_ID_MAX_LENGTH:
        return f"must be at most {EXTERNAL_ID_MAX_LENGTH} characters"
    return text_problem(value)


def json_text_problem(value: object, *, depth: int = 0) -> str | None:
    """Why a parsed JSON document holds text no database column can take (NUL, lone surrogates), or None.

    Walks keys and values; more than 100 levels of nesting is refused too.
    """
    if depth > 100:
        return "is nested too deeply"
    if isinstance(value, str):
        return "must not contain NUL characters" if "\x00" in value else _surrogate_problem(value)
    if isinstance(value, dict):
        for key, item in value.items():
            problem = json_text_problem(key, depth=depth + 1) or json_text_problem(item, depth=depth + 1)
            if problem:
                return problem
    elif isinstance(value, list):
        for item in value:
            if problem := json_text_problem(item, depth=depth + 1):
                return problem
    return None


def _surrogate_problem(value: str) -> str | None:
    return "must be valid Unicode text" if _LONE_SURROGATE.search(value) else None


_COUNTRY = re.compile(r"^[A-Z]{2}$")


def validate_country(value: str) -> None:
    """An ISO 3166-1 alpha-2 code in capitals (US, GB, DE), or blank."""
    if value and not _COUNTRY.match(value):
        raise ValidationError(
            "Enter a two-letter country code in capitals (ISO 3166), e.g. US or DE.", code="invalid_country"
        )
