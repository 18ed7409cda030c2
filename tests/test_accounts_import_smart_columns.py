"""Account CSV import: the columns smart retry timing reads (customer country, card funding and issuing
country), optional within their groups so files without them import exactly as before."""

from __future__ import annotations

import pytest

from customers.models import AuditEvent, Customer, PaymentMethod
from tests.factories import ContactFactory, CustomerFactory, PaymentMethodFactory, account_row, accounts_csv
from tests.test_accounts_import import errors_of, run

pytestmark = pytest.mark.django_db


OLD_FORMAT = [
    name
    for name in account_row(1)
    if name not in ("country", "payment_method_funding", "payment_method_country")
]


def test_new_accounts_get_their_country_and_card_funding_and_country_in_any_case() -> None:
    rows = [
        account_row(1, country="de", payment_method_funding="DeBit", payment_method_country="us"),
        account_row(2, country="", payment_method_funding="", payment_method_country=""),
    ]
    report = run(accounts_csv(rows))
    assert (report.written, report.created) == (True, 2), report.errors
    first = Customer.objects.get(external_id="acct-1")
    method = first.payment_methods.get()
    assert (first.country, method.funding, method.country) == ("DE", "debit", "US")
    # Empty cells: a blank customer country, and the model's defaults for the new card.
    second = Customer.objects.get(external_id="acct-2")
    method = second.payment_methods.get()
    assert (second.country, method.funding, method.country) == ("", "unknown", "")


def test_lowercase_values_are_stored_in_capitals_so_a_reimport_changes_nothing() -> None:
    data = accounts_csv(
        [account_row(1, country="fr", payment_method_funding="Credit", payment_method_country="fr")]
    )
    run(data)
    assert Customer.objects.get().country == "FR"
    report = run(data)
    assert (report.created, report.updated, report.unchanged) == (0, 0, 1)


def test_country_and_funding_of_the_same_card_are_updated_in_place_and_audited() -> None:
    customer = CustomerFactory(external_id="acct-1", country="FR")
    card = PaymentMethodFactory(
        customer=customer,
        brand="visa",
        last4="0001",
        exp_month=12,
        exp_year=2030,
        gateway_payment_method_id="pm_1",
    )
    row = account_row(1, country="be", payment_method_funding="prepaid", payment_method_country="be")
    report = run(accounts_csv([row]))
    assert (report.updated, report.unchanged) == (1, 0), report.errors
    card.refresh_from_db()
    customer.refresh_from_db()
    assert customer.country == "BE"
    assert (card.funding, card.country, card.is_default, card.gateway_payment_method_id) == (
        "prepaid",
        "BE",
        True,
        "pm_1",
    )
    assert customer.payment_methods.count() == 1
    changes = AuditEvent.objects.get(action="customer.updated").details["changes"]
    assert changes["country"] == ["FR", "BE"]
    assert changes["payment_method"] == ["card visa 0001 12/2030", "card visa 0001 12/2030 prepaid BE"]


def test_empty_funding_and_card_country_leave_the_stored_values_alone() -> None:
    run(accounts_csv([account_row(1)]))
    card = PaymentMethod.objects.get()
    PaymentMethod.objects.filter(pk=card.pk).update(funding="debit", country="US")  # e.g. from the gateway
    report = run(accounts_csv([account_row(1, payment_method_funding="", payment_method_country="")]))
    assert (report.updated, report.unchanged) == (0, 1)
    card.refresh_from_db()
    assert (card.funding, card.country) == ("debit", "US")

    # Same card with a new expiry: the expiry moves, the funding and country stay.
    row = account_row(1, payment_method_exp_year="2032", payment_method_funding="", payment_method_country="")
    report = run(accounts_csv([row]))
    assert report.updated == 1
    card.refresh_from_db()
    assert (card.exp_year, card.funding, card.country) == (2032, "debit", "US")
    changes = AuditEvent.objects.get(action="customer.updated").details["changes"]
    assert changes["payment_method"] == ["card visa 0001 12/2030 debit US", "card visa 0001 12/2032 debit US"]


def test_an_empty_customer_country_clears_it_like_other_optional_customer_cells() -> None:
    customer = CustomerFactory(external_id="acct-1", country="FR")
    report = run(accounts_csv([account_row(1, country="")]))
    assert report.updated == 1
    customer.refresh_from_db()
    assert customer.country == ""


def test_a_different_card_gets_the_funding_and_country_of_its_row() -> None:
    customer = CustomerFactory(external_id="acct-1")
    old = PaymentMethodFactory(customer=customer, brand="amex", last4="9999", funding="credit", country="US")
    run(accounts_csv([account_row(1, payment_method_funding="debit", payment_method_country="fr")]))
    old.refresh_from_db()
    assert (old.is_default, old.funding, old.country) == (False, "credit", "US")
    new = customer.payment_methods.get(is_default=True)
    assert (new.last4, new.funding, new.country) == ("0001", "debit", "FR")


