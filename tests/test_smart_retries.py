"""Smart retry steps in the engine: the slot, its explanation, the threshold, the spacing, the caps and
blocks, retry budgets, and what each tick retry records for the next model rebuild."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dunning.gateways.simulated import SimulatedGateway, _MemoryLedger
from dunning.models import (
    AttemptSource,
    CaseEvent,
    CaseEventKind,
    DunningCase,
    DunningPolicy,
    PaymentAttempt,
    PolicyStep,
    RetryTiming,
)
from dunning.selectors import policy_timeline
from dunning.services.planning import CaseSnapshot, VersionRules, plan_case, retry_blocker, smart_window
from dunning.services.policies import budget_steps, policy_publish
from dunning.services.smart_timing import decide_slot
from dunning.services.tick import run_tick
from dunning.timing.features import RetryContext
from dunning.timing.model import TimingModel
from tests.factories import TEST_ACTOR, failed_invoice, make_policy

PARIS = ZoneInfo("Europe/Paris")
OPENED = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)  # Monday 14:00 in Paris
RETRYABLE = ["soft", "processing"]


def smart_policy(*, window_days: int = 3, **fields: object) -> DunningPolicy:
    """Day 0 email; a smart retry in days 1..1+window; a day-6 email; a day-9 retry (fixed)."""
    policy = make_policy(
        name="Smart",
        steps=[
            (0, None, "email", "failure_1", []),
            (1, 0, "retry", "", RETRYABLE),
            (6, 10, "email", "failure_2", []),
            (9, 9, "retry", "", RETRYABLE),
        ],
        publish=False,
        **fields,
    )
    PolicyStep.objects.filter(policy=policy, position=2).update(
        timing=RetryTiming.SMART, window_days=window_days
    )
    policy_publish(policy=policy, actor=TEST_ACTOR)
    return policy


def tick(moment: datetime) -> None:
    run_tick(now=moment, gateway=SimulatedGateway(ledger="memory", rules=[]))


def retries_of(case: DunningCase) -> list[PaymentAttempt]:
    return list(PaymentAttempt.objects.filter(case=case, source=AttemptSource.RETRY).order_by("number"))


@pytest.fixture(autouse=True)
def _fresh_ledger() -> None:
    _MemoryLedger.reset()


@pytest.mark.django_db
def test_a_smart_retry_waits_for_its_slot_explains_it_and_records_what_it_was_sent_in() -> None:
    smart_policy()
    case, _invoice, _method = failed_invoice(failed_at=OPENED, time_zone="Europe/Paris")
    tick(OPENED)  # the day-0 email
    window_opens = datetime(2026, 5, 5, 0, 0, tzinfo=PARIS).astimezone(UTC)
    tick(window_opens)
    case.refresh_from_db()
    timing = case.retry_timing
    assert timing["step"] == 1 and not timing["skip"]
    slot = datetime.fromisoformat(timing["at"])
    assert window_opens <= slot <= window_opens + timedelta(days=3)
    assert case.next_action_at == slot and case.next_step_index == 1
    assert "%" in timing["explanation"] and timing["choice"]["runner_ups"]
    scheduled = CaseEvent.objects.get(case=case, kind=CaseEventKind.RETRY_SCHEDULED)
    assert scheduled.reason.startswith("smart retry scheduled: ")
    assert retries_of(case) == []

    tick(slot - timedelta(minutes=1))
    assert retries_of(case) == [], "nothing is charged before the slot"
    tick(slot)
    [attempt] = retries_of(case)
    local = slot.astimezone(PARIS)
    assert attempt.timing_mode == "smart"
    assert (attempt.local_weekday, attempt.local_hour, attempt.local_day) == (
        local.weekday(),
        local.hour,
        local.day,
    )
    assert attempt.retried_decline_code == "insufficient_funds" and attempt.retry_number == 1
    assert attempt.hours_since_failure == int((slot - OPENED).total_seconds() // 3600)
    assert 0 < attempt.predicted_success < 1
    case.refresh_from_db()
    assert case.next_step_index == 2 and case.last_failure_at == slot


@pytest.mark.django_db
def test_a_smart_retry_below_the_threshold_is_skipped_and_messages_go_on() -> None:
    smart_policy(smart_min_success_percent=99.0)
    case, _invoice, _method = failed_invoice(failed_at=OPENED, time_zone="Europe/Paris")
    moment = OPENED
    while moment <= OPENED + timedelta(days=7):
        tick(moment)
        moment += timedelta(hours=6)
    assert [a.step_index for a in retries_of(case)] == [], "the smart retry never charged"
    skipped = CaseEvent.objects.get(case=case, kind=CaseEventKind.STEP_SKIPPED, step_index=1)
    assert "below the policy's 99.0% threshold" in skipped.reason
    assert CaseEvent.objects.filter(case=case, kind=CaseEventKind.STEP_DONE, step_index=2).exists()


@pytest.mark.django_db
def test_a_hard_decline_blocks_a_smart_retry_before_any_slot_is_chosen() -> None:
    smart_policy()
    case, _invoice, _method = failed_invoice(failed_at=OPENED, decline_code="stolen_card")
    tick(OPENED)
    tick(OPENED + timedelta(days=2))
    case.refresh_from_db()
    assert case.retry_timing == {}
    assert retries_of(case) == []
    assert CaseEvent.objects.filter(case=case, kind=CaseEventKind.STEP_SKIPPED, step_index=1).exists()


@pytest.mark.django_db
def test_no_slot_inside_the_spacing_skips_the_retry_with_the_reason() -> None:
    smart_policy(window_days=1, retry_min_spacing_hours=24 * 5)
    case, _invoice, _method = failed_invoice(failed_at=OPENED)
    tick(OPENED)
    tick(OPENED + timedelta(days=1, hours=1))
    case.refresh_from_db()
    assert "no slot in its window is 120 hours after the last failure" in case.retry_timing["skip"]
    tick(OPENED + timedelta(days=1, hours=2))
    assert retries_of(case) == []


def _rules(window_days: int, spacing_hours: int, threshold: float = 0.0) -> VersionRules:
    steps = [
        {
            "day_offset": 0,
            "local_hour": None,
            "action": "email",
            "template_key": "x",
            "decline_categories": [],
        },
        {
            "day_offset": 1,
            "local_hour": 9,
            "action": "retry",
            "template_key": "",
            "decline_categories": [],
            "timing": "smart",
            "window_days": window_days,
        },
        {"day_offset": 4, "local_hour": 10, "action": "email", "template_key": "y", "decline_categories": []},
    ]
    return VersionRules(steps, 4, 15, smart_min_success=threshold, min_spacing=timedelta(hours=spacing_hours))


def test_property_smart_slots_stay_in_the_window_and_keep_the_spacing() -> None:
    """Random zones, openings, windows, spacings and tick times: a chosen slot is never outside the window
    (which ends at the next step), never before the spacing, never before now; otherwise it is skipped."""
    rng = random.Random(20261203)
    model = TimingModel.empty()
    zones = ["Europe/Paris", "America/New_York", "Asia/Kolkata", "Pacific/Chatham", "UTC", "Australia/Sydney"]
    for _ in range(600):
        zone = rng.choice(zones)
        opened = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(0, 365 * 24 * 60))
        rules = _rules(rng.randrange(0, 6), rng.choice([0, 6, 20, 48, 96]))
        snapshot = CaseSnapshot(
            opened_at=opened,
            time_zone=zone,
            schedule_shift=timedelta(0),
            next_step_index=1,
            retry_count=0,
            decline_category="soft",
            hard_declined_payment_method_id=None,
            default_payment_method_id=1,
            network_attempts_30d=0,
        )
        start, end = smart_window(rules, snapshot, 1)
        now = start + timedelta(minutes=rng.randrange(0, 60 * 24 * 5))
        last_failure = opened + timedelta(hours=rng.randrange(0, 48))
        context = RetryContext(
            decline_code=rng.choice(["insufficient_funds", "processing_error", "generic_decline"]),
            decline_category="soft",
            retry_number=1,
            funding=rng.choice(["credit", "debit", "unknown"]),
            brand="visa",
            amount_minor=rng.randrange(100, 10**6),
            exponent=2,
            segment="smb",
            country=rng.choice(["US", "GB", "DE", "AU", ""]),
            time_zone=zone,
            last_failure_at=last_failure,
            payday=None,
        )
        decision = decide_slot(model, rules, snapshot, 1, context, now=now)
        assert end <= start + timedelta(days=rules.steps[1]["window_days"])
        if decision.skipped:
            assert decision.at == now
            continue
        assert max(start, now) <= decision.at <= max(end, now)
        assert decision.at >= last_failure + rules.min_spacing
        # The steps after it are never held back: the slot is not after the next step's time.
        assert decision.at <= max(now, start + timedelta(days=3), end)


def test_planning_runs_a_chosen_slot_only_when_due_and_carries_a_skip_reason() -> None:
    rules = _rules(3, 20)
    base = {
        "opened_at": OPENED,
        "time_zone": "UTC",
        "schedule_shift": timedelta(0),
        "next_step_index": 1,
        "retry_count": 0,
        "decline_category": "soft",
        "hard_declined_payment_method_id": None,
        "default_payment_method_id": 1,
        "network_attempts_30d": 0,
    }
    window_start = datetime(2026, 5, 5, 9, tzinfo=UTC)
    assert plan_case(rules, CaseSnapshot(**base), window_start).choose_slot == 1
    slot = window_start + timedelta(days=1, hours=2)
    chosen = CaseSnapshot(**base, smart_slot=(1, slot, ""))
    early = plan_case(rules, chosen, slot - timedelta(seconds=1))
    assert early.retry_step is None and early.choose_slot is None and early.next_action_at == slot
    assert plan_case(rules, chosen, slot).retry_step == 1
    capped = CaseSnapshot(**{**base, "retry_count": 4}, smart_slot=(1, slot, ""))
    assert plan_case(rules, capped, slot).skipped == [(1, "retry cap reached (4)")]
    skipping = CaseSnapshot(**base, smart_slot=(1, window_start, "below threshold"))
    assert plan_case(rules, skipping, window_start).skipped == [(1, "below threshold")]


def test_a_retry_budget_becomes_smart_steps_whose_windows_split_the_days() -> None:
    steps = [
        {
            "day_offset": 0,
            "local_hour": None,
            "action": "email",
            "template_key": "a",
            "decline_categories": [],
        },
        {
            "day_offset": 2,
            "local_hour": 9,
            "action": "retry",
            "template_key": "",
            "decline_categories": ["soft"],
        },
        {
            "day_offset": 14,
            "local_hour": 10,
            "action": "email",
            "template_key": "b",
            "decline_categories": [],
        },
    ]
    result = budget_steps(steps, retries=4, days=28)
    retries = [s for s in result if s["action"] == "retry"]
    assert [(s["day_offset"], s["window_days"]) for s in retries] == [(1, 7), (8, 7), (15, 7), (22, 7)]
    assert all(s["timing"] == "smart" and s["decline_categories"] == ["soft"] for s in retries)
    assert [s["day_offset"] for s in result] == sorted(s["day_offset"] for s in result)
    assert [s["template_key"] for s in result if s["action"] == "email"] == ["a", "b"]


@pytest.mark.django_db
def test_publishing_a_budget_policy_freezes_smart_steps_with_its_threshold_and_spacing() -> None:
    policy = make_policy(
        name="Budget",
        steps=[(0, None, "email", "failure_1", []), (3, 9, "retry", "", RETRYABLE)],
        retry_budget=3,
        retry_budget_days=21,
        smart_min_success_percent=4.5,
        retry_min_spacing_hours=30,
    )
    version = policy.versions.get()
    assert [s["timing"] for s in version.steps if s["action"] == "retry"] == ["smart"] * 3
    assert (version.smart_min_success_percent, version.retry_min_spacing_hours) == (4.5, 30)


@pytest.mark.django_db
def test_the_policy_timeline_shows_a_smart_window_and_its_likely_slot() -> None:
    policy = smart_policy()
    days = policy_timeline(steps=policy.versions.get().steps, opened_at=OPENED, time_zone="Europe/Paris")
    [entry] = [e for day in days for e in day.entries if e.index == 1]
    assert entry.smart_note.startswith("smart, days 1–3: likely ")
    assert "%" in entry.smart_note


@pytest.mark.django_db
def test_time_travel_through_the_smart_default_keeps_windows_spacing_and_the_cap() -> None:
    """The shipped Default (smart) on a card that always declines: every retry inside its window, at least
    the policy's spacing apart, never more than the cap, each explained before it ran."""
    case, _invoice, _method = failed_invoice(failed_at=OPENED, time_zone="America/New_York")
    version = case.policy_version
    assert version.policy.name == "Default" and any(s.get("timing") == "smart" for s in version.steps)
    moment = OPENED
    while moment <= OPENED + timedelta(days=30):
        tick(moment)
        moment += timedelta(hours=3)
    attempts = retries_of(case)
    assert 1 <= len(attempts) <= version.max_retries
    windows = {
        i: (s["day_offset"], s["day_offset"] + s["window_days"])
        for i, s in enumerate(version.steps)
        if s.get("timing") == "smart"
    }
    zone = ZoneInfo("America/New_York")
    opened_day = OPENED.astimezone(zone).date()
    for attempt in attempts:
        first, last = windows[attempt.step_index]
        day = (attempt.created_at.astimezone(zone).date() - opened_day).days
        assert first <= day <= last, (attempt.step_index, day)
        assert attempt.timing_mode == "smart"
    gaps = [b.created_at - a.created_at for a, b in zip(attempts, attempts[1:], strict=False)]
    assert all(gap >= timedelta(hours=version.retry_min_spacing_hours) for gap in gaps)
    scheduled = CaseEvent.objects.filter(case=case, kind=CaseEventKind.RETRY_SCHEDULED).count()
    assert scheduled >= len(attempts)


