"""POST /webhooks/stripe/: signatures checked with the SDK, events stored once, processed after commit."""

from __future__ import annotations

import json
import time

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from dunning.models import StripeEvent, StripeEventStatus
from dunning.services.stripe_sync import stripe_event_process, stripe_event_store, stripe_events_sweep
from tests.support.stripe_account import (
    OLD_WEBHOOK_SECRET,
    WEBHOOK_SECRET,
    StripeAccount,
    deliver,
    make_event,
    sign,
)

pytestmark = pytest.mark.django_db


def _unknown_event() -> dict[str, object]:
    return make_event("balance.available", {"id": "bal_1", "object": "balance"})


def test_a_bad_signature_is_refused_and_nothing_is_stored(
    client: Client, stripe_account: StripeAccount
) -> None:
    response = deliver(client, _unknown_event(), secret="whsec_someone_else")
    assert response.status_code == 400
    assert "signature" in response.json()["error"]
    assert not StripeEvent.objects.exists()


def test_a_missing_signature_is_refused(client: Client, stripe_account: StripeAccount) -> None:
    response = client.post(
        "/webhooks/stripe/", data=json.dumps(_unknown_event()), content_type="application/json"
    )
    assert response.status_code == 400
    assert not StripeEvent.objects.exists()


def test_a_stale_timestamp_is_refused_as_a_replay(client: Client, stripe_account: StripeAccount) -> None:
    response = deliver(client, _unknown_event(), timestamp=int(time.time()) - 301)
    assert response.status_code == 400
    assert "tolerance" in response.json()["error"]
    assert not StripeEvent.objects.exists()


def test_a_tampered_body_is_refused(client: Client, stripe_account: StripeAccount) -> None:
    payload = json.dumps(_unknown_event())
    header = sign(payload)
    tampered = payload.replace("balance.available", "invoice.paid")
    response = deliver(client, tampered, signature=header)
    assert response.status_code == 400
    assert not StripeEvent.objects.exists()


def test_a_non_utf8_body_is_a_bad_signature_not_a_stored_payload(
    client: Client, stripe_account: StripeAccount
) -> None:
    response = client.post(
        "/webhooks/stripe/",
        data=b"\xff\xfe not utf-8",
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=f"t={int(time.time())},v1=00",
    )
    assert response.status_code == 400
    assert not StripeEvent.objects.exists()


def test_every_secret_of_a_rotation_is_accepted(
    client: Client, stripe_account: StripeAccount, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.STRIPE_WEBHOOK_SECRET = [WEBHOOK_SECRET, OLD_WEBHOOK_SECRET]
    assert deliver(client, _unknown_event(), secret=OLD_WEBHOOK_SECRET).status_code == 200
    assert deliver(client, _unknown_event(), secret=WEBHOOK_SECRET).status_code == 200
    assert StripeEvent.objects.count() == 2


def test_only_post_is_accepted(client: Client, stripe_account: StripeAccount) -> None:
    assert client.get("/webhooks/stripe/").status_code == 405


def test_an_unknown_event_type_is_stored_and_ignored(
    client: Client, stripe_account: StripeAccount, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    event = _unknown_event()
    with django_capture_on_commit_callbacks(execute=True):
        response = deliver(client, event)
    assert response.status_code == 200
    assert response.json() == {"received": True, "duplicate": False}
    row = StripeEvent.objects.get()
    assert (row.event_id, row.type, row.status) == (
        event["id"],
        "balance.available",
        StripeEventStatus.IGNORED,
    )
    assert "no handler" in row.result
    assert row.payload == event
    assert row.processed_at is not None


def test_a_replayed_duplicate_is_answered_and_does_nothing(
    client: Client, stripe_account: StripeAccount, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    event = _unknown_event()
    with django_capture_on_commit_callbacks(execute=True) as first:
        deliver(client, event)
    with django_capture_on_commit_callbacks(execute=True) as second:
        response = deliver(client, event)
    assert response.status_code == 200
    assert response.json()["duplicate"] is True
    assert (len(first), len(second)) == (1, 0)  # no second processing task
    row = StripeEvent.objects.get()
    assert row.attempts == 1


def test_receiving_is_one_insert_in_one_transaction_and_processing_waits_for_the_commit(
    client: Client, stripe_account: StripeAccount, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    with (
        django_capture_on_commit_callbacks(execute=False) as callbacks,
        CaptureQueriesContext(connection) as queries,
    ):
        response = deliver(client, _unknown_event())
    assert response.status_code == 200
    writes = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("INSERT")]
    assert len(writes) == 1
    assert len(queries.captured_queries) <= 3  # savepoint/insert/release inside the test's transaction
    assert len(callbacks) == 1
    assert StripeEvent.objects.get().status == StripeEventStatus.RECEIVED


def test_a_signed_body_that_is_not_an_event_is_kept_as_failed(
    client: Client, stripe_account: StripeAccount
) -> None:
    response = deliver(client, "this is not json")
    assert response.status_code == 400
    row = StripeEvent.objects.get()
    assert row.status == StripeEventStatus.FAILED
    assert row.event_id.startswith("invalid:")
    assert "not a Stripe event" in row.error
    assert row.payload == {"raw": "this is not json"}
    # The same bad body again is not a second row.
    deliver(client, "this is not json")
    assert StripeEvent.objects.count() == 1


def test_a_handler_error_is_recorded_and_the_event_can_be_replayed(
    client: Client, stripe_account: StripeAccount, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    # An invoice.paid event about an invoice Stripe does not know: the re-fetch fails with a clear error.
    event = make_event("invoice.paid", {"id": "in_missing", "object": "invoice"})
    with django_capture_on_commit_callbacks(execute=True):
        assert deliver(client, event).status_code == 200  # Stripe's delivery succeeded: we have it
    row = StripeEvent.objects.get()
    assert row.status == StripeEventStatus.FAILED
    assert "in_missing" in row.error or "Not Found" in row.error
    assert stripe_event_process(pk=row.pk) is None  # a failed event only runs again when replayed
    assert stripe_event_process(pk=row.pk, force=True) == StripeEventStatus.FAILED
    row.refresh_from_db()
    assert row.attempts == 2


def test_an_event_from_the_other_mode_is_ignored(
    client: Client, stripe_account: StripeAccount, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    event = make_event("invoice.paid", {"id": "in_1", "object": "invoice"})
    event["livemode"] = True
    with django_capture_on_commit_callbacks(execute=True):
        deliver(client, event)
    row = StripeEvent.objects.get()
    assert row.status == StripeEventStatus.IGNORED
    assert "live-mode event" in row.result


def test_the_sweep_processes_events_whose_task_was_lost(stripe_account: StripeAccount) -> None:
    from datetime import timedelta

    from django.utils import timezone

    # Stored, but its processing task never ran (a broker restart lost it).
    stripe_event_store(event=_unknown_event(), process=False)
    row = StripeEvent.objects.get()
    assert row.status == StripeEventStatus.RECEIVED
    assert stripe_events_sweep() == {}  # too recent: its task may still be on its way
    counts = stripe_events_sweep(now=timezone.now() + timedelta(minutes=6))
    assert counts == {StripeEventStatus.IGNORED: 1}


def test_the_endpoint_needs_no_csrf_token_stripe_signs_the_body_instead(
    stripe_account: StripeAccount,
) -> None:
    strict = Client(enforce_csrf_checks=True)
    assert deliver(strict, _unknown_event()).status_code == 200
    assert deliver(strict, _unknown_event(), secret="whsec_wrong").status_code == 400
