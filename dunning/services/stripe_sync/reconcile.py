"""Healing missed webhooks, and importing a Stripe account.

Reconciliation (``reconcile_stripe``, hourly when ``PAYMENT_GATEWAY=stripe``):
1. lists Stripe's events of every handled type since a moment (Stripe keeps them 30 days), stores the
   ones the inbox lacks (source "reconcile") and processes them oldest first, like webhooks;
2. re-reads every open Stripe invoice we track and follows Stripe where it moved on (paid, void,
   uncollectible).
Both steps are idempotent: a second run finds every event stored and every invoice already settled.

Import (``import_stripe``): customers, their cards and their open invoices, for a first connection or a
backfill. Open invoices whose payment already failed
at Stripe get their dunning case.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from customers.actors import Actor
from customers.models import Invoice, InvoiceStatus
from dunning.gateways import GatewayError
from dunning.gateways.stripe import StripeGateway
from dunning.gateways.stripe_objects import customer_default_method_id, method_details
from dunning.models import DunningCase, StripeEvent, StripeEventSource, StripeEventStatus
from dunning.services.stripe_sync.common import STRIPE, EventDeferred, stripe_gateway
from dunning.services.stripe_sync.handlers import HANDLED_EVENT_TYPES
from dunning.services.stripe_sync.inbox import stripe_event_process, stripe_event_store
from dunning.services.stripe_sync.invoices import (
    FINAL_AT_STRIPE,
    stripe_invoice_payment_failed,
    stripe_invoice_settled,
)
from dunning.services.stripe_sync.records import (
    stripe_customer_upsert,
    stripe_invoice_local,
    stripe_payment_method_record,
)

STRIPE_EVENT_RETENTION = timedelta(days=30)
RECONCILE_ACTOR = Actor.system("stripe reconciliation")
IMPORT_ACTOR = Actor.system("stripe import")


@dataclass
class SyncSummary:
    title: str
    counts: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    # Why the run stopped early (Stripe unreachable, a listing refused); what it did before stays done.
    error: str = ""

    def lines(self) -> list[str]:
        lines = [self.title]
        lines += [f"  {key}: {self.counts[key]}" for key in sorted(self.counts) if self.counts[key]]
        lines += [f"  ! {note}" for note in self.notes]
        if self.error:
            lines.append(f"stopped early: {self.error}")
        return lines


Progress = Callable[[SyncSummary], None]


def _reconcile_events(
    gateway: StripeGateway, since: datetime, summary: SyncSummary, progress: Progress | None
) -> None:
    stored: list[int] = []
    for event_type in HANDLED_EVENT_TYPES:
        for event in gateway.iter_events(event_type=event_type, created_gte=since):
            summary.counts["events listed"] += 1
            result = stripe_event_store(event=event, source=StripeEventSource.RECONCILE, process=False)
            if result.pk is not None:
                stored.append(result.pk)
                summary.counts["events missed (stored now)"] += 1
            if progress is not None and summary.counts["events listed"] % 100 == 0:
                progress(summary)
    # Oldest first, as Stripe sent them; then anything left "received" (lost tasks) since the same moment.
    pending = (
        StripeEvent.objects.filter(status=StripeEventStatus.RECEIVED, stripe_created_at__gte=since)
        .order_by("stripe_created_at", "id")
        .values_list("pk", flat=True)
    )
    for pk in list(pending):
        status = stripe_event_process(pk=pk)
        summary.counts[f"events {status or 'busy'}"] += 1


def _reconcile_invoices(gateway: StripeGateway, summary: SyncSummary, progress: Progress | None) -> None:
    open_invoices = (
        Invoice.objects.filter(gateway=STRIPE, status=InvoiceStatus.OPEN)
        .exclude(gateway_invoice_id="")
        .order_by("id")
        .values_list("gateway_invoice_id", flat=True)
    )
    for index, invoice_ref in enumerate(open_invoices.iterator(), start=1):
        summary.counts["open invoices re-read"] += 1
        data = gateway.fetch_invoice(invoice_ref)
        if data.get("status") in FINAL_AT_STRIPE:
            try:
                stripe_invoice_settled(
                    gateway=gateway, invoice_id=invoice_ref, actor=RECONCILE_ACTOR, data=data
                )
            except EventDeferred:
                summary.counts["invoices left for the next run (charge in flight)"] += 1
            else:
                summary.counts[f"invoices closed as {data['status']}"] += 1
        if progress is not None and index % 100 == 0:
            progress(summary)


def stripe_reconcile(
    *,
    since: datetime,
    gateway: StripeGateway | None = None,
    events: bool = True,
    invoices: bool = True,
    progress: Progress | None = None,
) -> SyncSummary:
    now = timezone.now()
    summary = SyncSummary(title=f"reconciled with Stripe since {since:%Y-%m-%d %H:%M} UTC")
    if since < now - STRIPE_EVENT_RETENTION:
        summary.notes.append("Stripe keeps events for 30 days: older ones cannot be listed")
        since = now - STRIPE_EVENT_RETENTION
    owns = gateway is None
    gateway = gateway or stripe_gateway()
    try:
        if events:
            _reconcile_events(gateway, since, summary, progress)
        if invoices:
            _reconcile_invoices(gateway, summary, progress)
    finally:
        if owns:
            gateway.close()
    return summary


def stripe_reconcile_scheduled() -> SyncSummary:
    since = timezone.now() - timedelta(hours=settings.STRIPE_RECONCILE_LOOKBACK_HOURS)
    return stripe_reconcile(since=since)


def _import_customer(gateway: StripeGateway, data: dict[str, object], summary: SyncSummary) -> None:
    customer = stripe_customer_upsert(data=data, actor=IMPORT_ACTOR)
    summary.counts["customers"] += 1
    default_ref = customer_default_method_id(data)
    for method in gateway.iter_card_methods(customer_id=str(data["id"])):
        _, changed = stripe_payment_method_record(
            customer=customer,
            details=method_details(method),
            make_default=method["id"] == default_ref,
            actor=IMPORT_ACTOR,
        )
        summary.counts["payment methods stored" if changed else "payment methods unchanged"] += 1


def _import_invoice(
    gateway: StripeGateway, data: dict[str, object], summary: SyncSummary, open_cases: bool
) -> None:
    invoice = stripe_invoice_local(gateway=gateway, data=data, actor=IMPORT_ACTOR)
    if invoice is None:
        return
    summary.counts["open invoices"] += 1
    failed = bool(data.get("attempted")) and int(str(data.get("attempt_count") or 0)) > 0
    if not (open_cases and failed) or DunningCase.objects.filter(invoice=invoice).exists():
        return
    try:
        stripe_invoice_payment_failed(gateway=gateway, invoice_id=str(data["id"]), actor=IMPORT_ACTOR)
    except EventDeferred:
        summary.counts["cases left for later (a charge is in flight)"] += 1
        return
    if DunningCase.objects.filter(invoice=invoice).exists():
        summary.counts["cases opened for invoices that already failed"] += 1


def stripe_import(
    *,
    since: datetime | None = None,
    open_cases: bool = True,
    gateway: StripeGateway | None = None,
    progress: Progress | None = None,
    batch_size: int = 100,
) -> SyncSummary:
    """Backfill customers (with their cards) and open invoices, reporting progress every ``batch_size``.

    Each object is written in its own short transaction (the services are atomic): nothing waits on Stripe
    while holding a transaction, and an interrupted import resumes by running again.
    """
    period = f" created since {since:%Y-%m-%d}" if since else ""
    summary = SyncSummary(title=f"imported from Stripe{period}")
    owns = gateway is None
    gateway = gateway or stripe_gateway()
    stage = "listing customers"
    try:
        for index, customer in enumerate(gateway.iter_customers(created_gte=since), start=1):
            _import_customer(gateway, customer, summary)
            if progress is not None and index % batch_size == 0:
                progress(summary)
        stage = "listing open invoices"
        for index, invoice in enumerate(gateway.iter_invoices(status="open", created_gte=since), start=1):
            _import_invoice(gateway, invoice, summary, open_cases)
            if progress is not None and index % batch_size == 0:
                progress(summary)
    except GatewayError as error:
        # What was imported stays (each object is its own transaction); running again resumes.
        summary.error = (
            f"{stage} failed: {error}. Everything above was imported; run the command again to resume."
        )
    finally:
        if owns:
            gateway.close()
    return summary
