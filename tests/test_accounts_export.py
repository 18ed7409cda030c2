"""accounts_export_stream: the import format out, formulae escaped, every export audited."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from customers.accounts_csv.columns import COLUMN_NAMES, FORMULA_TRIGGERS, escape_cell, unescape_cell
from customers.accounts_csv.services import accounts_export_stream, accounts_import
from customers.actors import Actor
from customers.models import AuditEvent, ContactRole, Customer, InvoiceStatus
from tests.factories import ContactFactory, CustomerFactory, InvoiceFactory, PaymentMethodFactory

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test export")


def export(queryset=None, **options: object) -> str:  # type: ignore[no-untyped-def]
    stream = accounts_export_stream(
        queryset=queryset if queryset is not None else Customer.objects.all(),
        actor=ACTOR,
        filters=options.pop("filters", {}),  # type: ignore[arg-type]
        **options,  # type: ignore[arg-type]
    )
    return b"".join(stream).decode()


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))


@pytest.mark.parametrize("trigger", FORMULA_TRIGGERS)
def test_cells_a_spreadsheet_would_run_as_formulae_are_prefixed(trigger: str) -> None:
    value = f'{trigger}HYPERLINK("http://evil.example")'
    if trigger == "\0":
        value = "\0cmd"  # PostgreSQL refuses NUL in text, so check the escaping itself
        assert escape_cell(value) == "'\0cmd"
        return
    CustomerFactory(external_id="acct-1", name=value, company=value)
    row = rows_of(export())[0]
    assert row["name"] == "'" + value
    assert row["company"] == "'" + value


def test_escaping_is_undone_exactly_by_the_importer() -> None:
    for value in [
        "=1+1",
        "+33 1 23",
        "-x",
        "@sum",
        "\tTab",
        "\rCR",
        "'quoted",
        "''",
        "O'Brien",
        "'plain",
        "",
    ]:
        assert unescape_cell(escape_cell(value)) == value
    assert escape_cell("O'Brien") == "O'Brien"
    assert escape_cell("'=x") == "''=x"


def test_a_row_carries_the_account_its_billing_contact_and_default_method() -> None:
    customer = CustomerFactory(
        external_id="acct-1",
        name="Ada",
        email="ada@example.com",
        company="Analytical",
        segment="smb",
        currency="EUR",
        locale="en-GB",
        time_zone="Europe/London",
        country="GB",
    )
    ContactFactory(customer=customer, name="First", email="first@example.com")
    ContactFactory(customer=customer, name="Second", email="second@example.com")
    ContactFactory(customer=customer, role=ContactRole.TECHNICAL, email="it@example.com")
    PaymentMethodFactory(customer=customer, is_default=False, last4="1111")
    PaymentMethodFactory(
        customer=customer,
        brand="amex",
        last4="0005",
        exp_month=3,
        exp_year=2031,
        funding="debit",
        country="US",
    )
    (row,) = rows_of(export())
    assert list(row) == list(COLUMN_NAMES)
    assert row == {
        "external_id": "acct-1",
        "name": "Ada",
        "email": "ada@example.com",
        "company": "Analytical",
        "segment": "smb",
        "currency": "EUR",
        "locale": "en-GB",
        "time_zone": "Europe/London",
        "country": "GB",
        "billing_contact_name": "First",
        "billing_contact_email": "first@example.com",
        "payment_method_type": "card",
        "payment_method_brand": "amex",
        "payment_method_last4": "0005",
        "payment_method_exp_month": "3",
        "payment_method_exp_year": "2031",
        "payment_method_funding": "debit",
        "payment_method_country": "US",
        "open_balance": "0.00",
        "oldest_due_date": "",
    }


def test_open_balance_and_oldest_due_date_come_from_open_invoices_in_the_account_currency() -> None:
    customer = CustomerFactory(external_id="acct-1", currency="EUR")
    InvoiceFactory(
        customer=customer,
        amount_due_minor=1000,
        amount_paid_minor=250,
        due_at=datetime(2026, 2, 1, tzinfo=UTC),
    )
    InvoiceFactory(customer=customer, amount_due_minor=5000, due_at=datetime(2026, 1, 15, 23, 0, tzinfo=UTC))
    InvoiceFactory(
        customer=customer, amount_due_minor=7000, status=InvoiceStatus.PAID, amount_paid_minor=7000
    )
    InvoiceFactory(customer=customer, amount_due_minor=900, currency="USD")
    yen = CustomerFactory(external_id="acct-2", currency="JPY")
    InvoiceFactory(customer=yen, amount_due_minor=5000)
    rows = {row["external_id"]: row for row in rows_of(export())}
    assert rows["acct-1"]["open_balance"] == "57.50"
    assert rows["acct-1"]["oldest_due_date"] == "2026-01-15"
    assert rows["acct-2"]["open_balance"] == "5000"


def test_every_export_is_audited_with_who_filters_and_row_count() -> None:
    CustomerFactory(segment="smb")
    CustomerFactory(segment="smb")
    CustomerFactory(segment="enterprise")
    text = export(Customer.objects.filter(segment="smb"), filters={"segment": ["smb"]})
    assert len(rows_of(text)) == 2
    event = AuditEvent.objects.get(action="customers.exported")
    assert (event.actor_label, event.customer) == ("test export", None)
    assert event.details == {"filters": {"segment": ["smb"]}, "rows": 2, "complete": True}


def test_an_abandoned_download_is_audited_as_incomplete() -> None:
    # Enough rows for several chunks, so the download stops in the middle of the query.
    Customer.objects.bulk_create(
        Customer(external_id=f"acct-{n:05d}", name="N" * 150, company="C" * 150) for n in range(1500)
    )
    stream = iter(accounts_export_stream(queryset=Customer.objects.all(), actor=ACTOR, filters={}))
    assert next(stream).startswith(b"external_id,")
    next(stream)
    stream.close()  # type: ignore[attr-defined]
    event = AuditEvent.objects.get(action="customers.exported")
    assert event.details["complete"] is False
    assert Customer.objects.count() == 1500  # the connection is still usable


def test_postgresql_and_python_write_the_same_bytes() -> None:
    """The export is formatted by PostgreSQL's COPY there and by Python elsewhere: the suite runs on both,
    against the same expected bytes."""
    customer = CustomerFactory(
        external_id="=x", name='a,"b"\nc', company="'q", email="", currency="KWD", country="KW"
    )
    ContactFactory(customer=customer, name="", email="@b.example")
    PaymentMethodFactory(
        customer=customer, exp_month=None, exp_year=None, brand="-", last4="", funding="prepaid", country="KW"
    )
    due = datetime(2026, 1, 2, 23, 30, tzinfo=UTC)
    InvoiceFactory(customer=customer, amount_due_minor=1005, currency="KWD", due_at=due)
    CustomerFactory(external_id="plain", name="Plain", email="p@example.com", currency="CLF")
    assert export() == (
        ",".join(COLUMN_NAMES) + "\n"
        '\'=x,"a,""b""\nc",,\'\'q,smb,KWD,en,Europe/Paris,KW,,\'@b.example,card,\'-,,,,prepaid,KW,1.005,'
        "2026-01-02\n"
        "plain,Plain,p@example.com,Example Ltd,smb,CLF,en,Europe/Paris,,,,,,,,,,,0.0000,\n"
    )


def test_bom_for_excel_on_request() -> None:
    CustomerFactory()
    assert export(bom=True).startswith("\ufeffexternal_id,")
    assert export().startswith("external_id,")


def test_round_trip_export_then_import_changes_nothing() -> None:
    tricky = CustomerFactory(
        external_id="=acct",
        name='He said "hi",\nthen left',
        company="@corp; -minus",
        email="",
        segment="",
        currency="JPY",
        time_zone="Asia/Tokyo",
        country="JP",
    )
    ContactFactory(customer=tricky, name="'quoted", email="x@example.com")
    PaymentMethodFactory(
        customer=tricky, type="sepa_debit", brand="", last4="", exp_month=None, exp_year=None
    )
    plain = CustomerFactory(external_id="acct-2")
    PaymentMethodFactory(customer=plain, funding="prepaid", country="DE")
    InvoiceFactory(customer=plain, amount_due_minor=1234)
    CustomerFactory(external_id="acct-3")  # no contact, no method
    before = list(Customer.objects.values_list("external_id", "updated_at"))

    text = export(bom=True)
    report = accounts_import(source=io.BytesIO(text.encode()), actor=ACTOR, file_name="export.csv")

    assert report.ok, report.errors
    assert (report.created, report.updated, report.unchanged) == (0, 0, 3)
    assert list(Customer.objects.values_list("external_id", "updated_at")) == before
    assert not AuditEvent.objects.exclude(action="customers.exported").exists()


def test_a_round_trip_into_an_empty_database_recreates_the_accounts() -> None:
    customer = CustomerFactory(external_id="acct-1", name="-5 Ltd", country="NL")
    ContactFactory(customer=customer, email="pay@example.com")
    PaymentMethodFactory(customer=customer, last4="4242", funding="debit", country="BE")
    unknown = CustomerFactory(external_id="acct-2")
    PaymentMethodFactory(customer=unknown, last4="0002")  # funding unknown, no issuing country
    text = export()
    Customer.objects.all().delete()
    report = accounts_import(source=io.BytesIO(text.encode()), actor=ACTOR, file_name="export.csv")
    assert report.created == 2
    again = Customer.objects.get(external_id="acct-1")
    assert (again.name, again.country) == ("-5 Ltd", "NL")
    assert again.contacts.get().email == "pay@example.com"
    method = again.payment_methods.get()
    assert (method.last4, method.funding, method.country) == ("4242", "debit", "BE")
    other = Customer.objects.get(external_id="acct-2")
    method = other.payment_methods.get()
    assert (other.country, method.funding, method.country) == ("", "unknown", "")
    assert export() == text


def test_country_funding_and_card_country_are_exported_with_the_default_method() -> None:
    customer = CustomerFactory(external_id="acct-1", country="SE")
    PaymentMethodFactory(customer=customer, is_default=False, last4="1111", funding="credit", country="US")
    PaymentMethodFactory(customer=customer, last4="2222", funding="prepaid", country="SE")
    CustomerFactory(external_id="acct-2")  # no country, no method
    rows = {row["external_id"]: row for row in rows_of(export())}
    assert [rows["acct-1"][c] for c in ("country", "payment_method_funding", "payment_method_country")] == [
        "SE",
        "prepaid",
        "SE",
    ]
    assert [rows["acct-2"][c] for c in ("country", "payment_method_funding", "payment_method_country")] == [
        "",
        "",
        "",
    ]
