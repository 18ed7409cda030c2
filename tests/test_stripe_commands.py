"""reconcile_stripe, import_stripe and replay_webhooks over localstripe; the schedules; the inbox admin."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from customers.models import Customer, Invoice, InvoiceStatus, PaymentMethod
from dunning.models import (
    CaseState,
    DunningCase,
    PaymentAttempt,
    StripeEvent,
    StripeEventSource,
    StripeEventStatus,
)
from dunning.schedules import schedules
from dunning.services.stripe_sync import stripe_event_store
from tests.support import stripe_account as cards
from tests.support.stripe_account import StripeAccount, make_event

pytestmark = pytest.mark.django_db


def run(command: str, *args: str) -> str:
    out = StringIO()
    call_command(command, *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_reconcile_stores_and_processes_the_events_webhooks_missed_and_a_second_run_does_nothing(
    stripe_account: StripeAccount,
) -> None:
    customer, _, invoice = stripe_account.failed_invoice()  # no webhook ever arrived
    output = run("reconcile_stripe", "--since", "1h")
    assert "events missed (stored now)" in output
    case = DunningCase.objects.get()
    assert case.invoice.gateway_invoice_id == invoice.id
    row = StripeEvent.objects.get(type="invoice.payment_failed")
    assert (row.source, row.status) == (StripeEventSource.RECONCILE, StripeEventStatus.PROCESSED)

    stripe_account.card(customer.id, cards.GOOD_CARD)  # the new default card is retried at once
    run("reconcile_stripe", "--since", "1h")
    case.refresh_from_db()
    assert case.state == CaseState.RECOVERED
    attempts = PaymentAttempt.objects.count()
    # Our own payment made Stripe emit invoice.paid: the next run stores it and finds nothing to change.
    assert "events missed (stored now): 2" in run("reconcile_stripe", "--since", "1h")
    assert PaymentAttempt.objects.count() == attempts
    stored = StripeEvent.objects.count()

    again = run("reconcile_stripe", "--since", "1h")
    assert "events missed" not in again
    assert (StripeEvent.objects.count(), PaymentAttempt.objects.count()) == (stored, attempts)


def test_reconcile_re_reads_open_invoices_stripe_settled_without_telling_us(
    stripe_account: StripeAccount,
) -> None:
    customer, _, invoice = stripe_account.failed_invoice()
    run("reconcile_stripe", "--since", "1h")
    stripe_account.sdk.v1.invoices.void_invoice(invoice.id)
    output = run("reconcile_stripe", "--invoices-only")
    assert "invoices closed as void: 1" in output
    assert DunningCase.objects.get().state == CaseState.CANCELLED
    assert Invoice.objects.get().status == InvoiceStatus.VOID


def test_reconcile_needs_a_stripe_key(settings) -> None:  # type: ignore[no-untyped-def]
    settings.STRIPE_SECRET_KEY = ""
    with pytest.raises(CommandError, match="STRIPE_SECRET_KEY"):
        run("reconcile_stripe")


def test_import_backfills_customers_cards_and_open_invoices_idempotently(
    stripe_account: StripeAccount,
) -> None:
    linked = stripe_account.customer(email="linked@example.com", metadata={"external_id": "acct-7"})
    Customer.objects.create(external_id="acct-7", name="Already here", email="linked@example.com")
    stripe_account.card(linked.id, cards.GOOD_CARD)
    stripe_account.card(linked.id, "5555555555554444", default=False)
    failing, _, failed_invoice = stripe_account.failed_invoice()
    other = stripe_account.customer(email="open@example.com")
    stripe_account.card(other.id, cards.GOOD_CARD)
    open_invoice = stripe_account.invoice(other.id, amount=1200)  # finalized, never attempted

    output = run("import_stripe", "--batch-size", "1")
    assert "customers: 3" in output
    assert Customer.objects.get(external_id="acct-7").gateway_customer_id == linked.id
    assert PaymentMethod.objects.filter(customer__gateway_customer_id=linked.id).count() == 2
    assert PaymentMethod.objects.get(customer__gateway_customer_id=linked.id, is_default=True).last4 == "4242"
    assert set(Invoice.objects.values_list("gateway_invoice_id", flat=True)) == {
        failed_invoice.id,
        open_invoice.id,
    }
    # Only the invoice whose payment already failed gets a case.
    assert list(DunningCase.objects.values_list("invoice__gateway_invoice_id", flat=True)) == [
        failed_invoice.id
    ]

    counts = (
        Customer.objects.count(),
        PaymentMethod.objects.count(),
        Invoice.objects.count(),
        DunningCase.objects.count(),
    )
    again = run("import_stripe")
    assert "payment methods stored" not in again
    assert counts == (
        Customer.objects.count(),
        PaymentMethod.objects.count(),
        Invoice.objects.count(),
        DunningCase.objects.count(),
    )


def test_import_stripe_stops_with_a_clear_error_when_listing_invoices_fails(
    stripe_account: StripeAccount,
) -> None:
    customer = stripe_account.customer(email="kept@example.com")
    stripe_account.card(customer.id, cards.GOOD_CARD)
    stripe_account.server.fault("/v1/invoices", "before", method="GET", times=10)
    out = StringIO()
    with pytest.raises(CommandError, match="listing open invoices failed: .*run the command again to resume"):
        call_command("import_stripe", stdout=out, stderr=StringIO())
    assert "customers: 1" in out.getvalue()  # what was imported before the failure is said, and kept
    assert Customer.objects.filter(gateway_customer_id=customer.id).exists()


def test_replay_webhooks_reruns_failed_events(stripe_account: StripeAccount) -> None:
    with pytest.raises(CommandError, match="Say which events"):
        run("replay_webhooks")
    customer, _, invoice = stripe_account.failed_invoice()
    event = stripe_account.last_event("invoice.payment_failed")
    stripe_event_store(event=event, process=False)
    StripeEvent.objects.update(status=StripeEventStatus.FAILED, error="boom")
    assert "1 event(s) to replay" in run("replay_webhooks", "--failed", "--dry-run")
    assert StripeEvent.objects.get().status == StripeEventStatus.FAILED
    output = run("replay_webhooks", "--failed")
    assert "processed: 1" in output
    assert DunningCase.objects.filter(invoice__gateway_invoice_id=invoice.id).exists()
    assert "0 event(s)" in run("replay_webhooks", "--failed")
    # By id, whatever the status: nothing changes the second time.
    assert "processed: 1" in run("replay_webhooks", "--id", event["id"])
    assert PaymentAttempt.objects.count() == 1


def test_stripe_schedules_exist_only_with_the_stripe_gateway(settings) -> None:  # type: ignore[no-untyped-def]
    settings.PAYMENT_GATEWAY = "simulated"
    assert not [s["name"] for s in schedules() if "Stripe" in s["name"]]
    settings.PAYMENT_GATEWAY = "stripe"
    by_name = {s["name"]: s for s in schedules()}
    assert by_name["dunning: reconcile with Stripe"]["func"] == "dunning.tasks.reconcile_stripe"
    assert by_name["dunning: reconcile with Stripe"]["minutes"] == 60
    assert by_name["dunning: sweep the Stripe inbox"]["func"] == "dunning.tasks.sweep_stripe_events"


def test_the_inbox_admin_lists_filters_and_replays_with_permission(
    stripe_account: StripeAccount, staff_user, client: Client
) -> None:  # type: ignore[no-untyped-def]
    stripe_event_store(event=make_event("balance.available", {"id": "bal_1"}), process=False)
    stripe_event_store(event=make_event("invoice.paid", {"id": "in_gone"}), process=False)
    staff_user.user_permissions.add(Permission.objects.get(codename="view_stripeevent"))
    client.force_login(staff_user)
    url = reverse("admin:dunning_stripeevent_changelist")
    page = client.get(url, {"type": "invoice.paid"})
    assert page.status_code == 200
    assert page.content.count(b"invoice.paid") >= 1
    assert b"balance.available</td>" not in page.content
    detail = client.get(reverse("admin:dunning_stripeevent_change", args=[StripeEvent.objects.first().pk]))
    assert detail.status_code == 200

    pks = [str(pk) for pk in StripeEvent.objects.values_list("pk", flat=True)]
    refused = client.post(url, {"action": "replay", "_selected_action": pks}, follow=True)
    assert refused.status_code == 200
    assert (
        StripeEvent.objects.filter(status=StripeEventStatus.RECEIVED).count() == 2
    )  # no permission: nothing ran

    staff_user.user_permissions.add(Permission.objects.get(codename="replay_stripeevent"))
    done = client.post(url, {"action": "replay", "_selected_action": pks}, follow=True)
    assert b"Replayed 2 event(s)" in done.content
    statuses = dict(StripeEvent.objects.values_list("type", "status"))
    assert statuses == {
        "balance.available": StripeEventStatus.IGNORED,
        "invoice.paid": StripeEventStatus.FAILED,
    }


def test_the_inbox_changelist_costs_the_same_queries_for_n_and_2n_events(admin_client: Client) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    url = reverse("admin:dunning_stripeevent_changelist")

    def queries_for(count: int) -> int:
        for _ in range(count):
            stripe_event_store(event=make_event("invoice.paid", {"id": "in_x"}), process=False)
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(url).status_code == 200
        return len(captured.captured_queries)

    assert queries_for(5) == queries_for(5)  # 5 rows, then 10 rows
