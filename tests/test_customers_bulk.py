"""The set-based writers and the fast instance builder behind the tick, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils.translation import gettext_lazy

from customers.bulk import insert_rows, instances_from_values, update_from_values
from customers.models import AuditEvent, Customer, Invoice
from tests.factories import CustomerFactory, InvoiceFactory

pytestmark = pytest.mark.django_db
MOMENT = datetime(2026, 3, 29, 0, 30, 15, 123456, tzinfo=UTC)
AUDIT_COLUMNS = ("occurred_at", "actor_type", "actor_label", "action", "customer", "reason", "details")


def test_inserted_rows_read_back_exactly() -> None:
    customer = CustomerFactory()
    rows = [
        (MOMENT, "system", "bulk test", "test.one", customer.pk, "plain", {"n": 1, "nested": [1, "ü"]}),
        (MOMENT + timedelta(days=1), "system", "bulk test", "test.two", None, gettext_lazy("Paid"), {}),
    ]
    returned = insert_rows(AuditEvent, AUDIT_COLUMNS, rows, returning=("action", "id"))
    assert [action for action, _ in returned] == ["test.one", "test.two"]
    one, two = (AuditEvent.objects.get(pk=pk) for _, pk in returned)
    assert (one.occurred_at, one.customer_id, one.reason, one.details) == (
        MOMENT,
        customer.pk,
        "plain",
        {"n": 1, "nested": [1, "ü"]},
    )
    assert (two.occurred_at, two.customer_id, two.reason) == (MOMENT + timedelta(days=1), None, "Paid")


def test_naive_timestamps_are_refused_before_anything_is_written() -> None:
    naive = datetime(2026, 3, 29, 2, 30)
    with pytest.raises(ValueError, match="naive datetime for occurred_at"):
        insert_rows(AuditEvent, AUDIT_COLUMNS, [(naive, "system", "t", "test.naive", None, "", {})])
    assert not AuditEvent.objects.filter(action="test.naive").exists()


def test_updates_apply_only_where_the_match_still_holds() -> None:
    kept, changed = InvoiceFactory(number="B-1"), InvoiceFactory(number="B-2")
    Invoice.objects.filter(pk=changed.pk).update(status="void")  # changed by someone else meanwhile
    updated = update_from_values(
        Invoice,
        {
            kept.pk: {"number": "B-1a", "updated_at": MOMENT},
            changed.pk: {"number": "B-2a", "updated_at": MOMENT},
        },
        fields=("number", "updated_at"),
        match={"status": {kept.pk: "open", changed.pk: "open"}},
    )
    assert updated == [kept.pk]
    kept.refresh_from_db()
    changed.refresh_from_db()
    assert (kept.number, kept.updated_at) == ("B-1a", MOMENT)
    assert changed.number == "B-2"


def test_fast_instances_behave_like_loaded_ones() -> None:
    customer = CustomerFactory(name="Ada", time_zone="Europe/Paris")
    [built] = instances_from_values(
        Customer, ("id", "name", "time_zone"), [(customer.pk, "Ada", "Europe/Paris")]
    )
    assert built.pk == customer.pk and built.name == "Ada"
    assert built._state.adding is False
    # A column that was not read is deferred, as with only(): read on first access.
    assert built.get_deferred_fields() >= {"email", "locale"}
    assert built.email == customer.email
    built.name = "Ada L."
    built.save(update_fields=["name"])  # an existing row: an UPDATE, not an INSERT
    assert Customer.objects.get(pk=customer.pk).name == "Ada L."


@pytest.mark.postgres  # SQLite does not enforce lengths at all
def test_a_value_too_long_for_its_column_is_refused_not_cut() -> None:
    from django.db import DataError, transaction

    too_long = "x" * 65  # action is varchar(64)
    with pytest.raises(DataError), transaction.atomic():
        insert_rows(AuditEvent, AUDIT_COLUMNS, [(MOMENT, "system", "t", too_long, None, "", {})])
    assert not AuditEvent.objects.filter(action__startswith="xxx").exists()