def test_property_a_chosen_slot_never_lifts_a_cap_or_a_block() -> None:
    rng = random.Random(7)
    rules = _rules(3, 20)
    slot = datetime(2026, 5, 6, 9, tzinfo=UTC)
    for _ in range(2000):
        snapshot = CaseSnapshot(
            opened_at=OPENED,
            time_zone="UTC",
            schedule_shift=timedelta(0),
            next_step_index=1,
            retry_count=rng.randrange(0, 6),
            decline_category=rng.choice(["soft", "processing", "hard", "fraud", "authentication_required"]),
            hard_declined_payment_method_id=rng.choice([None, 1, 2]),
            default_payment_method_id=rng.choice([None, 1, 2]),
            network_attempts_30d=rng.randrange(0, 20),
            smart_slot=(1, slot, rng.choice(["", "", "below threshold"])),
        )
        plan = plan_case(rules, snapshot, slot + timedelta(minutes=rng.randrange(0, 600)))
        blocked = retry_blocker(rules, snapshot) or snapshot.smart_slot[2]  # type: ignore[index]
        assert (plan.retry_step is None) == bool(blocked), snapshot


@pytest.mark.django_db
def test_the_case_page_shows_why_the_smart_retry_happens_when_it_does(admin_client) -> None:  # type: ignore[no-untyped-def]
    from django.urls import reverse

    smart_policy()
    case, _invoice, _method = failed_invoice(failed_at=OPENED, time_zone="Europe/Paris")
    tick(datetime(2026, 5, 5, 0, 0, tzinfo=PARIS).astimezone(UTC))
    case.refresh_from_db()
    page = admin_client.get(reverse("admin:dunning_dunningcase_change", args=[case.pk])).content.decode()
    assert case.retry_timing["explanation"].split(":")[0] in page
    assert "runners-up:" in page and "Smart retry" in page


