"""A customer's personal data: erasure on request, and an export of everything held about them.

Erasure anonymises, it does not delete: invoices, amounts, payment attempts, cases and audit rows stay for
the accounts, with the personal values inside them replaced by ``[erased]``. This module erases the
customers layer's rows, then sends ``customers.signals.customer_erasing`` so that every app above erases
its own (message bodies, banners, portal visits, stored webhook payloads) in the same transaction: all or
nothing. One ``customer.erased`` audit row records who, when, why and how many rows of each table changed;
it holds no personal value.

The export gathers each app's rows through ``customer_data_requested`` and is audited too.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from customers.actors import Actor
from customers.models import AccountImport, AuditEvent, Contact, Customer, Invoice, PaymentMethod
from customers.services import audit_record
from customers.signals import customer_data_requested, customer_erasing

ERASED = "[erased]"
# Shorter values ("Al", "X") are erased from their own columns but not searched for in other text, where
# they would match inside unrelated words.
MIN_SEARCHED_LENGTH = 3
EXPORT_FORMAT = "dunning-customer-data/1"


class CustomerAlreadyErased(Exception):
    pass


@dataclass(frozen=True)
class Erasure:
    """What to erase: the customer, and the personal values to find wherever the customer's rows hold text.

    ``external_id`` and ``gateway_customer_id`` stay: they are the keys the accounts (and the gateway's own
    records) are kept under, and identify nobody without the values erased here.
    """

    customer_id: int
    external_id: str
    gateway_customer_id: str
    values: tuple[str, ...]
    emails: tuple[str, ...] = field(default=())

    @classmethod
    def for_customer(cls, customer: Customer, contacts: Iterable[tuple[str, str]]) -> Erasure:
        names = [customer.name, customer.company, *(name for name, _ in contacts)]
        emails = [customer.email, *(email for _, email in contacts)]
        clean_emails = sorted({e.strip().lower() for e in emails if e and e.strip()})
        values = {v.strip() for v in [*names, *clean_emails] if v and v.strip()}
        return cls(
            customer_id=customer.pk,
            external_id=customer.external_id,
            gateway_customer_id=customer.gateway_customer_id,
            values=tuple(sorted(values, key=lambda v: (-len(v), v))),
            emails=tuple(clean_emails),
        )

    @cached_property
    def _pattern(self) -> re.Pattern[str] | None:
        searched = [re.escape(v) for v in self.values if len(v) >= MIN_SEARCHED_LENGTH]
        return re.compile("|".join(searched), re.IGNORECASE) if searched else None

    def scrub_text(self, text: str) -> str:
        """``text`` with every personal value replaced by ``[erased]`` (case-insensitive)."""
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(ERASED, text)

    def scrub(self, value: Any) -> Any:
        """A JSON-like value (strings, lists, dicts; keys included) with every personal value erased."""
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, list):
            return [self.scrub(item) for item in value]
        if isinstance(value, dict):
            return {self.scrub_text(str(k)): self.scrub(v) for k, v in value.items()}
        return value

    def text_filter(self, column: str, *, searched: Sequence[str] | None = None) -> Q:
        """Rows whose ``column`` (text or JSON, read as text) mentions one of the values.

        JSON is compared both as stored on PostgreSQL and with non-ASCII characters escaped (``\\u00e9``),
        as SQLite stores it. A full scan: erasure is rare, and its correctness matters more than its speed.
        """
        condition = Q(pk__in=[])
        for value in searched if searched is not None else self.values:
            if len(value) < MIN_SEARCHED_LENGTH:
                continue
            for variant in {value, json.dumps(value)[1:-1]}:
                condition |= Q(**{f"{column}__icontains": variant})
        return condition

    def scrub_rows(self, queryset: QuerySet[Any], fields: Sequence[str], *, text_search: bool = False) -> int:
        """Erase the personal values in ``fields`` of these rows; returns how many rows changed.

        With ``text_search`` the queryset is narrowed to rows whose fields mention a value first (one
        scan) instead of reading every row.
        """
        if text_search:
            condition = Q(pk__in=[])
            annotations = {}
            for name in fields:
                alias = f"_erasure_{name}"
                annotations[alias] = Cast(name, TextField())
                condition |= self.text_filter(alias)
            queryset = queryset.annotate(**annotations).filter(condition)
        model = queryset.model
        changed = []
        for row in queryset.values("pk", *fields).iterator(chunk_size=1000):
            scrubbed = {name: self.scrub(row[name]) for name in fields}
            if any(scrubbed[name] != row[name] for name in fields):
                changed.append(model(pk=row["pk"], **scrubbed))
        model.objects.bulk_update(changed, list(fields), batch_size=500)
        return len(changed)


@dataclass(frozen=True)
class ErasureReport:
    customer_id: int
    rows: dict[str, int]
    audit_event_id: int


def customer_erase(*, customer: Customer, actor: Actor, reason: str) -> ErasureReport:
    """Anonymise a customer on request (right to erasure), in one transaction, and audit it.

    Raises :class:`CustomerAlreadyErased`, or ``ValueError`` without a reason (the audit must say why).
    """
    reason = reason.strip()
    if not reason:
        raise ValueError("Say why the customer is erased (for example: 'request by email of 2026-03-02').")
    now = timezone.now()
    with transaction.atomic():
        locked = Customer.objects.select_for_update().get(pk=customer.pk)
        if locked.erased_at is not None:
            raise CustomerAlreadyErased(
                f"{locked.external_id} was already erased on {locked.erased_at:%Y-%m-%d}."
            )
        contacts = list(Contact.objects.filter(customer=locked).values_list("name", "email"))
        erasure = Erasure.for_customer(locked, contacts)
        rows: Counter[str] = Counter()
        rows["customers.contact"] = Contact.objects.filter(customer=locked).delete()[0]
        rows["customers.customer"] = Customer.objects.filter(pk=locked.pk).update(
            name=f"Erased customer {locked.pk}", email="", company="", erased_at=now, updated_at=now
        )
        rows["customers.invoice"] = erasure.scrub_rows(Invoice.objects.filter(customer=locked), ["lines"])
        rows["customers.auditevent"] = erasure.scrub_rows(
            AuditEvent.objects.filter(Q(customer=locked) | Q(invoice__customer=locked)), ["reason", "details"]
        ) + erasure.scrub_rows(
            # Rows about the customer's addresses that name no customer (a bounce, say).
            AuditEvent.objects.filter(customer__isnull=True, invoice__isnull=True),
            ["reason", "details"],
            text_search=True,
        )
        rows["customers.accountimport"] = erasure.scrub_rows(
            AccountImport.objects.all(), ["report"], text_search=True
        )
        for _receiver, result in customer_erasing.send(sender=Customer, erasure=erasure):
            rows.update(result or {})
        event = audit_record(
            actor=actor,
            action="customer.erased",
            customer=locked,
            reason=erasure.scrub_text(reason),
            details={"rows": {table: count for table, count in sorted(rows.items()) if count}},
        )
    return ErasureReport(customer_id=locked.pk, rows=dict(rows), audit_event_id=event.pk)


# --- Export ----------------------------------------------------------------------------------------------------


def rows_of(queryset: QuerySet[Any], *, exclude: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Every concrete column of these rows (foreign keys as ids), for the export."""
    skipped = set(exclude)
    names = [f.attname for f in queryset.model._meta.concrete_fields if f.attname not in skipped]
    return list(queryset.values(*names))


