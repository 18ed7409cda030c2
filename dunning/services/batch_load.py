"""Reading a tick batch: claiming due cases, then loading them with what planning needs, in one query."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate

from django.db import connection
from django.db.models import Count, FilteredRelation, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce

from customers.bulk import instances_from_values
from customers.models import Customer, Invoice, PaymentMethod
from dunning.models import (
    INITIAL_TOKEN_VERSION,
    SETTLED_STATUSES,
    AttemptSource,
    CaseState,
    DeclineCategory,
    DunningCase,
    PaymentAttempt,
    PolicyVersion,
)
from dunning.portal.tokens import PRELOADED_TOKEN_VERSION
from dunning.services.cases import CASE_MUTABLE_FIELDS
from dunning.services.planning import NETWORK_WINDOW, CasePlan, CaseSnapshot, VersionRules, plan_case
from dunning.services.retry_owner import gateway_owns_retries
from dunning.services.smart_timing import slot_of


@dataclass
class PlannedCase:
    case: DunningCase
    plan: CasePlan
    snapshot: CaseSnapshot
    rules: VersionRules
    method: PaymentMethod | None
    # The gateway id of the hard-declined method: never charged again, even as the gateway's default.
    blocked_ref: str = ""


class Versions:
    """Published versions never change, so a tick reads each one once and shares it between cases."""

    def __init__(self) -> None:
        self._versions: dict[int, PolicyVersion] = {}
        self._rules: dict[int, VersionRules] = {}

    def attach(self, cases: list[DunningCase]) -> None:
        missing = {case.policy_version_id for case in cases} - self._versions.keys()
        for version in PolicyVersion.objects.filter(pk__in=missing):
            self._versions[version.pk] = version
            self._rules[version.pk] = VersionRules(
                version.steps,
                version.max_retries,
                version.network_retry_cap,
                smart_min_success=version.smart_min_success_percent / 100,
                min_spacing=timedelta(hours=version.retry_min_spacing_hours),
            )
        for case in cases:
            _VERSION_CACHE.set_cached_value(case, self._versions[case.policy_version_id])

    def __getitem__(self, version_id: int) -> VersionRules:
        return self._rules[version_id]


def claim_due_cases(
    *, now: datetime, limit: int, lease: timedelta, lease_start: datetime | None = None
) -> tuple[str, datetime] | None:
    """Lease up to ``limit`` due cases to one batch; returns the batch's claim token (None: nothing due).

    Cases another tick holds are skipped, never waited on. PostgreSQL: ``FOR NO KEY UPDATE SKIP LOCKED`` in
    due-time-then-id order, so concurrent ticks take disjoint sets. NO KEY: a plain FOR UPDATE would block
    the foreign-key check of a concurrent attempt insert (a staff retry, the portal) at its commit, and
    deadlock against our own insert. SQLite: one writer at a time, so the conditional UPDATE is atomic.
    The token lets the batch read its cases back with one parameter instead of a thousand ids. A lease
    that ends exactly now has ended. Returns (token, lease end), or None when nothing is due.
    """
    lease_start = lease_start or now
    until = lease_start + lease
    table = DunningCase._meta.db_table
    lock = "FOR NO KEY UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
    token = uuid.uuid4().hex
    sql = f"""
        UPDATE {table} SET claimed_until = %s, claim_token = %s
        WHERE id IN (
            SELECT id FROM {table}
            WHERE state = %s AND next_action_at <= %s AND (claimed_until IS NULL OR claimed_until <= %s)
            ORDER BY next_action_at, id
            LIMIT %s {lock}
        )
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [until, token, CaseState.OPEN, now, lease_start, limit])
        return (token, until) if cursor.rowcount else None


# What planning, charging and the writer need, read in one query as plain values (see ``load_batch``).
# Invoice lines, customer contacts and the like stay in the database.
CASE_COLUMNS = (
    "id",
    "invoice_id",
    "customer_id",
    "policy_version_id",
    # Every column the writer saves, except the two every batch sets itself (``updated_at`` by the
    # writer, ``claimed_until`` released by ``tick_batch._record_batch``): a timestamp costs the driver to read.
    *(
        DunningCase._meta.get_field(name).attname
        for name in CASE_MUTABLE_FIELDS
        if name not in ("updated_at", "claimed_until")
    ),
    "version",
    "amount_minor",
    "currency",
    "opened_at",
)
INVOICE_COLUMNS = (
    "id",
    "customer_id",
    "number",
    "status",
    "amount_due_minor",
    "amount_paid_minor",
    "currency",
    "gateway",
    "gateway_invoice_id",
)
CUSTOMER_COLUMNS = (
    "id",
    "external_id",
    "name",
    "time_zone",
    "locale",
    "gateway_customer_id",
    # Smart timing's context (dunning.services.smart_timing.retry_context).
    "segment",
    "country",
    "payday",
)
METHOD_COLUMNS = (
    "id",
    "customer_id",
    "type",
    "gateway_payment_method_id",
    "is_default",
    "brand",
    "funding",
    "country",
)
_VERSION_CACHE = DunningCase._meta.get_field("policy_version")
_INVOICE_CACHE = DunningCase._meta.get_field("invoice")
_CUSTOMER_CACHE = DunningCase._meta.get_field("customer")
_INVOICE_CUSTOMER_CACHE = Invoice._meta.get_field("customer")