@pytest.mark.django_db
def test_a_pause_drops_the_chosen_slot_and_the_tick_picks_again_in_the_shifted_window() -> None:
    from django.utils import timezone

    from dunning.services.staff import case_pause, case_resume

    smart_policy()
    now = timezone.now()
    case, _invoice, _method = failed_invoice(failed_at=now - timedelta(hours=30), time_zone="UTC")
    tick(now)
    case.refresh_from_db()
    first_slot = datetime.fromisoformat(case.retry_timing["at"])
    case_pause(case=case, actor=TEST_ACTOR, reason="customer called")
    DunningCase.objects.filter(pk=case.pk).update(paused_at=now - timedelta(days=3))  # paused three days ago
    case.refresh_from_db()
    case_resume(case=case, actor=TEST_ACTOR)
    case.refresh_from_db()
    assert case.retry_timing == {}
    assert case.next_action_at >= first_slot + timedelta(days=3) - timedelta(minutes=1)
    tick(case.next_action_at)
    case.refresh_from_db()
    second_slot = datetime.fromisoformat(case.retry_timing["at"])
    assert second_slot >= first_slot + timedelta(days=3) - timedelta(minutes=1)


def _context(last_failure: datetime) -> RetryContext:
    return RetryContext(
        decline_code="insufficient_funds",
        decline_category="soft",
        retry_number=1,
        funding="debit",
        brand="visa",
        amount_minor=4900,
        exponent=2,
        segment="",
        country="",
        time_zone="UTC",
        last_failure_at=last_failure,
        payday=None,
    )


