"""The same facts for one customer and for one case, computed live from the source tables.

They use the very SQL that fills the case facts and the measures the dashboard sums, so a customer's page
agrees with the dashboard, and it is current to the second rather than to the last tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Case, IntegerField, Q, QuerySet, Value, When, Window
from django.db.models.functions import RowNumber

from customers.models import Customer, Invoice
from dunning.models import AttemptSource, AttemptStatus, DunningCase, DunningPolicy, PaymentAttempt
from notifications.models import Notification
from notifications.selectors import notifications_for_case
from reporting import sql
from reporting.measures import MEASURES
from reporting.selectors.dashboard import ratio

CASE_LIMIT = 200
CASE_PAGE_FIELDS = ("invoice_id", "invoice_number", "policy_label")


@dataclass(frozen=True)
class CaseFacts:
    case_id: int
    customer_id: int
    opened_at: datetime
    currency: str
    segment: str
    policy_version_id: int
    first_decline_category: str
    first_decline_code: str
    state: str
    amount_minor: int
    recovered_amount_minor: int
    recovery_channel: str
    recovered_at: datetime | None
    closed_at: datetime | None
    recovery_seconds: int | None
    retries: int
    success_rank: int
    messages_sent: int
    invoice_id: int
    invoice_number: str
    policy_label: str

    @property
    def days_to_recovery(self) -> float | None:
        return None if self.recovery_seconds is None else round(self.recovery_seconds / 86_400, 1)


@dataclass(frozen=True)
class AccountTotals:
    """One currency's totals over a customer's cases: the dashboard's measures, summed."""

    currency: str
    cases: int
    failed_minor: int
    recovered: int
    recovered_minor: int
    at_risk: int
    at_risk_minor: int
    messages_sent: int

    @property
    def recovery_rate(self) -> float | None:
        return ratio(self.recovered, self.cases)

    @property
    def recovery_rate_by_value(self) -> float | None:
        return ratio(self.recovered_minor, self.failed_minor)


@dataclass(frozen=True)
class CustomerReport:
    customer: Customer
    totals: list[AccountTotals]
    median_hours: float | None
    cases: list[CaseFacts]
    case_count: int

    @property
    def median_days(self) -> float | None:
        return None if self.median_hours is None else round(self.median_hours / 24, 1)

    @property
    def truncated(self) -> bool:
        return self.case_count > len(self.cases)


# Extra columns for the pages: the invoice and a readable policy version.
EXTRAS = (
    f", c.invoice_id AS invoice_id,"
    f" (SELECT i.number FROM {Invoice._meta.db_table} i WHERE i.id = c.invoice_id) AS invoice_number,"
    f" (SELECT p.name FROM {DunningPolicy._meta.db_table} p WHERE p.id = pv.policy_id)"
    f" || ' v' || CAST(pv.number AS TEXT) AS policy_label"
)
# CaseFact columns the pages keep (the week and the policy id are for grouping only).
KEPT = [column for column in sql.FACT_COLUMNS if column not in ("opened_week", "policy_id")]


def _facts(where: str, params: list[Any], suffix: str = "") -> list[CaseFacts]:
    columns = [*sql.FACT_COLUMNS, *CASE_PAGE_FIELDS]
    with connection.cursor() as cursor:
        cursor.execute(sql.fact_select(where, extra_columns=EXTRAS, suffix=suffix), params)
        rows = cursor.fetchall()
    facts = []
    for row in rows:
        values = dict(zip(columns, row, strict=True))
        facts.append(CaseFacts(**{name: _value(name, values[name]) for name in [*KEPT, *CASE_PAGE_FIELDS]}))
    return facts


def _value(name: str, value: Any) -> Any:
    """Raw SQL on SQLite returns datetimes as text."""
    if name in ("opened_at", "recovered_at", "closed_at") and isinstance(value, str):
        return connection.ops.convert_datetimefield_value(value, None, connection)  # type: ignore[attr-defined]
    return value


def customer_report(*, customer: Customer) -> CustomerReport:
    """The customer's totals per currency, median time to recovery and latest cases: four queries."""
    live = sql.fact_select("c.customer_id = %s")
    totals_measures = (
        "cases",
        "failed_amount_minor",
        "recovered",
        "recovered_amount_minor",
        "at_risk",
        "at_risk_amount_minor",
        "messages_sent",
    )
    sums = ", ".join(f"SUM({MEASURES[name]})" for name in totals_measures)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT f.currency, {sums} FROM ({live}) f GROUP BY f.currency ORDER BY f.currency",
            [customer.pk],
        )
        totals = [AccountTotals(row[0], *(int(v) for v in row[1:])) for row in cursor.fetchall()]
        recovered = f"SELECT m.policy_version_id, m.recovery_seconds / 3600 AS hours FROM ({live}) m WHERE m.recovery_seconds IS NOT NULL"
        cursor.execute(sql.hour_medians(recovered), [customer.pk])
        medians = {version: float(median) for version, median in cursor.fetchall()}
    cases = _facts(
        "c.customer_id = %s", [customer.pk], suffix=f"ORDER BY c.opened_at DESC, c.id DESC LIMIT {CASE_LIMIT}"
    )
    return CustomerReport(
        customer=customer,
        totals=totals,
        median_hours=medians.get(None),
        cases=cases,
        case_count=sum(total.cases for total in totals),
    )


@dataclass(frozen=True)
class CaseReport:
    case: DunningCase
    facts: CaseFacts
    attempts: list[PaymentAttempt]
    messages: list[Notification]


def _attempts(case: DunningCase) -> QuerySet[PaymentAttempt]:
    """The case's attempts, each settled retry with its rank among them (the rank the dashboard counts)."""
    is_retry = Case(
        When(
            ~Q(source=AttemptSource.INITIAL) & Q(status__in=[AttemptStatus.SUCCEEDED, AttemptStatus.FAILED]),
            then=Value(1),
        ),
        default=Value(0),
        output_field=IntegerField(),
    )
    return (
        PaymentAttempt.objects.filter(case=case)
        .select_related("payment_method")
        .annotate(is_retry=is_retry, rank=Window(RowNumber(), partition_by=[is_retry], order_by="number"))
        .order_by("number")
    )


def case_report(*, case: DunningCase) -> CaseReport:
    facts = _facts("c.id = %s", [case.pk])[0]
    return CaseReport(
        case=case,
        facts=facts,
        attempts=list(_attempts(case)),
        messages=list(notifications_for_case(case_ref=case.pk)[:100]),
    )