def customer_data_export(*, customer: Customer, actor: Actor) -> dict[str, Any]:
    """Everything held about a customer, by app and table, as JSON-ready data; the export is audited."""
    data: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "exported_at": timezone.now(),
        "customer": rows_of(Customer.objects.filter(pk=customer.pk))[0],
        "contacts": rows_of(Contact.objects.filter(customer=customer).order_by("pk")),
        "payment_methods": rows_of(PaymentMethod.objects.filter(customer=customer).order_by("pk")),
        "invoices": rows_of(Invoice.objects.filter(customer=customer).order_by("pk")),
        "audit_events": rows_of(
            AuditEvent.objects.filter(Q(customer=customer) | Q(invoice__customer=customer)).order_by("pk")
        ),
    }
    for _receiver, result in customer_data_requested.send(sender=Customer, customer=customer):
        data.update(result or {})
    audit_record(
        actor=actor,
        action="customer.data_exported",
        customer=customer,
        details={"sections": {k: len(v) for k, v in sorted(data.items()) if isinstance(v, list)}},
    )
    return data


def customer_data_json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, cls=DjangoJSONEncoder, indent=2, ensure_ascii=False).encode()


def personal_fields(model: type[models.Model]) -> list[str]:
    """The text and JSON columns of a model (what an erasure has to look at)."""
    return [
        f.name
        for f in model._meta.concrete_fields
        if isinstance(f, models.CharField | models.TextField | models.JSONField)
    ]
