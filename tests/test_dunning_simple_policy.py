"""Simple dunning settings: a few answers make an ordinary policy (draft or published), audited; the step
editor then refines it like any other."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from customers.actors import Actor
from customers.models import AuditEvent
from dunning.models import DunningPolicy, PolicyVersion
from dunning.services.policies import policy_steps_validate, policy_version_select
from dunning.services.simple_policy import (
    SimpleSettings,
    policy_save_simple,
    simple_policy_steps,
    simple_settings_of,
)
from tests.factories import CustomerFactory, InvoiceFactory

pytestmark = pytest.mark.django_db

STAFF = Actor.system("finance desk")


def _moments(steps: list[dict]) -> list[tuple[int, int | None, str, str]]:
    return [(s["day_offset"], s["local_hour"], s["action"], s["template_key"]) for s in steps]


def test_four_retries_over_28_days_with_every_email_and_a_suspension() -> None:
    steps = simple_policy_steps(SimpleSettings(retries=4, over_days=28, retry_hour=9))
    assert _moments(steps) == [
        (0, None, "email", "failure_1"),
        (0, None, "banner", "banner_payment_failed"),
        (7, 9, "retry", ""),
        (7, 10, "email", "failure_2"),
        (14, 9, "retry", ""),
        (14, 10, "email", "failure_3"),
        (21, 9, "retry", ""),
        (21, 10, "email", "final_notice"),
        (21, 10, "banner", "banner_final_notice"),
        (28, 9, "retry", ""),
        (28, 11, "suspend", ""),
        (28, 11, "email", "suspended"),
        (28, 11, "escalate", ""),
    ]
    assert all(s["decline_categories"] == ["processing", "soft"] for s in steps if s["action"] == "retry")
    policy_steps_validate(steps=steps, grace_period_days=28)  # a valid step list, as published


def test_an_invoice_ending_action_comes_last_and_unchosen_emails_are_left_out() -> None:
    steps = simple_policy_steps(
        SimpleSettings(
            retries=2,
            over_days=10,
            retry_hour=8,
            emails=frozenset({"failure_1"}),
            banners=False,
            end_action="mark_uncollectible",
            escalate=True,
        )
    )
    assert _moments(steps) == [
        (0, None, "email", "failure_1"),
        (5, 8, "retry", ""),
        (10, 8, "retry", ""),
        (10, 10, "escalate", ""),
        (10, 10, "mark_uncollectible", ""),
    ]
    policy_steps_validate(steps=steps, grace_period_days=10)


def test_the_final_notice_avoids_a_day_with_another_email() -> None:
    steps = simple_policy_steps(SimpleSettings(retries=3, over_days=21))
    days = {s["template_key"]: s["day_offset"] for s in steps if s["action"] == "email"}
    assert days == {"failure_1": 0, "failure_2": 7, "failure_3": 14, "final_notice": 15, "suspended": 21}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (SimpleSettings(retries=5, over_days=3), "At most one retry a day"),
        (SimpleSettings(retries=11, over_days=30), "between 0 and 10 retries"),
        (SimpleSettings(retry_hour=23), "Retries run between"),
        (SimpleSettings(emails=frozenset({"spam"})), "Unknown emails"),
        (
            SimpleSettings(retries=0, emails=frozenset(), banners=False, end_action="", escalate=False),
            "at least one",
        ),
    ],
)
def test_answers_that_make_no_sense_are_refused(settings: SimpleSettings, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        simple_policy_steps(settings)


def test_a_draft_policy_is_written_audited_and_not_used_until_published() -> None:
    settings = SimpleSettings(retries=2, over_days=14, end_action="degrade")
    policy, version = policy_save_simple(
        settings=settings, actor=STAFF, name="SMB simple", match_segment="smb"
    )
    assert version is None
    assert (policy.max_retries, policy.grace_period_days, policy.match_segment) == (2, 14, "smb")
    assert [s.as_frozen() for s in policy.steps.order_by("position")] == simple_policy_steps(settings)
    audit = AuditEvent.objects.get(action="policy.simple_settings_saved")
    assert audit.details["policy_id"] == policy.pk and audit.details["settings"]["retries"] == 2
    invoice = InvoiceFactory(customer=CustomerFactory(segment="smb"))
    assert policy_version_select(invoice=invoice, payment_method=None).policy.name == "Default"


def test_publishing_makes_an_ordinary_version_that_matching_invoices_use() -> None:
    settings = SimpleSettings(retries=3, over_days=21)
    policy, version = policy_save_simple(
        settings=settings, actor=STAFF, name="SMB simple", match_segment="smb", publish=True
    )
    assert isinstance(version, PolicyVersion)
    assert (version.number, version.max_retries, version.grace_period_days) == (1, 3, 21)
    assert version.steps == simple_policy_steps(settings)
    assert AuditEvent.objects.filter(action="policy.published").count() == 1
    smb = InvoiceFactory(customer=CustomerFactory(segment="smb"))
    other = InvoiceFactory(customer=CustomerFactory(segment="enterprise"))
    assert policy_version_select(invoice=smb, payment_method=None) == version
    assert policy_version_select(invoice=other, payment_method=None).policy.name == "Default"


def test_saving_again_replaces_the_draft_steps_and_keeps_published_versions() -> None:
    policy, first = policy_save_simple(
        settings=SimpleSettings(retries=3, over_days=21), actor=STAFF, name="P", publish=True
    )
    policy, _ = policy_save_simple(
        settings=SimpleSettings(retries=1, over_days=7, end_action=""), actor=STAFF, policy=policy, name="P"
    )
    assert policy.steps.filter(action="retry").count() == 1
    assert first is not None
    first.refresh_from_db()
    assert len([s for s in first.steps if s["action"] == "retry"]) == 3
    assert simple_settings_of(policy).retries == 1 and simple_settings_of(policy).end_action == ""


def test_the_admin_page_previews_then_saves_a_policy_the_step_editor_can_open(admin_client) -> None:  # type: ignore[no-untyped-def]
    url = reverse("admin:dunning_dunningpolicy_simple_add")
    assert "smart-retries" in admin_client.get(url).content.decode()
    form = {
        "name": "Enterprise gentle",
        "description": "",
        "priority": "50",
        "match_segment": "enterprise",
        "match_currency": "eur",
        "match_payment_method_type": "",
        "retries": "2",
        "over_days": "20",
        "retry_hour": "9",
        "emails": ["failure_1", "final_notice"],
        "banners": "on",
        "end_action": "degrade",
        "escalate": "on",
    }
    preview = admin_client.post(url, {**form, "preview": "1"})
    assert preview.status_code == 200 and "Day 20" in preview.content.decode()
    assert not DunningPolicy.objects.filter(name="Enterprise gentle").exists()
    saved = admin_client.post(url, {**form, "save": "1", "publish": "on"})
    policy = DunningPolicy.objects.get(name="Enterprise gentle")
    assert saved.status_code == 302 and saved["Location"].endswith(f"/{policy.pk}/change/")
    assert (policy.match_currency, policy.priority, policy.versions.count()) == ("EUR", 50, 1)
    editor = admin_client.get(reverse("admin:dunning_dunningpolicy_change", args=[policy.pk]))
    steps = next(f for f in editor.context["inline_admin_formsets"] if f.opts.model.__name__ == "PolicyStep")
    assert steps.formset.initial_form_count() == policy.steps.count() == 8
    # The step editor shows a decline-category multi-select, not a row of checkboxes per category.
    html = editor.content.decode()
    assert (
        'select name="steps-0-decline_categories"' in html
        and 'type="checkbox" name="steps-0-decline' not in html
    )


def test_a_duplicate_name_is_refused_on_the_form(admin_client) -> None:  # type: ignore[no-untyped-def]
    response = admin_client.post(
        reverse("admin:dunning_dunningpolicy_simple_add"),
        {
            "name": "Default",
            "priority": "5",
            "retries": "1",
            "over_days": "5",
            "retry_hour": "9",
            "save": "1",
        },
    )
    assert response.status_code == 200
    assert response.context["form"].errors["name"]
    assert DunningPolicy.objects.filter(name="Default").count() == 1
