"""The dashboard in Chromium: every chart draws on its canvas, from the vendored Chart.js, without a console
error or a failed request, and every table opens."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from reporting.services import rollups_refresh
from tests.factories.reporting import END, START, build_known_data
from tests.support.browser import VIEWPORTS, admin_tab, chromium
from tests.support.staff import StaffClient

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser():  # type: ignore[no-untyped-def]
    with chromium() as launched:
        yield launched


def test_the_dashboard_charts_render_without_errors(browser, live_server, dunning_seeds) -> None:  # type: ignore[no-untyped-def]
    build_known_data()
    rollups_refresh(full=True)
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")
    client = StaffClient()  # signed in with a verified second factor, as a superuser must be
    client.force_login(user)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value

    context = browser.new_context()
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}])
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
    page.on("response", lambda r: problems.append(f"{r.status}: {r.url}") if r.status >= 400 else None)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    page.goto(f"{live_server.url}/admin/reports/?start={START.isoformat()}&end={END.isoformat()}")
    page.wait_for_function("() => document.readyState === 'complete' && window.Chart !== undefined")
    slugs = page.eval_on_selector_all("canvas[data-chart]", "canvases => canvases.map(c => c.dataset.chart)")
    assert slugs == ["weekly", "retries", "channels", "time-to-recovery"]
    for slug in slugs:
        drawn = page.evaluate(
            """(slug) => {
                const canvas = document.querySelector(`canvas[data-chart="${slug}"]`);
                const chart = window.Chart.getChart(canvas);
                const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
                let painted = 0;
                for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] !== 0) painted++; }
                return {chart: Boolean(chart), width: canvas.width, height: canvas.height, painted,
                        points: chart ? chart.data.datasets.reduce((n, d) => n + d.data.length, 0) : 0};
            }""",
            slug,
        )
        assert drawn["chart"] and drawn["width"] > 0 and drawn["height"] > 0, (slug, drawn)
        assert drawn["points"] > 0, (slug, drawn)
        assert drawn["painted"] > 500, (slug, drawn)  # axes, labels and bars, not a blank canvas

    # The table view under a chart opens and shows its rows.
    page.click("#section-retries summary")
    assert page.locator("#table-retries tbody tr").count() == 3
    assert page.locator("#table-retries").is_visible()
    assert problems == []
    assert all(url.startswith(live_server.url) for url in requested), (
        "the page must load nothing from elsewhere"
    )
    context.close()


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_opening_every_table_never_widens_the_page(
    browser, live_server, dunning_seeds, request, size
) -> None:  # type: ignore[no-untyped-def]
    build_known_data()
    rollups_refresh(full=True)
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")
    with admin_tab(
        browser, live_server, user, size=size, folder="reports", test_name=request.node.name
    ) as tab:
        page = tab.page
        page.goto(f"{live_server.url}/admin/reports/?start={START.isoformat()}&end={END.isoformat()}")
        page.wait_for_function("() => document.readyState === 'complete' && window.Chart !== undefined")
        assert tab.overflow() == 0
        tab.shot("dashboard")
        for summary in page.locator(".reporting-chart summary").all():
            summary.click()
        assert page.locator(".reporting-chart details[open]").count() == 4
        assert tab.overflow() == 0, "an opened table widened the page"
        # A table wider than its chart scrolls inside its own box.
        widths = page.eval_on_selector_all(
            ".reporting-chart", "sections => sections.map(s => s.getBoundingClientRect().right)"
        )
        assert max(widths) <= VIEWPORTS[size]["width"]
        tab.shot("tables-open")
        assert tab.problems == []


def test_the_date_inputs_show_the_90_days_that_apply(browser, live_server) -> None:  # type: ignore[no-untyped-def]
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")
    with admin_tab(browser, live_server, user, size="desktop", folder="reports", test_name="dates") as tab:
        tab.page.goto(f"{live_server.url}/admin/reports/")
        start = tab.page.locator("input[name=start]").input_value()
        end = tab.page.locator("input[name=end]").input_value()
        today = timezone.localdate()
        assert (start, end) == ((today - timedelta(days=89)).isoformat(), today.isoformat())
        assert tab.problems == []
