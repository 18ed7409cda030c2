"""What the weekly rollup adds up, defined once: the model's columns and the SQL that computes them.

Every measure is a per-case value (a SQL expression over one ``reporting_casefact`` row, alias ``f``) that
adds up. The rollup stores the sums per week and dimensions; reads add rollup rows for whole weeks to the
same expressions evaluated on the case facts of the days at either end of a range, so the two agree by
construction.
"""

from __future__ import annotations

from dataclasses import dataclass

from dunning.models import CaseState, RecoveryChannel

DAY = 86_400
RECOVERED = CaseState.RECOVERED.value
AT_RISK_STATES = (CaseState.OPEN.value, CaseState.PAUSED.value)
CHURN_STATES = (CaseState.EXHAUSTED.value, CaseState.CANCELLED.value)


@dataclass(frozen=True)
class Bucket:
    """Time to recovery in whole days elapsed, ``first`` to ``last`` inclusive (``last`` None: open-ended)."""

    key: str
    label: str
    first: int
    last: int | None


TIME_TO_RECOVERY_BUCKETS: tuple[Bucket, ...] = (
    Bucket("0_1", "0–1 days", 0, 1),
    Bucket("2_3", "2–3 days", 2, 3),
    Bucket("4_7", "4–7 days", 4, 7),
    Bucket("8_14", "8–14 days", 8, 14),
    Bucket("15_30", "15–30 days", 15, 30),
    # "30+" in the product's words: more than 30 whole days, so 31 and over.
    Bucket("30_plus", "30+ days", 31, None),
)

# Portal recoveries sit together: from an email link, from a banner link, and from a link whose origin is
# unknown (a forwarded email, a link the customer asked for). Add the three for "all portal recoveries".
CHANNELS: tuple[tuple[str, str], ...] = (
    (RecoveryChannel.SILENT_RETRY.value, "Silent retry"),
    (RecoveryChannel.EMAIL_PORTAL.value, "Email → portal"),
    (RecoveryChannel.BANNER_PORTAL.value, "Banner → portal"),
    (RecoveryChannel.PORTAL.value, "Portal, other link"),
    (RecoveryChannel.CARD_UPDATED.value, "Card updated (account updater or customer)"),
    (RecoveryChannel.STAFF.value, "Staff action"),
    (RecoveryChannel.PAID_OUTSIDE.value, "Paid outside (webhook)"),
)
PORTAL_CHANNELS = frozenset(
    {RecoveryChannel.EMAIL_PORTAL.value, RecoveryChannel.BANNER_PORTAL.value, RecoveryChannel.PORTAL.value}
)

# Retries ranked 1 to RETRY_RANKS have their own columns; later ones share an "over" column. Policies cap
# retries at 4-6 in practice, so the curve has flattened long before.
RETRY_RANKS = 10


def _quote(value: str) -> str:
    """A code constant as a SQL literal. Only our own identifiers-like values ever reach this."""
    if not value.replace("_", "").isalnum():
        raise ValueError(f"not a plain constant: {value!r}")
    return f"'{value}'"


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(_quote(v) for v in values) + ")"


def _flag(condition: str) -> str:
    return f"CASE WHEN {condition} THEN 1 ELSE 0 END"


def _build() -> dict[str, str]:
    recovered = f"f.state = {_quote(RECOVERED)}"
    at_risk = f"f.state IN {_in(AT_RISK_STATES)}"
    measures = {
        "cases": "1",
        "failed_amount_minor": "f.amount_minor",
        "recovered": _flag(recovered),
        "recovered_amount_minor": "f.recovered_amount_minor",
        "at_risk": _flag(at_risk),
        "at_risk_amount_minor": f"CASE WHEN {at_risk} THEN f.amount_minor ELSE 0 END",
        "messages_sent": "f.messages_sent",
    }
    for bucket in TIME_TO_RECOVERY_BUCKETS:
        condition = f"f.recovery_seconds >= {bucket.first * DAY}"
        if bucket.last is not None:
            condition += f" AND f.recovery_seconds < {(bucket.last + 1) * DAY}"
        measures[f"ttr_{bucket.key}"] = _flag(condition)
    for channel, _label in CHANNELS:
        measures[f"channel_{channel}"] = _flag(f"f.recovery_channel = {_quote(channel)}")
        measures[f"channel_{channel}_amount_minor"] = (
            f"CASE WHEN f.recovery_channel = {_quote(channel)} THEN f.recovered_amount_minor ELSE 0 END"
        )
    for rank in range(1, RETRY_RANKS + 1):
        measures[f"retry_attempts_{rank}"] = _flag(f"f.retries >= {rank}")
        measures[f"retry_succeeded_{rank}"] = _flag(f"f.success_rank = {rank}")
    measures["retry_attempts_over"] = (
        f"CASE WHEN f.retries > {RETRY_RANKS} THEN f.retries - {RETRY_RANKS} ELSE 0 END"
    )
    measures["retry_succeeded_over"] = _flag(f"f.success_rank > {RETRY_RANKS}")
    return measures


# name -> SQL expression over one case fact ``f``. Order is the column order everywhere.
MEASURES: dict[str, str] = _build()

# The dimensions every metric can be filtered or grouped by, as (rollup column, case fact column).
DIMENSIONS: tuple[tuple[str, str], ...] = (
    ("week_start", "opened_week"),
    ("currency", "currency"),
    ("policy_id", "policy_id"),
    ("policy_version_id", "policy_version_id"),
    ("segment", "segment"),
    ("first_decline_category", "first_decline_category"),
    ("first_decline_code", "first_decline_code"),
)
