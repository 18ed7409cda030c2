"""Pre-dunning: cards that expire soon get one reminder at 30 days and one at 7, whatever the gateway."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dunning.services.predunning import predunning_expiring_cards_remind
from notifications.models import Notification
from tests.factories import CustomerFactory, PaymentMethodFactory

pytestmark = pytest.mark.django_db


def test_expiring_default_cards_get_each_reminder_once() -> None:
    # 10 June: a card expiring end of June (20 days left), one end of July (51 days), one non-default.
    now = datetime(2026, 6, 10, 9, 0, tzinfo=UTC)
    soon = PaymentMethodFactory(exp_month=6, exp_year=2026, gateway_payment_method_id="pm_soon")
    PaymentMethodFactory(exp_month=7, exp_year=2026)
    old = PaymentMethodFactory(customer=CustomerFactory(), exp_month=6, exp_year=2026, is_default=False)
    counts = predunning_expiring_cards_remind(now=now)
    assert counts["predunning_expiry_30d"] == 1
    reminder = Notification.objects.get()
    assert (reminder.customer_id, reminder.template_key, reminder.case_ref) == (
        soon.customer_id,
        "predunning_expiry_30d",
        None,
    )
    assert "/portal/" in reminder.body_text
    assert not Notification.objects.filter(customer=old.customer).exists()
    # The next day: nothing new. A week before the end of the month: the 7-day reminder.
    predunning_expiring_cards_remind(now=datetime(2026, 6, 11, 9, 0, tzinfo=UTC))
    assert Notification.objects.count() == 1
    predunning_expiring_cards_remind(now=datetime(2026, 6, 24, 9, 0, tzinfo=UTC))
    assert sorted(Notification.objects.values_list("template_key", flat=True)) == [
        "predunning_expiry_30d",
        "predunning_expiry_7d",
    ]


def test_a_card_expiring_next_month_is_reminded_within_30_days_of_its_end() -> None:
    PaymentMethodFactory(exp_month=7, exp_year=2026)
    assert predunning_expiring_cards_remind(now=datetime(2026, 6, 25, tzinfo=UTC))["queued"] == 0
    assert (
        predunning_expiring_cards_remind(now=datetime(2026, 7, 2, tzinfo=UTC))["predunning_expiry_30d"] == 1
    )