def load_batch(
    claim_token: str | None, *, now: datetime, limit: int, versions: Versions
) -> list[PlannedCase]:
    """Read the cases (or, for a dry run, the first due ones) with what planning needs, in one query.

    Each row brings its case, invoice, customer, default payment method, the invoice's last attempt
    number and the method's attempts in the last 30 days (the card network cap). Rows come back as
    values and become model instances without ``Model.__init__``: at 2,000 cases a batch, building
    8,000 instances the usual way cost more than every statement of the batch together.
    """
    last_number = (
        PaymentAttempt.objects.filter(invoice=OuterRef("invoice_id")).order_by("-number").values("number")[:1]
    )
    recent_attempts = (
        PaymentAttempt.objects.filter(
            payment_method__customer=OuterRef("customer_id"),
            payment_method__is_default=True,
            created_at__gte=now - NETWORK_WINDOW,
        )
        .order_by()
        .values("payment_method__customer")
        .annotate(n=Count("id"))
        .values("n")
    )
    # The last retry step carried out: settled, and not a processing error the policy repeats soon.
    last_retry_step = (
        PaymentAttempt.objects.filter(
            case=OuterRef("id"), source=AttemptSource.RETRY, status__in=SETTLED_STATUSES
        )
        .exclude(processed=True, decline_category=DeclineCategory.PROCESSING)
        .order_by("-step_index")
        .values("step_index")[:1]
    )
    rows = DunningCase.objects.annotate(
        default_method=FilteredRelation(
            "customer__payment_methods", condition=Q(customer__payment_methods__is_default=True)
        ),
        last_attempt_number=Coalesce(Subquery(last_number), 0),
        network_attempts=Coalesce(Subquery(recent_attempts), 0),
        last_retry_step=Subquery(last_retry_step),
    )
    if claim_token is None:
        rows = rows.filter(state=CaseState.OPEN, next_action_at__lte=now).order_by("next_action_at", "id")[
            :limit
        ]
    else:
        rows = rows.filter(claim_token=claim_token, claimed_until__gt=now).order_by("id")
    lookups = [
        *CASE_COLUMNS,
        *(f"invoice__{name}" for name in INVOICE_COLUMNS),
        *(f"customer__{name}" for name in CUSTOMER_COLUMNS),
        *(f"default_method__{name}" for name in METHOD_COLUMNS),
        "customer__portal_access__token_version",
        "hard_declined_payment_method__gateway_payment_method_id",
        "last_attempt_number",
        "network_attempts",
        "last_retry_step",
    ]
    values = list(rows.values_list(*lookups))
    ends = list(
        accumulate((len(CASE_COLUMNS), len(INVOICE_COLUMNS), len(CUSTOMER_COLUMNS), len(METHOD_COLUMNS)))
    )
    cases = instances_from_values(DunningCase, CASE_COLUMNS, (row[: ends[0]] for row in values))
    invoices = instances_from_values(Invoice, INVOICE_COLUMNS, (row[ends[0] : ends[1]] for row in values))
    customers = instances_from_values(Customer, CUSTOMER_COLUMNS, (row[ends[1] : ends[2]] for row in values))
    methods = instances_from_values(
        PaymentMethod, METHOD_COLUMNS, (row[ends[2] : ends[3]] for row in values if row[ends[2]] is not None)
    )
    method_by_customer = {method.customer_id: method for method in methods}
    versions.attach(cases)
    planned = []
    for case, invoice, customer, row in zip(cases, invoices, customers, values, strict=True):
        case.loaded_state = case.state
        case.loaded_version = case.version  # the writer updates the row only if nobody wrote it since
        token_version, blocked_ref, case.last_attempt_number, network_attempts, last_retry_step = row[-5:]
        customer.__dict__[PRELOADED_TOKEN_VERSION] = token_version or INITIAL_TOKEN_VERSION
        _INVOICE_CACHE.set_cached_value(case, invoice)
        _CUSTOMER_CACHE.set_cached_value(case, customer)
        _INVOICE_CUSTOMER_CACHE.set_cached_value(invoice, customer)
        method = method_by_customer.get(case.customer_id)
        snapshot = CaseSnapshot(
            opened_at=case.opened_at,
            time_zone=customer.time_zone,
            schedule_shift=timedelta(seconds=case.schedule_shift_seconds),
            next_step_index=case.next_step_index,
            retry_count=case.retry_count,
            decline_category=case.decline_category,
            hard_declined_payment_method_id=case.hard_declined_payment_method_id,
            default_payment_method_id=method.pk if method else None,
            network_attempts_30d=network_attempts if method else 0,
            gateway_owns_retries=gateway_owns_retries(
                gateway=invoice.gateway, gateway_invoice_id=invoice.gateway_invoice_id
            ),
            last_retry_step=last_retry_step,
            smart_slot=slot_of(case.retry_timing),
        )
        rules = versions[case.policy_version_id]
        planned.append(
            PlannedCase(case, plan_case(rules, snapshot, now), snapshot, rules, method, blocked_ref or "")
        )
    return planned
