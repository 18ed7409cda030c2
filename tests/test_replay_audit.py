"""Every replay leaves an audit row naming who ran it, even one that changes nothing (issue 16, defect 4)."""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.urls import reverse

from customers.models import AuditEvent
from dunning.models import StripeEvent, StripeEventStatus
from dunning.services.stripe_sync.inbox import stripe_event_store
from notifications.models import DeliveryStatus, WebhookDelivery
from notifications.services import WebhookEvent, webhooks_emit
from tests.factories import WebhookEndpointFactory
from tests.support.stripe_account import make_event

pytestmark = pytest.mark.django_db


def grant(user, *codenames: str) -> None:  # type: ignore[no-untyped-def]
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))


def test_a_stripe_replay_that_changes_nothing_is_audited_with_the_staff_member(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    stored = stripe_event_store(event=make_event("balance.available", {"id": "bal_1"}), process=False)
    grant(staff_user, "view_stripeevent", "replay_stripeevent")
    client.force_login(staff_user)
    for _ in range(2):  # the second replay has nothing left to do: it is recorded all the same
        client.post(
            reverse("admin:dunning_stripeevent_changelist"),
            {"action": "replay", "_selected_action": [stored.pk]},
        )
    rows = list(AuditEvent.objects.filter(action="stripe_event.replayed").order_by("id"))
    assert len(rows) == 2
    event = StripeEvent.objects.get(pk=stored.pk)
    for row in rows:
        assert (row.actor_type, row.actor_user, row.actor_label) == ("staff", staff_user, "finance")
        assert row.details == {
            "stripe_event_pk": stored.pk,
            "event_id": event.event_id,
            "type": "balance.available",
            "outcome": StripeEventStatus.IGNORED,
        }
        assert "no handler for balance.available" in row.reason


def test_a_stripe_replay_without_the_permission_runs_nothing_and_records_nothing(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    stored = stripe_event_store(event=make_event("balance.available", {"id": "bal_1"}), process=False)
    grant(staff_user, "view_stripeevent")
    client.force_login(staff_user)
    client.post(
        reverse("admin:dunning_stripeevent_changelist"), {"action": "replay", "_selected_action": [stored.pk]}
    )
    assert StripeEvent.objects.get(pk=stored.pk).status == StripeEventStatus.RECEIVED
    assert not AuditEvent.objects.filter(action="stripe_event.replayed").exists()


def test_the_replay_command_is_audited_with_the_account_that_ran_it() -> None:
    stored = stripe_event_store(event=make_event("balance.available", {"id": "bal_1"}), process=False)
    event_id = StripeEvent.objects.get(pk=stored.pk).event_id
    call_command("replay_webhooks", "--id", event_id, stdout=StringIO())
    row = AuditEvent.objects.get(action="stripe_event.replayed")
    assert row.actor_type == "system" and row.actor_label.startswith("replay_webhooks (run by ")
    assert row.details["event_id"] == event_id


def _delivery() -> WebhookDelivery:
    endpoint = WebhookEndpointFactory()
    webhooks_emit(
        events=[
            WebhookEvent(
                event_type="case.opened",
                event_id="evt_case_opened_7",
                payload={"case": 7},
                occurred_at=datetime(2025, 6, 10, 8, 0, tzinfo=UTC),
            )
        ]
    )
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.SUCCEEDED, next_attempt_at=None
    )
    return delivery


def test_webhook_delivery_replays_are_audited_whether_they_run_or_are_refused(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    delivery = _delivery()
    grant(staff_user, "view_webhookdelivery", "change_webhookdelivery")
    client.force_login(staff_user)
    url = reverse("admin:notifications_webhookdelivery_changelist")
    client.post(url, {"action": "replay", "_selected_action": [delivery.pk]})
    delivery.endpoint.enabled = False
    delivery.endpoint.save(update_fields=["enabled"])
    client.post(url, {"action": "replay", "_selected_action": [delivery.pk]})  # refused: endpoint disabled

    details = {
        "delivery_id": delivery.pk,
        "event_id": "evt_case_opened_7",
        "endpoint_id": delivery.endpoint_id,
    }
    replayed = AuditEvent.objects.get(action="webhook_delivery.replayed")
    refused = AuditEvent.objects.get(action="webhook_delivery.replay_refused")
    for row in (replayed, refused):
        assert (row.actor_user, row.details) == (staff_user, details)
    assert refused.reason == "the endpoint is disabled"
