"""CSV import and export on the customer changelist: permissions, preview, confirm, export."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from customers.accounts_csv import services
from customers.actors import Actor
from customers.models import AccountImport, AccountImportStatus, AuditEvent, Customer
from customers.tasks import purge_expired_account_imports
from tests.factories import CustomerFactory, account_row, accounts_csv

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:customers_customer_changelist"
IMPORT = "admin:customers_customer_import"
PROCESS = "admin:customers_customer_process_import"
EXPORT = "admin:customers_customer_export"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def grant(user, *codenames: str) -> None:  # type: ignore[no-untyped-def]
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))


def upload(client, data: bytes, name: str = "accounts.csv"):  # type: ignore[no-untyped-def]
    return client.post(reverse(IMPORT), {"file": SimpleUploadedFile(name, data, content_type="text/csv")})


def test_buttons_show_only_with_their_permission(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    grant(staff_user, "view_customer")
    client.force_login(staff_user)
    page = client.get(reverse(CHANGELIST)).content.decode()
    assert reverse(IMPORT) not in page and reverse(EXPORT) not in page
    grant(staff_user, "import_customer")
    page = client.get(reverse(CHANGELIST)).content.decode()
    assert reverse(IMPORT) in page and reverse(EXPORT) not in page
    grant(staff_user, "export_customer")
    page = client.get(reverse(CHANGELIST)).content.decode()
    assert reverse(EXPORT) in page


def test_only_holders_of_the_import_permission_can_import(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    # Even full add/change rights on customers are not enough: importing is its own permission.
    grant(staff_user, "view_customer", "add_customer", "change_customer", "export_customer")
    client.force_login(staff_user)
    assert client.get(reverse(IMPORT)).status_code == 403
    assert upload(client, accounts_csv([account_row(1)])).status_code == 403
    assert (
        client.post(reverse(PROCESS), {"import_id": "00000000-0000-0000-0000-000000000000"}).status_code
        == 403
    )
    assert not Customer.objects.exists()
    assert not AccountImport.objects.exists()


def test_only_holders_of_the_export_permission_can_export(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    grant(staff_user, "view_customer", "import_customer")
    client.force_login(staff_user)
    assert client.get(reverse(EXPORT)).status_code == 403
    assert client.post(reverse(EXPORT), {"bom": "on"}).status_code == 403
    assert not AuditEvent.objects.exists()


def test_import_through_preview_and_confirm(client, staff_user, media_root: Path) -> None:  # type: ignore[no-untyped-def]
    grant(staff_user, "view_customer", "import_customer")
    client.force_login(staff_user)
    CustomerFactory(external_id="acct-2", name="Old name")
    CustomerFactory(external_id="acct-3", name="Same", **_unchanged_fields(3))
    rows = [account_row(1), account_row(2), account_row(3, name="Same")]
    response = upload(client, accounts_csv(rows))
    assert response.status_code == 302
    record = AccountImport.objects.get()
    assert response["Location"] == reverse("admin:customers_customer_import_preview", args=[record.pk])
    # The pending file is in media storage, where another server can read it, not in a temp folder.
    stored = media_root / record.file.name
    assert stored.read_bytes() == accounts_csv(rows)

    preview = client.get(response["Location"])
    page = preview.content.decode()
    assert '<td class="count-new">1</td>' in page
    assert '<td class="count-updated">2</td>' in page  # acct-3 gains a contact and a card
    assert '<td class="count-invalid">0</td>' in page
    assert 'name="confirm"' in page
    assert Customer.objects.get(external_id="acct-2").name == "Old name"  # a preview writes nothing

    done = client.post(reverse(PROCESS), {"import_id": record.pk, "confirm": "Confirm"})
    assert done.status_code == 302 and done["Location"] == reverse(CHANGELIST)
    assert Customer.objects.get(external_id="acct-2").name == "Account 2"
    assert Customer.objects.count() == 3
    record.refresh_from_db()
    assert record.status == AccountImportStatus.IMPORTED
    assert not record.file and not stored.exists()
    event = AuditEvent.objects.get(action="customers.imported")
    assert (event.actor_user, event.details["created"]) == (staff_user, 1)
    messages = [str(m) for m in done.wsgi_request._messages]
    assert messages == ["Imported accounts.csv: 1 new, 2 updated, 0 unchanged."]

    again = client.post(reverse(PROCESS), {"import_id": record.pk, "confirm": "Confirm"})
    assert again.status_code == 302
    assert AuditEvent.objects.filter(action="customers.imported").count() == 1


def _unchanged_fields(number: int) -> dict[str, str]:
    row = account_row(number)
    return {k: row[k] for k in ("email", "company", "segment", "currency", "locale", "time_zone")}


def test_preview_lists_every_invalid_row_and_offers_no_confirmation(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    grant(staff_user, "import_customer")
    client.force_login(staff_user)
    rows = [account_row(1), account_row(2, currency="EURO"), account_row(1), account_row(4, email="@")]
    response = client.get(upload(client, accounts_csv(rows))["Location"])
    page = response.content.decode()
    assert "3 errors: nothing will be written" in page
    report = response.context["report"]
    assert [(e.line, e.column) for e in report.errors] == [(3, "currency"), (4, "external_id"), (5, "email")]
    assert 'name="confirm"' not in page
    assert 'name="discard"' in page
    # Forcing a confirmation anyway writes nothing: the file is validated again.
    record = AccountImport.objects.get()
    client.post(reverse(PROCESS), {"import_id": record.pk, "confirm": "Confirm"})
    assert not Customer.objects.exists()
    record.refresh_from_db()
    assert record.status == AccountImportStatus.FAILED


def test_a_large_file_preview_shows_counts_not_rows(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    grant(staff_user, "import_customer")
    client.force_login(staff_user)
    rows = [account_row(n) for n in range(1, 1501)]
    page = client.get(upload(client, accounts_csv(rows))["Location"]).content.decode()
    assert '<td class="count-new">1,500</td>' in page
    assert "acct-1500" not in page


def test_all_errors_can_be_downloaded_when_the_page_shows_only_the_first(
    client, staff_user, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    grant(staff_user, "import_customer")
    client.force_login(staff_user)
    monkeypatch.setattr(services, "PREVIEW_ERRORS", 2)
    rows = [account_row(n, currency="=BAD") for n in range(1, 6)]
    page = client.get(upload(client, accounts_csv(rows))["Location"]).content.decode()
    assert len(AccountImport.objects.get().report["errors"]) == 2
    record = AccountImport.objects.get()
    assert "Download all errors" in page
    response = client.get(reverse("admin:customers_customer_import_errors", args=[record.pk]))
    report = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert report[0] == ["line", "column", "value", "reason"]
    assert [r[0] for r in report[1:]] == ["2", "3", "4", "5", "6"]
    assert report[1][2] == "'=BAD"  # values from the file are escaped too


def test_only_the_uploader_can_see_or_confirm_an_import(client, staff_user, django_user_model) -> None:  # type: ignore[no-untyped-def]
    grant(staff_user, "import_customer")
    client.force_login(staff_user)
    upload(client, accounts_csv([account_row(1)]))
    record = AccountImport.objects.get()
    other = django_user_model.objects.create_user(username="other", password="pw", is_staff=True)
    grant(other, "import_customer")
    client.force_login(other)
    assert client.get(reverse("admin:customers_customer_import_preview", args=[record.pk])).status_code == 404
    client.post(reverse(PROCESS), {"import_id": record.pk, "confirm": "Confirm"})
    assert not Customer.objects.exists()


def test_discard_deletes_the_stored_file(client, staff_user, media_root: Path) -> None:  # type: ignore[no-untyped-def]
    grant(staff_user, "import_customer")
    client.force_login(staff_user)
    upload(client, accounts_csv([account_row(1)]))
    record = AccountImport.objects.get()
    stored = media_root / record.file.name
    assert stored.exists()
    client.post(reverse(PROCESS), {"import_id": record.pk, "discard": "Discard"})
    record.refresh_from_db()
    assert record.status == AccountImportStatus.DISCARDED
    assert not stored.exists()
    assert not Customer.objects.exists()


def test_expired_imports_lose_their_file_and_cannot_be_confirmed(
    client, staff_user, media_root: Path
) -> None:  # type: ignore[no-untyped-def]
    grant(staff_user, "import_customer")
    client.force_login(staff_user)
    upload(client, accounts_csv([account_row(1)]))
    record = AccountImport.objects.get()
    stored = media_root / record.file.name
    AccountImport.objects.filter(pk=record.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    client.post(reverse(PROCESS), {"import_id": record.pk, "confirm": "Confirm"})
    assert not Customer.objects.exists()
    assert purge_expired_account_imports() == 1  # the task queue's entry point
    record.refresh_from_db()
    assert record.status == AccountImportStatus.EXPIRED
    assert not stored.exists()


def test_a_file_that_is_not_csv_text_is_refused_on_upload(client, staff_user, media_root: Path) -> None:  # type: ignore[no-untyped-def]
    grant(staff_user, "import_customer")
    client.force_login(staff_user)
    response = upload(client, b"PK\x03\x04\x14\x00\x06\x00\xff\xfe binary workbook", name="accounts.xlsx")
    assert response.status_code == 200
    assert "not UTF-8 text" in response.context["form"].errors["file"][0]
    assert not AccountImport.objects.exists()
    assert not list(media_root.rglob("*.csv"))


def test_export_honours_the_changelist_filters_and_is_audited(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    grant(staff_user, "view_customer", "export_customer")
    client.force_login(staff_user)
    CustomerFactory(external_id="e1", currency="EUR", name="+Plus")
    CustomerFactory(external_id="e2", currency="EUR", name="Alice")
    CustomerFactory(external_id="u1", currency="USD", name="Alice")
    url = reverse(EXPORT) + "?currency=EUR&q=Alice&entitlement_state__exact=active"
    page = client.get(url)
    assert page.status_code == 200
    # The filters in words, as the list's sidebar names them, not as URL parameters.
    assert page.context["filter_words"] == [
        ("Entitlement state", "Active"),
        ("Currency", "EUR"),
        ("Search", "Alice"),
    ]
    assert "Entitlement state: <strong>Active</strong>" in page.content.decode()
    assert "__exact" not in page.content.decode()
    response = client.post(url, {})
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="customers-')
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["external_id"] for r in rows] == ["e2"]
    event = AuditEvent.objects.get(action="customers.exported")
    assert event.actor_user == staff_user
    assert event.details == {
        "filters": {"currency": ["EUR"], "q": ["Alice"], "entitlement_state__exact": ["active"]},
        "rows": 1,
        "complete": True,
    }


def test_export_escapes_formulae_and_can_add_a_bom(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    grant(staff_user, "export_customer")
    client.force_login(staff_user)
    CustomerFactory(external_id="e1", name="@SUM(1)")
    body = b"".join(client.post(reverse(EXPORT), {"bom": "on"}).streaming_content).decode()
    assert body.startswith("\ufeffexternal_id,")
    assert ",'@SUM(1)," in body


def test_export_with_bad_filters_goes_back_to_the_list(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    grant(staff_user, "view_customer", "export_customer")
    client.force_login(staff_user)
    response = client.get(reverse(EXPORT) + "?nonsense__field=1")
    assert response.status_code == 302
    assert response["Location"] == reverse(CHANGELIST)


def test_the_changelist_keeps_its_large_table_behaviour(admin_client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.ADMIN_EXACT_COUNT_LIMIT = 2
    for _ in range(3):
        CustomerFactory()
    response = admin_client.get(reverse(CHANGELIST))
    names = [t.name for t in response.templates]
    assert "admin/import_export/change_list_import_export.html" in names
    assert "admin/large_change_list.html" in names
    assert "That count is an estimate" in response.content.decode()


def test_past_imports_are_listed_read_only(admin_client) -> None:  # type: ignore[no-untyped-def]
    upload(admin_client, accounts_csv([account_row(1)]))
    record = AccountImport.objects.get()
    page = admin_client.get(reverse("admin:customers_accountimport_changelist")).content.decode()
    assert "accounts.csv" in page and "1 new, 0 updated" in page
    assert admin_client.get(reverse("admin:customers_accountimport_add")).status_code == 403
    change = admin_client.post(reverse("admin:customers_accountimport_change", args=[record.pk]), {})
    assert change.status_code == 403


def test_confirming_a_file_that_changes_nothing_says_so(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    grant(staff_user, "view_customer", "import_customer")
    client.force_login(staff_user)
    data = accounts_csv([account_row(1), account_row(2)])
    services.accounts_import(source=io.BytesIO(data), actor=Actor.system("test"))
    record_url = upload(client, data)["Location"]
    assert (
        "Nothing to import: every account in the file is already up to date."
        in client.get(record_url).content.decode()
    )
    record = AccountImport.objects.get()
    done = client.post(reverse(PROCESS), {"import_id": record.pk, "confirm": "Confirm"})
    assert done["Location"] == reverse(CHANGELIST)
    assert [str(m) for m in done.wsgi_request._messages] == [
        "Nothing changed: every account in accounts.csv is already up to date (2 unchanged)."
    ]
    record.refresh_from_db()
    assert record.status == AccountImportStatus.IMPORTED
    assert AuditEvent.objects.filter(action="customers.imported").count() == 1  # the first import only


def test_an_empty_upload_is_refused_as_unreadable(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    grant(staff_user, "import_customer")
    client.force_login(staff_user)
    for data in (b"", b"\n\n"):  # Django's form refuses zero bytes; the reader finds no header in the rest
        response = upload(client, data)
        assert response.status_code == 200
        assert "file is empty" in response.content.decode()
    assert not AccountImport.objects.exists()
