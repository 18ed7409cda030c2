"""Pure planning: which due steps run, which are skipped and why, and where the case goes next."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dunning.services.planning import CaseSnapshot, VersionRules, after_failed_retry, plan_case

OPENED = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)  # a Monday, 12:00 UTC


def step(
    day: int, action: str, template: str = "", hour: int | None = None, categories: list[str] | None = None
):  # type: ignore[no-untyped-def]
    return {
        "day_offset": day,
        "local_hour": hour,
        "action": action,
        "template_key": template,
        "decline_categories": categories or [],
    }


RULES = VersionRules(
    steps=[
        step(0, "email", "failure_1"),
        step(1, "retry", hour=9, categories=["soft", "processing"]),
        step(3, "email", "failure_2", hour=10),
        step(4, "retry", hour=9, categories=["soft", "processing"]),
        step(7, "suspend", hour=9),
    ],
    max_retries=4,
    network_retry_cap=15,
)


def snapshot(**overrides: object) -> CaseSnapshot:
    values: dict[str, object] = {
        "opened_at": OPENED,
        "time_zone": "UTC",
        "schedule_shift": timedelta(0),
        "next_step_index": 0,
        "retry_count": 0,
        "decline_category": "soft",
        "hard_declined_payment_method_id": None,
        "default_payment_method_id": 7,
        "network_attempts_30d": 0,
    }
    values.update(overrides)
    return CaseSnapshot(**values)  # type: ignore[arg-type]


def test_only_due_steps_run_and_the_next_time_is_the_following_step() -> None:
    plan = plan_case(RULES, snapshot(), OPENED + timedelta(hours=1))
    assert plan.run == [0]
    assert plan.retry_step is None
    assert plan.next_step_index == 1
    assert plan.next_action_at == datetime(2026, 5, 5, 9, 0, tzinfo=UTC)


def test_a_retry_stops_the_walk_so_its_result_decides_what_follows() -> None:
    plan = plan_case(RULES, snapshot(), OPENED + timedelta(days=5))  # everything up to day 4 is due
    assert plan.run == []
    assert plan.retry_step == 1
    assert plan.next_step_index == 2


def test_hard_decline_skips_retries_on_the_same_method_but_keeps_talking() -> None:
    hard = snapshot(decline_category="hard", hard_declined_payment_method_id=7, default_payment_method_id=7)
    plan = plan_case(RULES, hard, OPENED + timedelta(days=5))
    assert plan.retry_step is None
    assert plan.run == [2]
    skipped = dict(plan.skipped)
    assert skipped[0].startswith("late: step 3 is due too")
    assert "only for soft, processing declines" in skipped[1]
    assert "only for soft, processing declines" in skipped[3]


def test_a_retry_step_for_any_category_still_never_retries_a_hard_declined_method() -> None:
    rules = VersionRules(steps=[step(1, "retry", hour=9)], max_retries=4, network_retry_cap=15)
    same = plan_case(
        rules,
        snapshot(decline_category="hard", hard_declined_payment_method_id=7),
        OPENED + timedelta(days=2),
    )
    assert same.retry_step is None
    assert "never retried on" in same.skipped[0][1]
    # A new default method lifts the block.
    new = plan_case(
        rules,
        snapshot(decline_category="hard", hard_declined_payment_method_id=7, default_payment_method_id=8),
        OPENED + timedelta(days=2),
    )
    assert new.retry_step == 0


def test_authentication_required_stops_off_session_retries() -> None:
    rules = VersionRules(steps=[step(1, "retry", hour=9)], max_retries=4, network_retry_cap=15)
    plan = plan_case(rules, snapshot(decline_category="authentication_required"), OPENED + timedelta(days=2))
    assert plan.retry_step is None
    assert "authenticate" in plan.skipped[0][1]


def test_retry_cap_skips_retries() -> None:
    plan = plan_case(RULES, snapshot(retry_count=4, next_step_index=1), OPENED + timedelta(days=2))
    assert plan.retry_step is None
    assert plan.skipped == [(1, "retry cap reached (4)")]


def test_network_cap_per_card_skips_retries() -> None:
    plan = plan_case(RULES, snapshot(network_attempts_30d=15, next_step_index=1), OPENED + timedelta(days=2))
    assert plan.retry_step is None
    assert "card network cap reached (15 attempts in 30 days)" in plan.skipped[0][1]


def test_no_payment_method_means_no_retry() -> None:
    plan = plan_case(
        RULES, snapshot(default_payment_method_id=None, next_step_index=1), OPENED + timedelta(days=2)
    )
    assert plan.skipped == [(1, "no payment method on file")]


def test_the_case_is_finished_after_the_last_step() -> None:
    plan = plan_case(RULES, snapshot(next_step_index=4), OPENED + timedelta(days=8))
    assert plan.run == [4]
    assert plan.finished


def test_processing_errors_are_retried_soon_within_the_cap() -> None:
    now = OPENED + timedelta(days=1, hours=10)
    snap = snapshot(next_step_index=1)
    plan = plan_case(RULES, snap, now)
    soon = timedelta(hours=1)
    assert after_failed_retry(RULES, snap, plan, category="processing", now=now, soon=soon) == (1, now + soon)
    assert after_failed_retry(RULES, snap, plan, category="soft", now=now, soon=soon) == (
        plan.next_step_index,
        plan.next_action_at,
    )
    capped = snapshot(next_step_index=1, retry_count=3)
    plan = plan_case(RULES, capped, now)
    assert after_failed_retry(RULES, capped, plan, category="processing", now=now, soon=soon)[0] == 2


def test_retries_are_skipped_when_the_gateway_owns_them_but_communication_goes_on() -> None:
    plan = plan_case(RULES, snapshot(gateway_owns_retries=True), OPENED + timedelta(days=5))
    assert plan.retry_step is None
    assert [index for index, _ in plan.skipped] == [0, 1, 3]
    assert all("Smart Retries" in reason for index, reason in plan.skipped if index != 0)
    assert plan.run == [2]


def test_a_late_tick_sends_only_the_last_due_message_of_each_kind() -> None:
    rules = VersionRules(
        steps=[
            step(0, "email", "failure_1"),
            step(0, "banner", "banner_payment_failed"),
            step(3, "email", "failure_2", hour=10),
            step(7, "email", "failure_3", hour=10),
            step(14, "email", "final_notice", hour=10),
            step(14, "banner", "banner_final_notice", hour=10),
            step(21, "degrade", hour=9),
        ],
        max_retries=4,
        network_retry_cap=15,
    )
    plan = plan_case(rules, snapshot(), OPENED + timedelta(days=15))
    assert plan.run == [4, 5]
    assert dict(plan.skipped) == {
        0: "late: step 5 is due too and says it now",
        1: "late: step 6 is due too and says it now",
        2: "late: step 5 is due too and says it now",
        3: "late: step 5 is due too and says it now",
    }
    # On time, nothing is superseded.
    assert plan_case(rules, snapshot(), OPENED + timedelta(minutes=5)).run == [0, 1]


def test_a_retry_step_already_carried_out_is_never_run_again() -> None:
    """A crash or a stale write may leave the pointer before a retry that was already made: its settled
    attempt says so, and the step is skipped, not charged a second time."""
    plan = plan_case(RULES, snapshot(next_step_index=1, last_retry_step=1), OPENED + timedelta(days=2))
    assert plan.retry_step is None
    assert plan.skipped == [(1, "retry already carried out")]
    later = plan_case(RULES, snapshot(next_step_index=1, last_retry_step=1), OPENED + timedelta(days=5))
    assert later.retry_step == 3


def test_a_block_on_the_current_method_holds_whatever_decline_came_after_it() -> None:
    """A soft decline recorded after a hard one (a racing charge, a stale copy) must not lift the block."""
    soft_after_hard = snapshot(decline_category="soft", hard_declined_payment_method_id=7, next_step_index=1)
    plan = plan_case(RULES, soft_after_hard, OPENED + timedelta(days=2))
    assert plan.retry_step is None
    assert "never retried on it" in plan.skipped[0][1]


def test_a_refusal_before_sending_moves_on_instead_of_retrying_soon() -> None:
    now = OPENED + timedelta(days=1, hours=10)
    snap = snapshot(next_step_index=1)
    plan = plan_case(RULES, snap, now)
    soon = timedelta(hours=1)
    moved_on = after_failed_retry(
        RULES, snap, plan, category="processing", now=now, soon=soon, processed=False
    )
    assert moved_on == (plan.next_step_index, plan.next_action_at)