def test_invalid_country_and_funding_are_row_errors_naming_the_allowed_values() -> None:
    rows = [
        account_row(1, country="USA"),
        account_row(2, payment_method_funding="charge"),
        account_row(3, payment_method_country="U"),
        account_row(4, country="1x", payment_method_funding="credit card"),
        account_row(5),
    ]
    report = run(accounts_csv(rows))
    assert not report.written
    assert not Customer.objects.exists()
    assert errors_of(report) == [
        (2, "country"),
        (3, "payment_method_funding"),
        (4, "payment_method_country"),
        (5, "country"),
        (5, "payment_method_funding"),
    ]
    messages = {(e.line, e.column): e for e in report.errors}
    assert "ISO 3166 two-letter country code" in messages[(2, "country")].message
    assert messages[(2, "country")].value == "USA"
    funding = messages[(3, "payment_method_funding")]
    assert funding.message == "Must be one of credit, debit, prepaid, unknown (any case), or empty."
    assert funding.value == "charge"
    assert "ISO 3166" in messages[(4, "payment_method_country")].message
    assert report.created == 1  # the valid row is still counted for the preview


def test_funding_or_card_country_without_a_card_is_an_error() -> None:
    empty_card = {
        f"payment_method_{part}": "" for part in ("type", "brand", "last4", "exp_month", "exp_year")
    }
    rows = [
        account_row(1, **empty_card, payment_method_funding="credit", payment_method_country=""),
        account_row(2, **empty_card, payment_method_funding="", payment_method_country="US"),
        account_row(3, **empty_card, payment_method_funding="", payment_method_country=""),
    ]
    report = run(accounts_csv(rows))
    assert errors_of(report) == [(2, "payment_method_type"), (3, "payment_method_type")]


def test_files_without_the_new_columns_import_exactly_as_before() -> None:
    customer = CustomerFactory(external_id="acct-1", name="Account 1", country="US")
    ContactFactory(customer=customer, name="Accounts payable", email="billing1@example.com")
    card = PaymentMethodFactory(
        customer=customer,
        brand="visa",
        last4="0001",
        exp_month=12,
        exp_year=2030,
        funding="credit",
        country="US",
    )
    CustomerFactory(external_id="acct-3", name="Account 3", country="DE")
    # acct-1 as stored, acct-2 new, acct-3 renamed.
    rows = [
        account_row(1, email=customer.email, company=customer.company, locale="en", time_zone="Europe/Paris"),
        account_row(2),
        account_row(
            3, name="Renamed", payment_method_type="", payment_method_brand="", payment_method_last4=""
        ),
    ]
    rows[0].update({"segment": "smb", "currency": "EUR"})
    rows[2].update(dict.fromkeys(("payment_method_exp_month", "payment_method_exp_year"), ""))
    rows[2].update({"billing_contact_name": "", "billing_contact_email": ""})
    report = run(accounts_csv(rows, columns=OLD_FORMAT))
    assert report.ok, report.errors
    assert report.ignored_columns == []
    assert (report.created, report.updated, report.unchanged) == (1, 1, 1)
    card.refresh_from_db()
    customer.refresh_from_db()
    assert (customer.country, card.funding, card.country) == ("US", "credit", "US")
    assert Customer.objects.get(external_id="acct-3").country == "DE"
    new = Customer.objects.get(external_id="acct-2")
    method = new.payment_methods.get()
    assert (new.country, method.funding, method.country) == ("", "unknown", "")
    changes = AuditEvent.objects.get(action="customer.updated").details["changes"]
    assert changes["name"] == ["Account 3", "Renamed"]
    assert "country" not in changes and "payment_method" not in changes


def test_the_payment_group_is_complete_without_its_optional_columns_but_they_need_it() -> None:
    core = ["payment_method_type", "payment_method_brand", "payment_method_last4"]
    core += ["payment_method_exp_month", "payment_method_exp_year"]
    base = ["external_id", "name", "currency"]
    assert run(accounts_csv([account_row(1)], columns=base + core)).written
    report = run(accounts_csv([account_row(2)], columns=[*base, "country", "payment_method_funding"]))
    assert errors_of(report) == [(1, ", ".join(core))]
    assert "remove payment_method_funding" in report.errors[0].message
    assert not Customer.objects.filter(external_id="acct-2").exists()


def test_country_alone_updates_only_the_country() -> None:
    customer = CustomerFactory(external_id="acct-1", name="Kept", country="")
    report = run(b"external_id,name,currency,Country\r\nacct-1,Kept,EUR,gb\r\n")
    assert report.updated == 1, report.errors
    customer.refresh_from_db()
    assert (customer.name, customer.country) == ("Kept", "GB")
