"""Invariant 1 with Stripe (PostgreSQL, committed data, real threads, localstripe): a webhook-driven
retry racing a tick pays the Stripe invoice once; one event delivered twice at once is processed once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connections
from django.test import Client
from django.utils import timezone

from dunning.models import (
    AttemptStatus,
    CaseState,
    DunningCase,
    PaymentAttempt,
    StripeEvent,
    StripeEventStatus,
)
from dunning.services.stripe_sync import stripe_event_process, stripe_event_store, stripe_events_sweep
from dunning.services.tick import run_tick
from tests.support import stripe_account as cards
from tests.support.stripe_account import StripeAccount, deliver

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("dunning_seeds", "fixed_default_policy"),
]


def race(*work: Callable[[], object]) -> list[BaseException]:
    start = threading.Barrier(len(work))
    errors: list[BaseException] = []

    def run(job: Callable[[], object]) -> None:
        try:
            start.wait()
            job()
        except BaseException as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(job,)) for job in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.parametrize("round_number", range(3))
def test_a_new_card_webhook_racing_a_tick_retry_pays_the_stripe_invoice_once(
    stripe_account: StripeAccount, client: Client, round_number: int
) -> None:
    customer, _, invoice = stripe_account.failed_invoice(card=cards.DECLINE_AFTER_ATTACH)
    assert deliver(client, stripe_account.last_event("invoice.payment_failed")).status_code == 200
    case = DunningCase.objects.get()
    stripe_account.card(customer.id, "5555555555554444")  # the new default card
    changed = stripe_event_store(event=stripe_account.last_event("customer.updated"), process=False)
    assert changed.pk is not None

    errors = race(
        lambda: run_tick(now=case.opened_at + timedelta(days=2)),
        lambda: stripe_event_process(pk=changed.pk),
    )
    assert errors == []
    # Whatever waited for the other runs now (the sweep picks up a deferred event).
    stripe_events_sweep(now=timezone.now() + timedelta(minutes=6))

    payments = stripe_account.sdk.v1.invoice_payments.list(params={"invoice": invoice.id, "limit": 100}).data
    assert [p.status for p in payments].count("paid") == 1
    assert PaymentAttempt.objects.filter(status=AttemptStatus.SUCCEEDED).count() == 1
    assert not PaymentAttempt.objects.filter(
        status__in=[AttemptStatus.PENDING, AttemptStatus.UNKNOWN]
    ).exists()
    case.refresh_from_db()
    assert case.state == CaseState.RECOVERED
    assert StripeEvent.objects.get(pk=changed.pk).status == StripeEventStatus.PROCESSED


def test_one_event_delivered_twice_at_once_is_stored_and_processed_once(
    stripe_account: StripeAccount,
) -> None:
    stripe_account.failed_invoice()
    event = stripe_account.last_event("invoice.payment_failed")
    answers: list[int] = []
    errors = race(*[lambda: answers.append(deliver(Client(), event).status_code) for _ in range(2)])
    assert errors == []
    assert answers == [200, 200]
    row = StripeEvent.objects.get()
    assert (row.status, row.attempts) == (StripeEventStatus.PROCESSED, 1)
    assert DunningCase.objects.count() == 1
    assert PaymentAttempt.objects.count() == 1
