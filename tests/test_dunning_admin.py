"""The dunning admin: decline codes, policies (validation, publish, timeline) and the case queue."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from customers.models import InvoiceStatus
from dunning.models import CaseEventKind, CaseState, DeclineCode, DunningPolicy, PaymentAttempt, PolicyVersion
from tests.factories import failed_invoice

pytestmark = pytest.mark.django_db


def policy_form(name: str, steps: list[tuple[int, int | None, str, str]], grace: int = 7) -> dict[str, str]:
    data = {
        "name": name,
        "description": "",
        "is_active": "on",
        "priority": "5",
        "max_retries": "4",
        "network_retry_cap": "15",
        "grace_period_days": str(grace),
        "match_segment": "",
        "match_currency": "",
        "match_payment_method_type": "",
        "steps-TOTAL_FORMS": str(len(steps)),
        "steps-INITIAL_FORMS": "0",
        "versions-TOTAL_FORMS": "0",
        "versions-INITIAL_FORMS": "0",
    }
    for index, (day, hour, action, template) in enumerate(steps):
        data.update(
            {
                f"steps-{index}-position": str(index + 1),
                f"steps-{index}-day_offset": str(day),
                f"steps-{index}-local_hour": "" if hour is None else str(hour),
                f"steps-{index}-action": action,
                f"steps-{index}-template_key": template,
            }
        )
    return data


def test_unclassified_codes_are_listed_for_staff_and_classifying_one_marks_it(admin_client) -> None:  # type: ignore[no-untyped-def]
    failed_invoice(decline_code="mystery_issuer_reason")
    url = reverse("admin:dunning_declinecode_changelist")
    listed = admin_client.get(url, {"classified": "no"}).context["cl"].result_list
    assert [code.code for code in listed] == ["mystery_issuer_reason"]
    code = DeclineCode.objects.get(code="mystery_issuer_reason")
    response = admin_client.post(
        reverse("admin:dunning_declinecode_change", args=[code.pk]),
        {
            "processor": "stripe",
            "code": "mystery_issuer_reason",
            "category": "hard",
            "customer_message": "Please use another card.",
            "staff_description": "",
            "is_classified": "",
        },
    )
    assert response.status_code == 302
    code.refresh_from_db()
    assert (code.category, code.is_classified) == ("hard", True)


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([(3, 9, "retry", ""), (1, 9, "retry", "")], "day offsets must not decrease"),
        ([(1, 9, "mark_uncollectible", ""), (2, 9, "email", "failure_2")], "must be the last step"),
        ([(3, 9, "suspend", "")], "inside the 7-day grace period"),
        ([(1, None, "email", "")], "needs a template key"),
    ],
)
def test_the_policy_inline_refuses_invalid_step_lists(admin_client, steps, message) -> None:  # type: ignore[no-untyped-def]
    response = admin_client.post(reverse("admin:dunning_dunningpolicy_add"), policy_form("Bad", steps))
    assert response.status_code == 200
    errors = " ".join(
        str(e)
        for formset in response.context["inline_admin_formsets"]
        for e in formset.formset.non_form_errors()
    )
    assert message in errors
    assert not DunningPolicy.objects.filter(name="Bad").exists()


def test_a_valid_policy_is_saved_published_and_previewed(admin_client) -> None:  # type: ignore[no-untyped-def]
    steps = [(0, None, "email", "failure_1"), (1, 9, "retry", ""), (8, 9, "suspend", "")]
    response = admin_client.post(reverse("admin:dunning_dunningpolicy_add"), policy_form("Good", steps))
    assert response.status_code == 302
    policy = DunningPolicy.objects.get(name="Good")
    change = admin_client.get(
        reverse("admin:dunning_dunningpolicy_change", args=[policy.pk])
    ).content.decode()
    assert "Day 8" in change and "Suspend access" in change
    publish_url = reverse("admin:dunning_dunningpolicy_publish", args=[policy.pk])
    assert "Publish" in admin_client.get(publish_url).content.decode()
    admin_client.post(publish_url, {"notes": "first"})
    version = PolicyVersion.objects.get(policy=policy)
    assert (version.number, len(version.steps), version.notes) == (1, 3, "first")
    timeline = admin_client.get(
        reverse("admin:dunning_dunningpolicy_timeline", args=[policy.pk]),
        {"tz": "Asia/Tokyo", "version": "1"},
    ).content.decode()
    assert "09:00" in timeline and "Asia/Tokyo" in timeline


def test_the_case_queue_runs_a_constant_number_of_queries(admin_client) -> None:  # type: ignore[no-untyped-def]
    url = reverse("admin:dunning_dunningcase_changelist")

    def count() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(url).status_code == 200
        return len(captured.captured_queries)

    for _ in range(3):
        failed_invoice()
    small = count()
    for _ in range(3):
        failed_invoice()
    assert count() == small


def test_queue_filters_by_amount_band_in_each_currency(admin_client) -> None:  # type: ignore[no-untyped-def]
    small, _, _ = failed_invoice(amount_minor=5_000)  # €50
    big, _, _ = failed_invoice(amount_minor=500_000)  # €5,000
    yen, _, _ = failed_invoice(amount_minor=5_000, currency="JPY")  # ¥5,000
    url = reverse("admin:dunning_dunningcase_changelist")
    band = admin_client.get(url, {"amount": "1k-10k"}).context["cl"].result_list
    assert {case.pk for case in band} == {big.pk, yen.pk}
    assert [c.pk for c in admin_client.get(url, {"amount": "lt100"}).context["cl"].result_list] == [small.pk]


def test_the_case_page_shows_attempts_events_and_steps_to_come(admin_client) -> None:  # type: ignore[no-untyped-def]
    case, _, _ = failed_invoice()
    content = admin_client.get(reverse("admin:dunning_dunningcase_change", args=[case.pk])).content.decode()
    assert "insufficient_funds (soft)" in content
    assert "To come:" in content and "Retry the charge" in content
    assert "Retry now" in content and "Hand off to collections" in content


def test_staff_actions_need_their_permissions(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    case, _, _ = failed_invoice()
    client.force_login(staff_user)
    staff_user.user_permissions.add(Permission.objects.get(codename="view_dunningcase"))
    pause_url = reverse("admin:dunning_dunningcase_action", args=[case.pk, "pause"])
    assert client.post(pause_url, {"text": "Customer on holiday"}).status_code == 403
    staff_user.user_permissions.add(Permission.objects.get(codename="manage_dunningcase"))
    staff_user = type(staff_user).objects.get(pk=staff_user.pk)  # drop the permission cache
    client.force_login(staff_user)
    assert client.post(pause_url, {"text": "Customer on holiday"}).status_code == 302
    case.refresh_from_db()
    assert case.state == CaseState.PAUSED
    retry_url = reverse("admin:dunning_dunningcase_action", args=[case.pk, "retry"])
    assert client.post(retry_url).status_code == 403


def test_retry_now_asks_for_confirmation_then_charges_once(admin_client) -> None:  # type: ignore[no-untyped-def]
    case, invoice, _ = failed_invoice(card="pm_sim_4242424242424242")
    url = reverse("admin:dunning_dunningcase_action", args=[case.pk, "retry"])
    page = admin_client.get(url).content.decode()
    assert "Yes, charge €49.00" in page
    assert PaymentAttempt.objects.filter(invoice=invoice).count() == 1  # GET changes nothing
    admin_client.post(url)
    case.refresh_from_db()
    invoice.refresh_from_db()
    assert (case.state, case.recovery_channel, invoice.status) == (
        CaseState.RECOVERED,
        "staff",
        InvoiceStatus.PAID,
    )
    admin_client.post(url)  # a second click: the invoice is paid, nothing is charged
    assert PaymentAttempt.objects.filter(invoice=invoice).count() == 2


def test_mark_paid_needs_a_reference_and_records_it(admin_client) -> None:  # type: ignore[no-untyped-def]
    case, invoice, _ = failed_invoice()
    url = reverse("admin:dunning_dunningcase_action", args=[case.pk, "mark_paid"])
    form = {"amount": "49.00", "paid_on": timezone.localdate().isoformat(), "method": "bank_transfer"}
    response = admin_client.post(url, {**form, "reference": ""})
    assert response.status_code == 200
    assert response.context["form"].errors["reference"] == ["This field is required."]
    admin_client.post(url, {**form, "reference": "SEPA transfer 2026-0412"})
    case.refresh_from_db()
    assert (case.state, case.recovery_channel) == (CaseState.RECOVERED, "staff")
    assert case.events.filter(kind=CaseEventKind.NOTE, reason__contains="SEPA transfer 2026-0412").exists()


def test_hand_off_and_notes_are_audited(admin_client, admin_user) -> None:  # type: ignore[no-untyped-def]
    case, _, _ = failed_invoice()
    admin_client.post(
        reverse("admin:dunning_dunningcase_action", args=[case.pk, "note"]), {"text": "Called them."}
    )
    admin_client.post(
        reverse("admin:dunning_dunningcase_action", args=[case.pk, "hand_off"]), {"text": "Agency X"}
    )
    case.refresh_from_db()
    assert case.state == CaseState.HANDED_OFF
    change = case.events.get(kind=CaseEventKind.STATE_CHANGED)
    assert (change.actor_user, change.reason, change.from_state, change.to_state) == (
        admin_user,
        "Agency X",
        "open",
        "handed_off",
    )
    assert case.events.filter(kind=CaseEventKind.NOTE, reason="Called them.").exists()


def test_bulk_pause_goes_through_the_service(admin_client) -> None:  # type: ignore[no-untyped-def]
    cases = [failed_invoice()[0] for _ in range(2)]
    admin_client.post(
        reverse("admin:dunning_dunningcase_changelist"),
        {"action": "pause_selected", "_selected_action": [c.pk for c in cases]},
    )
    for case in cases:
        case.refresh_from_db()
        assert case.state == CaseState.PAUSED
        assert case.events.filter(kind=CaseEventKind.STATE_CHANGED, to_state="paused").count() == 1


def test_resuming_shifts_the_remaining_schedule(admin_client) -> None:  # type: ignore[no-untyped-def]
    case, _, _ = failed_invoice(failed_at=timezone.now() - timedelta(hours=1))
    before = case.next_action_at
    admin_client.post(reverse("admin:dunning_dunningcase_action", args=[case.pk, "pause"]), {"text": "call"})
    case.refresh_from_db()
    case.paused_at -= timedelta(days=2)  # as if it had been paused for two days
    case.save(update_fields=["paused_at"])
    admin_client.post(reverse("admin:dunning_dunningcase_action", args=[case.pk, "resume"]))
    case.refresh_from_db()
    assert case.state == CaseState.OPEN
    assert case.schedule_shift_seconds >= 2 * 86400
    assert case.next_action_at - before >= timedelta(days=2)


def _messages(response) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(m.level_tag, m.message) for m in response.context["messages"]]


def test_the_queue_shows_open_and_paused_cases_first_by_next_action(admin_client) -> None:  # type: ignore[no-untyped-def]
    now = timezone.now()
    later, _, _ = failed_invoice(failed_at=now - timedelta(minutes=1))
    sooner, _, _ = failed_invoice(failed_at=now - timedelta(minutes=30))
    paused, _, _ = failed_invoice(failed_at=now - timedelta(minutes=10))
    admin_client.post(reverse("admin:dunning_dunningcase_action", args=[paused.pk, "pause"]), {"text": "x"})
    recovered, _, _ = failed_invoice(card="pm_sim_4242424242424242")
    admin_client.post(reverse("admin:dunning_dunningcase_action", args=[recovered.pk, "retry"]))
    url = reverse("admin:dunning_dunningcase_changelist")
    queue = [case.pk for case in admin_client.get(url).context["cl"].result_list]
    assert queue == [sooner.pk, paused.pk, later.pk]
    everything = [case.pk for case in admin_client.get(url, {"queue": "all"}).context["cl"].result_list]
    assert everything[-1] == recovered.pk and len(everything) == 4  # nothing scheduled: last
    chosen = admin_client.get(url, {"state__exact": "recovered"}).context["cl"].result_list
    assert [case.pk for case in chosen] == [recovered.pk]


def test_a_declined_retry_is_a_warning_in_plain_words_with_what_happens_next(admin_client) -> None:  # type: ignore[no-untyped-def]
    case, _, _ = failed_invoice(card="pm_sim_4000000000009995")  # insufficient funds again
    response = admin_client.post(
        reverse("admin:dunning_dunningcase_action", args=[case.pk, "retry"]), follow=True
    )
    [(level, text)] = _messages(response)
    assert level == "warning"
    assert text.startswith("The charge of €49.00 was declined: Not enough funds; retries around pay days")
    assert "Dunning carries on: next, “Send an email” on" in text  # day 0's email, not sent yet
    assert text.endswith("(decline code insufficient_funds)")


def test_a_hard_decline_on_retry_says_the_card_is_never_retried(admin_client) -> None:  # type: ignore[no-untyped-def]
    case, _, _ = failed_invoice(card="pm_sim_4000000000000069")  # the simulated card answers expired_card
    response = admin_client.post(
        reverse("admin:dunning_dunningcase_action", args=[case.pk, "retry"]), follow=True
    )
    [(level, text)] = _messages(response)
    assert level == "warning"
    assert "The card has expired." in text and "never retried: send the customer a portal link" in text


def test_a_refused_retry_is_explained_before_the_click_with_what_to_do_instead(admin_client) -> None:  # type: ignore[no-untyped-def]
    case, _, _ = failed_invoice(decline_code="authentication_required")
    url = reverse("admin:dunning_dunningcase_action", args=[case.pk, "retry"])
    page = admin_client.get(url)
    content = page.content.decode()
    assert "This retry would be refused: nothing will be charged." in content
    assert "This charges" not in content and "Yes, charge" not in content
    alternatives = page.context["alternatives"]
    assert reverse("admin:dunning_dunningcase_portal_link", args=[case.pk]) in [
        url for _, url in alternatives
    ]
    response = admin_client.post(url, follow=True)  # a forged post changes nothing either
    [(level, text)] = _messages(response)
    assert level == "warning" and text.startswith("Nothing was done: The bank asked the customer")
    assert PaymentAttempt.objects.filter(invoice=case.invoice).count() == 1


def test_mark_paid_takes_a_part_payment_and_dunning_carries_on(admin_client) -> None:  # type: ignore[no-untyped-def]
    case, invoice, _ = failed_invoice(amount_minor=4900)
    url = reverse("admin:dunning_dunningcase_action", args=[case.pk, "mark_paid"])
    form = admin_client.get(url).context["form"]
    assert form["amount"].initial == Decimal("49.00")
    data = {"paid_on": timezone.localdate().isoformat(), "method": "bank_transfer", "reference": "wire 9"}
    too_much = admin_client.post(url, {**data, "amount": "49.01"})
    assert too_much.context["form"].errors["amount"] == ["That is more than the €49.00 left to pay."]
    too_fine = admin_client.post(url, {**data, "amount": "1.005"})
    assert too_fine.context["form"].errors["amount"] == ["EUR amounts have fewer decimal places."]
    response = admin_client.post(url, {**data, "amount": "20.50"}, follow=True)
    assert _messages(response) == [
        ("success", "Part payment of €20.50 recorded: €28.50 left, dunning carries on for it.")
    ]
    invoice.refresh_from_db()
    case.refresh_from_db()
    assert (invoice.amount_paid_minor, invoice.status, case.state) == (2050, "open", CaseState.OPEN)


def test_pause_takes_a_reason_and_an_optional_resume_date(admin_client) -> None:  # type: ignore[no-untyped-def]
    case, _, _ = failed_invoice()
    url = reverse("admin:dunning_dunningcase_action", args=[case.pk, "pause"])
    assert admin_client.post(url, {"text": ""}).context["form"].errors["text"]
    today = timezone.localdate()
    assert admin_client.post(url, {"text": "x", "resume_on": today.isoformat()}).context["form"].errors[
        "resume_on"
    ] == ["Choose a day after today."]
    resume_on = today + timedelta(days=5)
    admin_client.post(url, {"text": "Promised to pay on the 5th", "resume_on": resume_on.isoformat()})
    case.refresh_from_db()
    assert case.state == CaseState.PAUSED
    page = admin_client.get(reverse("admin:dunning_dunningcase_change", args=[case.pk]))
    assert timezone.localdate(page.context["paused_until"]) == resume_on
    assert "it resumes by itself then" in page.content.decode()


def test_history_shows_the_case_timeline(admin_client) -> None:  # type: ignore[no-untyped-def]
    case, _, _ = failed_invoice(card="pm_sim_4242424242424242")
    admin_client.post(reverse("admin:dunning_dunningcase_action", args=[case.pk, "pause"]), {"text": "wait"})
    admin_client.post(reverse("admin:dunning_dunningcase_action", args=[case.pk, "resume"]), {"text": ""})
    admin_client.post(reverse("admin:dunning_dunningcase_action", args=[case.pk, "retry"]))
    history = admin_client.get(reverse("admin:dunning_dunningcase_history", args=[case.pk]))
    content = history.content.decode()
    assert history.status_code == 200
    assert "open → paused" in content and "paused → open" in content and "open → recovered" in content
    assert "Attempt succeeded" in content and "no history" not in content.lower()


def test_a_flagged_case_offers_mark_reviewed_and_clears_the_flag(admin_client) -> None:  # type: ignore[no-untyped-def]
    case, _, _ = failed_invoice(decline_code="fraudulent")
    page = admin_client.get(reverse("admin:dunning_dunningcase_change", args=[case.pk]))
    assert "Mark reviewed" in page.content.decode() and "Flagged for staff review." in page.content.decode()
    admin_client.post(
        reverse("admin:dunning_dunningcase_action", args=[case.pk, "review_done"]), {"text": "Stolen card."}
    )
    case.refresh_from_db()
    assert not case.needs_staff_review
    page = admin_client.get(reverse("admin:dunning_dunningcase_change", args=[case.pk]))
    assert "Mark reviewed" not in page.content.decode()


@pytest.mark.usefixtures("fixed_default_policy")
def test_the_case_page_and_the_case_report_count_retries_alike(admin_client) -> None:  # type: ignore[no-untyped-def]
    from dunning.services.tick import run_tick

    case, _, _ = failed_invoice(failed_at=timezone.now() - timedelta(days=2))
    run_tick()  # day 1's scheduled retry: declined again
    admin_client.post(reverse("admin:dunning_dunningcase_action", args=[case.pk, "retry"]))  # a staff retry
    case.refresh_from_db()
    assert case.retry_count == 1
    page = admin_client.get(reverse("admin:dunning_dunningcase_change", args=[case.pk])).content.decode()
    assert (
        "2 with a result (scheduled, staff, portal and card updates); 1 of 4 scheduled retries used" in page
    )
    report = admin_client.get(reverse("reporting:case", args=[case.pk]))
    assert report.context["report"].facts.retries == 2
    text = report.content.decode()
    assert '<td data-figure="retries">2 (scheduled, staff, portal and card updates)</td>' in text
    assert '<td data-figure="scheduled-retries">1 of 4</td>' in text
