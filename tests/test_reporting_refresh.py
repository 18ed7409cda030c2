"""End to end: the dunning services record how money came back, the tick refreshes the reports, and the
incremental refresh catches every kind of change (and skips when there is none)."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

import pytest
from django.utils import timezone

from customers.models import Customer, InvoiceStatus
from customers.services import invoice_close
from dunning.models import AttemptSource, CaseEvent, CaseEventKind, CaseState, DunningCase
from dunning.services.charging import attempt_charge
from dunning.services.staff import case_mark_paid, case_retry_now, customer_payment_method_updated
from dunning.services.tick import TickSummary, run_tick
from dunning.signals import tick_finished
from notifications.models import NotificationStatus
from reporting.models import CaseFact, RefreshState, WeeklyRollup
from reporting.selectors import ReportFilters, dashboard
from reporting.services import refresh as refresh_module
from reporting.services import rollups_refresh
from tests.factories import (
    TEST_ACTOR,
    NotificationFactory,
    PaymentMethodFactory,
    failed_invoice,
)
from tests.factories.reporting import default_version, make_case

# The engine's mechanics on the fixed schedule the Default shipped with (see conftest).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fixed_default_policy")]
OPENED = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
SUCCEEDS = "pm_sim_4242424242424242"
DECLINED = "pm_sim_4000000000009995"


def may_report() -> ReportFilters:
    return ReportFilters(start=date(2026, 5, 1), end=date(2026, 5, 31))


def channels() -> dict[str, int]:
    return {row.key: row.recovered for row in dashboard(filters=may_report()).channels if row.recovered}


def test_every_recovery_path_records_its_channel_and_the_next_tick_reports_it() -> None:
    silent, _, _ = failed_invoice(card=SUCCEEDS, failed_at=OPENED)
    staff_retry, _, _ = failed_invoice(card=SUCCEEDS, failed_at=OPENED)
    marked, _, _ = failed_invoice(card=DECLINED, failed_at=OPENED)
    outside, outside_invoice, _ = failed_invoice(card=DECLINED, failed_at=OPENED)
    new_card, _, _ = failed_invoice(card=DECLINED, failed_at=OPENED, decline_code="expired_card")
    # (A soft decline: the portal charges the card on file, which a hard decline would block.)
    portal, portal_invoice, _ = failed_invoice(card=SUCCEEDS, failed_at=OPENED)

    case_retry_now(case=staff_retry, actor=TEST_ACTOR)
    case_mark_paid(case=marked, actor=TEST_ACTOR, reference="bank transfer 42")
    PaymentMethodFactory(customer=new_card.customer, gateway_payment_method_id=SUCCEEDS, is_default=False)
    new_card.customer.payment_methods.filter(is_default=True).update(is_default=False)
    new_card.customer.payment_methods.filter(gateway_payment_method_id=SUCCEEDS).update(is_default=True)
    customer_payment_method_updated(customer_id=new_card.customer_id, actor=TEST_ACTOR)
    attempt_charge(
        invoice=portal_invoice, source=AttemptSource.PORTAL, actor=TEST_ACTOR, channel="email_portal"
    )
    invoice_close(invoice=outside_invoice, status=InvoiceStatus.PAID, actor=TEST_ACTOR, reason="paid by wire")

    # Recorded on the cases as it happened...
    recorded = {c.pk: c.recovery_channel for c in DunningCase.objects.all()}
    assert recorded[staff_retry.pk] == "staff"
    assert recorded[marked.pk] == "staff"
    assert recorded[new_card.pk] == "card_updated"
    assert recorded[portal.pk] == "email_portal"
    assert recorded[outside.pk] == ""  # the tick notices an invoice paid elsewhere
    # ...and in the reports after the next tick, which also retries the first case and closes the other.
    run_tick(now=OPENED + timedelta(days=1))
    assert DunningCase.objects.get(pk=silent.pk).recovery_channel == "silent_retry"
    assert DunningCase.objects.get(pk=outside.pk).recovery_channel == "paid_outside"
    assert channels() == {
        "silent_retry": 1,
        "staff": 2,
        "card_updated": 1,
        "email_portal": 1,
        "paid_outside": 1,
    }
    retries = dashboard(filters=may_report()).retries
    # First retries: the tick's (succeeded), staff's (succeeded), the new card's (succeeded) and the
    # portal's (succeeded). Marked paid and paid outside had none.
    assert [(r.label, r.attempts, r.succeeded) for r in retries] == [("1st retry", 4, 4)]


def test_the_reports_are_correct_after_every_tick() -> None:
    case, _, _ = failed_invoice(card=DECLINED, failed_at=OPENED)
    moment = OPENED
    for _ in range(12):
        moment += timedelta(days=1)
        run_tick(now=moment)
        live = dashboard(filters=may_report())
        rollups_refresh(full=True)
        assert dashboard(filters=may_report()) == live, moment
    case.refresh_from_db()
    data = dashboard(filters=may_report())
    assert case.retry_count == 3
    assert [(r.label, r.attempts, r.succeeded) for r in data.retries] == [
        ("1st retry", 1, 0),
        ("2nd retry", 1, 0),
        ("3rd retry", 1, 0),
    ]


def test_the_tick_announces_it_has_finished_but_not_for_a_dry_run() -> None:
    received: list[dict[str, object]] = []

    def receiver(sender: object, **kwargs: object) -> None:
        received.append({"sender": sender, **kwargs})

    tick_finished.connect(receiver)
    try:
        run_tick(now=OPENED, dry_run=True)
        assert received == []
        run_tick(now=OPENED)
    finally:
        tick_finished.disconnect(receiver)
    assert len(received) == 1
    assert received[0]["sender"] is TickSummary
    assert received[0]["now"] == OPENED
    assert isinstance(received[0]["summary"], TickSummary)


def test_a_failing_refresh_never_fails_the_tick(monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    from reporting import receivers

    def broken() -> None:
        raise RuntimeError("reporting is down")

    monkeypatch.setattr(receivers, "rollups_refresh", broken)
    case, _, _ = failed_invoice(card=SUCCEEDS, failed_at=OPENED)
    with caplog.at_level(logging.ERROR, logger="reporting.receivers"):
        summary = run_tick(now=OPENED + timedelta(days=1))
    assert summary.counts["recovered"] == 1
    assert DunningCase.objects.get(pk=case.pk).state == CaseState.RECOVERED
    assert "refreshing the rollups after the tick failed" in caplog.text


def test_nothing_changed_means_nothing_recomputed() -> None:
    failed_invoice(card=DECLINED, failed_at=OPENED)
    assert rollups_refresh().full  # the first refresh builds everything
    assert rollups_refresh().skipped
    run_tick(now=OPENED - timedelta(days=1))  # nothing due yet: nothing written
    assert rollups_refresh().skipped


def fact(case: DunningCase) -> CaseFact:
    return CaseFact.objects.get(case_id=case.pk)


def test_a_message_sent_after_the_tick_is_counted_by_the_next_refresh() -> None:
    case, _, _ = failed_invoice(card=DECLINED, failed_at=OPENED)
    message = NotificationFactory(customer=case.customer, case_ref=case.pk, status=NotificationStatus.QUEUED)
    rollups_refresh()
    assert fact(case).messages_sent == 0
    # The dispatcher sends it: no case event, only the message row changes.
    type(message).objects.filter(pk=message.pk).update(status=NotificationStatus.SENT, sent_at=timezone.now())
    result = rollups_refresh()
    assert (result.skipped, result.cases) == (False, 1)
    assert fact(case).messages_sent == 1
    assert WeeklyRollup.objects.get().messages_sent == 1


def test_a_segment_edit_moves_the_customers_cases() -> None:
    case, _, _ = failed_invoice(card=DECLINED, failed_at=OPENED, segment="smb")
    rollups_refresh()
    customer = case.customer
    customer.segment = "enterprise"
    customer.save()
    rollups_refresh()
    assert fact(case).segment == "enterprise"
    assert list(WeeklyRollup.objects.values_list("segment", flat=True)) == ["enterprise"]


def test_cases_loaded_without_any_event_are_picked_up() -> None:
    first, _, _ = failed_invoice(card=DECLINED, failed_at=OPENED)
    rollups_refresh()
    loaded = make_case(
        customer=first.customer,
        version=default_version(),
        opened_at=OPENED,
        amount_minor=1_234,
        first_decline="insufficient_funds",
    )
    assert not CaseEvent.objects.filter(case=loaded).exists()
    rollups_refresh()
    assert fact(loaded).amount_minor == 1_234
    assert WeeklyRollup.objects.get().cases == 2


def test_an_event_committed_late_with_a_lower_id_is_not_missed() -> None:
    """Ids are handed out before commit: another transaction may commit a lower id after a refresh."""
    case, _, _ = failed_invoice(card=DECLINED, failed_at=OPENED)
    other, _, _ = failed_invoice(card=DECLINED, failed_at=OPENED)
    gap = CaseEvent.objects.filter(case=other).order_by("-id").first()
    spare_id = gap.pk
    gap.delete()  # leave a hole below the highest id, as an uncommitted transaction would
    CaseEvent.objects.create(case=other, kind=CaseEventKind.NOTE, actor_type="system", reason="later id")
    rollups_refresh()
    DunningCase.objects.filter(pk=case.pk).update(state=CaseState.CANCELLED, closed_at=OPENED)
    # The late transaction commits its event under the lower id.
    CaseEvent.objects.create(
        id=spare_id, case=case, kind=CaseEventKind.STATE_CHANGED, actor_type="staff", to_state="cancelled"
    )
    result = rollups_refresh()
    assert not result.skipped
    assert fact(case).state == CaseState.CANCELLED
    assert RefreshState.objects.get().event_high > spare_id


def test_a_bulk_customer_change_leaves_the_window_after_the_margin(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(refresh_module, "EVENT_SLACK", 0)
    cases = [failed_invoice(card=DECLINED, failed_at=OPENED)[0] for _ in range(3)]
    Customer.objects.update(updated_at=timezone.now() - timedelta(hours=1))
    rollups_refresh()
    Customer.objects.update(segment="enterprise", updated_at=timezone.now())  # an import changed them all
    assert rollups_refresh().cases == 3
    assert {f.segment for f in CaseFact.objects.all()} == {"enterprise"}
    # The next refresh reads from a margin before the previous one started, so it reads the import once
    # more (a transaction stamped then might have committed since); the one after that no longer does.
    now = timezone.now()
    CaseEvent.objects.create(case=cases[0], kind=CaseEventKind.NOTE, actor_type="staff", reason="later")
    assert rollups_refresh(now=now + timedelta(minutes=10)).cases == 3
    CaseEvent.objects.create(case=cases[1], kind=CaseEventKind.NOTE, actor_type="staff", reason="again")
    assert rollups_refresh(now=now + timedelta(minutes=20)).cases == 1


def test_a_full_rebuild_replaces_everything() -> None:
    case, _, _ = failed_invoice(card=DECLINED, failed_at=OPENED)
    rollups_refresh()
    CaseFact.objects.filter(case_id=case.pk).update(amount_minor=1)  # drifted somehow
    assert rollups_refresh().skipped
    result = rollups_refresh(full=True)
    assert (result.full, result.cases, result.weeks) == (True, 1, 1)
    assert fact(case).amount_minor == case.amount_minor
    assert RefreshState.objects.get().rebuilt_at is not None


def test_the_refresh_uses_the_event_window(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Only cases with events in the re-read window are recomputed, however many cases exist."""
    monkeypatch.setattr(refresh_module, "EVENT_SLACK", 0)
    cases = [failed_invoice(card=DECLINED, failed_at=OPENED)[0] for _ in range(3)]
    # Their customers were edited long before this refresh, outside the customers' re-read window.
    Customer.objects.update(updated_at=timezone.now() - timedelta(hours=1))
    rollups_refresh()
    CaseEvent.objects.create(case=cases[1], kind=CaseEventKind.NOTE, actor_type="staff", reason="hello")
    result = rollups_refresh()
    assert (result.cases, result.weeks) == (1, 1)