def _monday_window_rules() -> tuple[VersionRules, CaseSnapshot]:
    rules = _rules(4, 0)
    snapshot = CaseSnapshot(
        opened_at=datetime(2026, 3, 1, 12, tzinfo=UTC),  # a Sunday: the window is Mon 09:00 .. Fri 09:00
        time_zone="UTC",
        schedule_shift=timedelta(0),
        next_step_index=1,
        retry_count=0,
        decline_category="soft",
        hard_declined_payment_method_id=None,
        default_payment_method_id=1,
        network_attempts_30d=0,
    )
    return rules, snapshot


def test_without_a_real_expected_gain_the_policys_own_slot_is_kept() -> None:
    """Mon 09:00 to Wed 09:00, three days after the failure: the priors see no day or hour worth moving
    for (Friday's edge is outside), so the retry stays at the policy's Monday 09:00."""
    _rules_4, snapshot = _monday_window_rules()
    rules = _rules(2, 0)
    start, _end = smart_window(rules, snapshot, 1)
    friday_before = datetime(2026, 2, 27, 9, tzinfo=UTC)
    decision = decide_slot(TimingModel.empty(), rules, snapshot, 1, _context(friday_before), now=start)
    assert decision.at == start and not decision.skipped
    assert decision.retry_timing["explanation"].startswith("the policy's slot kept: ")


def test_strong_evidence_moves_the_retry_to_the_better_day() -> None:
    rules, snapshot = _monday_window_rules()
    start, end = smart_window(rules, snapshot, 1)
    rows = [("insufficient_funds", "soft", "", None, 14_000, 2_000)]
    for weekday in range(7):
        rows.append(("insufficient_funds", "soft", "weekday", weekday, 2_000, 800 if weekday == 3 else 200))
    model = TimingModel.from_raw_counts(rows)
    decision = decide_slot(model, rules, snapshot, 1, _context(snapshot.opened_at), now=start)
    assert decision.at.weekday() == 3 and start < decision.at <= end  # Thursday
    assert "n=14,000" in decision.retry_timing["explanation"]
