"""The customer export page in Chromium, at 1440×900 and 390×844: the list's filters in words."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from tests.factories import CustomerFactory
from tests.support.browser import admin_tab, chromium

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_the_export_page_says_what_it_exports_in_words(browser, live_server, request, size) -> None:  # type: ignore[no-untyped-def]
    CustomerFactory(currency="EUR", segment="smb")
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")
    with admin_tab(browser, live_server, user, size=size, folder="admin", test_name=request.node.name) as tab:
        changelist = live_server.url + reverse("admin:customers_customer_changelist")
        tab.page.goto(f"{changelist}?currency=EUR&entitlement_state__exact=active")
        tab.page.get_by_role("link", name="Export").click()
        filters = tab.page.locator("ul.export-filters").inner_text()
        assert filters.splitlines() == ["Entitlement state: Active", "Currency: EUR"]
        assert "__exact" not in tab.page.content()
        tab.shot("export")
        assert tab.overflow() == 0
        assert tab.problems == []
