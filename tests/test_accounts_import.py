"""accounts_import: validate every row with the models' rules, then upsert on external_id all or nothing."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from customers.accounts_csv.services import ImportReport, UnreadableFile, accounts_import
from customers.actors import Actor
from customers.models import AuditEvent, Contact, ContactRole, Customer, PaymentMethod
from tests.factories import (
    ContactFactory,
    CustomerFactory,
    PaymentMethodFactory,
    account_row,
    accounts_csv,
)

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test import")


def run(data: bytes, **options: object) -> ImportReport:
    return accounts_import(source=io.BytesIO(data), actor=ACTOR, file_name="accounts.csv", **options)


def errors_of(report: ImportReport) -> list[tuple[int, str]]:
    return [(e.line, e.column) for e in report.errors]


def test_new_accounts_are_created_with_their_contact_and_card() -> None:
    report = run(accounts_csv([account_row(1), account_row(2, currency="JPY", time_zone="Asia/Tokyo")]))
    assert (report.written, report.created, report.updated, report.unchanged) == (True, 2, 0, 0)
    customer = Customer.objects.get(external_id="acct-2")
    assert (customer.name, customer.currency, customer.time_zone, customer.locale) == (
        "Account 2",
        "JPY",
        "Asia/Tokyo",
        "fr-FR",
    )
    contact = Contact.objects.get(customer=customer)
    assert (contact.role, contact.name, contact.email) == (
        ContactRole.BILLING,
        "Accounts payable",
        "billing2@example.com",
    )
    method = PaymentMethod.objects.get(customer=customer)
    assert (
        method.type,
        method.brand,
        method.last4,
        method.exp_month,
        method.exp_year,
        method.is_default,
    ) == (
        "card",
        "visa",
        "0002",
        12,
        2030,
        True,
    )


def test_one_invalid_row_means_nothing_is_written_and_every_error_is_reported() -> None:
    rows = [
        account_row(1),
        account_row(2, currency="EURO"),
        account_row(3),
        account_row(4, email="not-an-email", time_zone="Mars/Olympus"),
        account_row(5, payment_method_exp_month="13"),
        account_row(6),
    ]
    report = run(accounts_csv(rows))
    assert not report.written
    assert not Customer.objects.exists()
    assert not Contact.objects.exists()
    assert not AuditEvent.objects.exists()
    # Line 1 is the header: the second data row is line 3.
    assert errors_of(report) == [
        (3, "currency"),
        (5, "email"),
        (5, "time_zone"),
        (6, "payment_method_exp_month"),
    ]
    assert (report.invalid, report.error_count) == (3, 4)
    # The valid rows are still counted, so the preview tells what the fixed file would do.
    assert report.created == 3
    messages = {e.column: e.message for e in report.errors}
    assert "is not an ISO 4217 currency code" in messages["currency"]
    assert "is not a known IANA time zone" in messages["time_zone"]
    assert messages["payment_method_exp_month"] == "Must be between 1 and 12."
    assert report.errors[0].value == "EURO"


def test_errors_are_all_counted_but_only_the_first_ones_kept() -> None:
    rows = [account_row(n, currency="eur") for n in range(1, 8)]
    report = run(accounts_csv(rows), max_errors=3)
    assert report.error_count == 7
    assert [e.line for e in report.errors] == [2, 3, 4]
    assert "Use upper case" in report.errors[0].message


def test_duplicate_external_id_inside_one_file_is_an_error() -> None:
    rows = [account_row(1), account_row(2), account_row(1, name="Again"), account_row(3), account_row(1)]
    report = run(accounts_csv(rows))
    assert not report.written
    assert not Customer.objects.exists()
    assert errors_of(report) == [(4, "external_id"), (6, "external_id")]
    assert report.errors[0].message == "Appears more than once in the file (first on line 2)."
    assert report.invalid == 2


def test_duplicates_and_row_errors_are_reported_together_in_line_order() -> None:
    rows = [account_row(1), account_row(1), account_row(2, currency="XXX")]
    report = run(accounts_csv(rows))
    assert errors_of(report) == [(3, "external_id"), (4, "currency")]


def test_excel_bom_and_semicolons_are_accepted() -> None:
    report = run(accounts_csv([account_row(1, company="Dupont; Fils")], delimiter=";", bom=True))
    assert report.written and report.delimiter == ";"
    assert Customer.objects.get(external_id="acct-1").company == "Dupont; Fils"


def test_headers_match_regardless_of_case_and_spaces() -> None:
    columns = ["external_id", "name", "currency", "time_zone"]
    header = ["  External_ID ", "NAME", "Currency", "Time Zone"]
    data = accounts_csv([account_row(1)], columns=columns, header=header)
    report = run(data)
    assert report.written, report.errors
    assert Customer.objects.get(external_id="acct-1").time_zone == "Europe/Paris"


def test_unknown_columns_are_ignored_and_named() -> None:
    data = b"external_id,name,currency,Plan\r\nacct-1,A,EUR,gold\r\n"
    report = run(data)
    assert report.written
    assert report.ignored_columns == ["Plan"]


def test_missing_required_column_is_reported_on_the_header_line() -> None:
    report = run(b"external_id,name\r\nacct-1,A\r\n")
    assert errors_of(report) == [(1, "currency")]
    assert "Required column missing" in report.errors[0].message
    assert not Customer.objects.exists()


def test_payment_method_columns_go_together() -> None:
    report = run(
        accounts_csv([account_row(1)], columns=["external_id", "name", "currency", "payment_method_type"])
    )
    assert report.error_count == 1
    assert report.errors[0].line == 1
    assert "payment_method_last4" in report.errors[0].column


def test_dates_are_iso_8601_and_balances_use_the_currency_decimals() -> None:
    rows = [
        account_row(1, open_balance="12.50", oldest_due_date="2026-03-31"),
        account_row(2, open_balance="1,234.50", oldest_due_date="31/03/2026"),
        account_row(3, currency="JPY", open_balance="10.5"),
        account_row(4, open_balance="-1"),
    ]
    report = run(accounts_csv(rows))
    assert errors_of(report) == [
        (3, "open_balance"),
        (3, "oldest_due_date"),
        (4, "open_balance"),
        (5, "open_balance"),
    ]
    assert report.errors[2].message == "JPY amounts have at most 0 decimal places."


def test_informational_columns_are_not_imported() -> None:
    report = run(accounts_csv([account_row(1, open_balance="99.00", oldest_due_date="2020-01-01")]))
    assert report.written
    customer = Customer.objects.get(external_id="acct-1")
    assert not customer.invoices.exists()


def test_reimporting_the_same_file_changes_nothing() -> None:
    data = accounts_csv([account_row(n) for n in range(1, 6)])
    run(data)
    before = {c.external_id: c.updated_at for c in Customer.objects.all()}
    methods_before = list(PaymentMethod.objects.values_list("id", "updated_at"))
    audit_rows = AuditEvent.objects.count()
    report = run(data)
    assert (report.created, report.updated, report.unchanged) == (0, 0, 5)
    assert {c.external_id: c.updated_at for c in Customer.objects.all()} == before
    assert list(PaymentMethod.objects.values_list("id", "updated_at")) == methods_before
    assert Contact.objects.count() == 5
    assert AuditEvent.objects.count() == audit_rows


def test_changed_accounts_are_updated_and_audited_with_old_and_new_values() -> None:
    run(accounts_csv([account_row(1), account_row(2)]))
    untouched = Customer.objects.get(external_id="acct-2").updated_at
    report = run(accounts_csv([account_row(1, name="Renamed", segment="enterprise"), account_row(2)]))
    assert (report.created, report.updated, report.unchanged) == (0, 1, 1)
    customer = Customer.objects.get(external_id="acct-1")
    assert (customer.name, customer.segment) == ("Renamed", "enterprise")
    assert Customer.objects.get(external_id="acct-2").updated_at == untouched
    event = AuditEvent.objects.get(action="customer.updated")
    assert event.customer == customer
    assert (event.actor_type, event.actor_label, event.reason) == ("system", "test import", "CSV import")
    assert event.details["changes"] == {"name": ["Account 1", "Renamed"], "segment": ["smb", "enterprise"]}
    assert event.details["line"] == 2


def test_the_import_itself_is_audited_once_and_dates_the_new_accounts() -> None:
    report = run(accounts_csv([account_row(1), account_row(2)]))
    event = AuditEvent.objects.get(action="customers.imported")
    assert event.customer is None
    assert event.details["created"] == 2
    assert event.details["sha256"] == report.sha256
    assert set(Customer.objects.values_list("created_at", flat=True)) == {event.occurred_at}


def test_columns_left_out_keep_their_values() -> None:
    existing = CustomerFactory(external_id="acct-1", company="Keep me", segment="enterprise", locale="de")
    data = accounts_csv([account_row(1, name="New name")], columns=["external_id", "name", "currency"])
    report = run(data)
    assert report.updated == 1
    existing.refresh_from_db()
    assert (existing.name, existing.company, existing.segment, existing.locale) == (
        "New name",
        "Keep me",
        "enterprise",
        "de",
    )


def test_required_cells_cannot_be_blank_when_their_column_is_there() -> None:
    report = run(accounts_csv([account_row(1, name="", locale="")]))
    assert errors_of(report) == [(2, "name"), (2, "locale")]


def test_billing_contact_with_the_same_email_is_updated_else_the_oldest_one() -> None:
    customer = CustomerFactory(external_id="acct-1")
    oldest = ContactFactory(customer=customer, email="old@example.com", name="Old")
    matching = ContactFactory(customer=customer, email="billing1@example.com", name="Typo")
    run(accounts_csv([account_row(1)]))
    matching.refresh_from_db()
    oldest.refresh_from_db()
    assert (matching.name, oldest.name, oldest.email) == ("Accounts payable", "Old", "old@example.com")

    other = CustomerFactory(external_id="acct-2")
    first = ContactFactory(customer=other, email="first@example.com")
    run(accounts_csv([account_row(2, billing_contact_email="new@example.com")]))
    first.refresh_from_db()
    assert first.email == "new@example.com"
    assert other.contacts.count() == 1


def test_blank_billing_contact_leaves_contacts_alone() -> None:
    customer = CustomerFactory(external_id="acct-1")
    ContactFactory(customer=customer, email="kept@example.com")
    ContactFactory(customer=customer, role=ContactRole.TECHNICAL, email="it@example.com")
    report = run(accounts_csv([account_row(1, billing_contact_name="", billing_contact_email="")]))
    assert report.written
    assert sorted(customer.contacts.values_list("email", flat=True)) == ["it@example.com", "kept@example.com"]


def test_billing_contact_name_without_email_is_an_error() -> None:
    report = run(accounts_csv([account_row(1, billing_contact_email="")]))
    assert errors_of(report) == [(2, "billing_contact_email")]


def test_same_card_with_a_new_expiry_is_updated_in_place() -> None:
    customer = CustomerFactory(external_id="acct-1")
    card = PaymentMethodFactory(customer=customer, brand="visa", last4="0001", exp_month=1, exp_year=2026)
    report = run(accounts_csv([account_row(1, payment_method_exp_month="2", payment_method_exp_year="2031")]))
    assert report.updated == 1
    card.refresh_from_db()
    assert (card.exp_month, card.exp_year, card.is_default) == (2, 2031, True)
    assert customer.payment_methods.count() == 1


def test_a_different_card_becomes_the_default_and_the_old_one_is_kept() -> None:
    customer = CustomerFactory(external_id="acct-1")
    old = PaymentMethodFactory(
        customer=customer, brand="mastercard", last4="9999", gateway_payment_method_id="pm_1"
    )
    run(accounts_csv([account_row(1)]))
    old.refresh_from_db()
    assert not old.is_default
    assert old.gateway_payment_method_id == "pm_1"
    new = customer.payment_methods.get(is_default=True)
    assert (new.brand, new.last4, new.gateway_payment_method_id) == ("visa", "0001", "")
    changes = AuditEvent.objects.get(action="customer.updated").details["changes"]
    assert changes["payment_method"][0].startswith("card mastercard 9999")


def test_payment_method_needs_a_type_and_both_expiry_parts() -> None:
    rows = [
        account_row(1, payment_method_type=""),
        account_row(2, payment_method_exp_year=""),
        account_row(3, payment_method_type="cash"),
        account_row(4, payment_method_last4="42"),
    ]
    report = run(accounts_csv(rows))
    assert errors_of(report) == [
        (2, "payment_method_type"),
        (3, "payment_method_exp_year"),
        (4, "payment_method_type"),
        (5, "payment_method_last4"),
    ]


def test_cells_are_trimmed_and_escaped_formulae_are_undone() -> None:
    report = run(accounts_csv([account_row(1, name="  '=Acme  ", company="'-Ltd", email=" a@example.com ")]))
    assert report.written, report.errors
    customer = Customer.objects.get(external_id="acct-1")
    assert (customer.name, customer.company, customer.email) == ("=Acme", "-Ltd", "a@example.com")


def test_rows_with_the_wrong_number_of_cells_are_errors_but_trailing_empty_cells_are_fine() -> None:
    data = b"external_id,name,currency\r\nacct-1,A,EUR,,\r\nacct-2,B\r\n"
    report = run(data)
    assert errors_of(report) == [(3, "")]
    assert "Expected 3 cells" in report.errors[0].message


def test_line_numbers_follow_the_file_with_quoted_line_breaks_and_blank_lines() -> None:
    data = b'external_id,name,currency\r\nacct-1,"Two\nlines",EUR\r\n\r\nacct-2,B,EURO\r\n'
    report = run(data)
    assert errors_of(report) == [(5, "currency")]


def test_error_reasons_and_values_stay_short_for_huge_cells() -> None:
    report = run(accounts_csv([account_row(1, currency="E" * 20_000)]))
    (error,) = report.errors
    assert len(error.value) <= 80 and len(error.message) <= 300


def test_nul_characters_are_refused() -> None:
    report = run(b"external_id,name,currency\r\nacct-1,A\x00B,EUR\r\n")
    assert errors_of(report) == [(2, "name")]


def test_dry_run_counts_and_writes_nothing() -> None:
    CustomerFactory(external_id="acct-1", name="Old")
    report = run(accounts_csv([account_row(1), account_row(2)]), dry_run=True)
    assert (report.created, report.updated, report.written) == (1, 1, False)
    assert Customer.objects.count() == 1
    assert Customer.objects.get().name == "Old"


def test_a_file_that_is_not_utf8_is_unreadable() -> None:
    with pytest.raises(UnreadableFile, match="not UTF-8"):
        run("external_id,name,currency\r\nacct-1,Chlo\u00e9,EUR\r\n".encode("latin-1"))
    assert not Customer.objects.exists()


@pytest.mark.parametrize("data", [b"", b"\r\n\n", "\ufeff".encode()])
def test_an_empty_file_is_unreadable(data: bytes) -> None:
    with pytest.raises(UnreadableFile, match="the file is empty"):
        run(data)


def test_a_header_alone_imports_nothing() -> None:
    report = run(accounts_csv([]))
    assert (report.rows, report.written, report.created) == (0, True, 0)


def test_the_import_is_not_fooled_by_another_customers_contact() -> None:
    CustomerFactory(external_id="acct-1")
    stranger = ContactFactory(email="billing1@example.com")
    run(accounts_csv([account_row(1)]))
    stranger.refresh_from_db()
    assert stranger.name == "Billing desk"


def test_queries_do_not_grow_with_rows() -> None:
    small = accounts_csv([account_row(n) for n in range(1, 3)])
    large = accounts_csv([account_row(n) for n in range(100, 160)])
    with CaptureQueriesContext(connection) as first:
        run(small)
    with CaptureQueriesContext(connection) as second:
        run(large)
    assert len(first) == len(second)


def test_new_accounts_get_the_model_defaults_for_columns_left_out() -> None:
    run(b"external_id,name,currency\r\nacct-1,A,EUR\r\n")
    customer = Customer.objects.get()
    assert (customer.locale, customer.time_zone, customer.email, customer.entitlement_state) == (
        "en",
        "UTC",
        "",
        "active",
    )
    assert customer.created_at > timezone.now() - timedelta(minutes=1)


def test_a_large_import_refreshes_the_planner_statistics_in_a_task(
    monkeypatch, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    from django_q.models import Task

    from customers.accounts_csv import services

    monkeypatch.setattr(services, "ANALYZE_AFTER_ROWS", 3)
    with django_capture_on_commit_callbacks(execute=True):
        run(accounts_csv([account_row(1), account_row(2)]))
    assert not Task.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        run(accounts_csv([account_row(n) for n in range(3, 6)]))
    task = Task.objects.get()
    assert (task.func, task.success) == ("customers.tasks.refresh_account_statistics", True)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'customers_customer'")
            assert cursor.fetchone()[0] == 5


EDGE_VALUES = {
    "external_id": ["", "x" * 100, "x" * 101, "a b"],
    "name": ["", "N" * 200, "N" * 201, "Zoë"],
    "email": [
        "",
        "a@b.co",
        "a@b",
        "a..b@example.com",
        "ünï@example.com",
        "a@[127.0.0.1]",
        "x" * 250 + "@e.com",
    ],
    "segment": ["", "smb", "mid market", "ü"],
    "currency": ["", "EUR", "eur", "XXX"],
    "locale": ["", "en", "en_GB", "english!"],
    "time_zone": ["", "UTC", "Europe/Paris", "Mars/Olympus"],
    "country": ["", "FR", "fr", "uS", "USA", "F", "1X", "ß", "ÉS"],
    "billing_contact_name": ["", "A" * 201],
    "billing_contact_email": ["", "b@example.com", "nope"],
    "payment_method_type": ["", "card", "cash"],
    "payment_method_brand": ["", "b" * 31],
    "payment_method_last4": ["", "12345", "12a4", "0000"],
    "payment_method_exp_month": ["", "0", "12", "13", "x", "-1"],
    "payment_method_exp_year": ["", "99", "2030", "99999"],
    "payment_method_funding": ["", "credit", "DEBIT", "Prepaid", "unknown", "cash", "credit card"],
    "payment_method_country": ["", "US", "de", "U", "GBR", "ß"],
    "open_balance": ["", "1.005", "NaN", "1e3"],
    "oldest_due_date": ["", "2026-02-30", "2026-01-01T10:00:00+01:00"],
}


def test_the_fast_path_accepts_only_what_the_thorough_check_accepts() -> None:
    """Valid rows take a shortcut; it must agree with the full, per-column check on every edge case."""
    from customers.accounts_csv.columns import COLUMN_NAMES
    from customers.accounts_csv.validation import RowValidator, read_header

    validator = RowValidator(read_header(1, list(COLUMN_NAMES)))
    checked = 0
    for column, values in EDGE_VALUES.items():
        for value in values:
            raw = list(account_row(7, **{column: value}).values())
            fast, fast_errors = validator.validate(2, raw)
            full, full_errors = validator.check_row(2, raw)
            assert (fast, fast_errors) == (full, full_errors), (column, value)
            checked += not full_errors
    assert checked > 20  # the corpus has valid rows too, which are the ones taking the shortcut


def test_the_email_shortcut_only_accepts_what_djangos_validator_accepts() -> None:
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    from customers.accounts_csv.validation import PLAIN_EMAIL

    samples = [
        "a@b.co", "a+b@sub.example.co.uk", "-a_b@x.io", "a@b.c", "a@-b.com", "a@b-.com", "a@b.com-",
        "a@b..com", "a.@b.com", ".a@b.com", "a@b.c0m", "a@xn--bcher-kva.example", "a@" + "b" * 63 + ".com",
        "a@" + "b" * 64 + ".com", "a@b.com\n", "a b@c.com", "a@localhost", "a@1.2.3.4", "A@B.COM",
    ]  # fmt: skip
    accepted = 0
    for sample in samples:
        if PLAIN_EMAIL.match(sample):
            validate_email(sample)  # raises if the shortcut let through something Django refuses
            accepted += 1
    assert accepted >= 6
    # Addresses the shortcut does not know still go through the validator and may be valid.
    assert not PLAIN_EMAIL.match("a@[127.0.0.1]")
    with pytest.raises(ValidationError):
        validate_email("a@b..com")


def test_the_documented_example_file_imports() -> None:
    from pathlib import Path

    example = Path(__file__).resolve().parent.parent / "docs" / "accounts-example.csv"
    with example.open("rb") as source:
        report = accounts_import(source=source, actor=ACTOR, file_name=example.name)
    assert (report.ok, report.created) == (True, 5)
    assert Customer.objects.get(external_id="acme-005").company == "=Summit Health"
    assert Customer.objects.get(external_id="acme-003").payment_methods.get().type == "sepa_debit"
    kenji = Customer.objects.get(external_id="acme-004")
    method = kenji.payment_methods.get()
    assert (kenji.country, method.funding, method.country) == ("JP", "debit", "JP")
