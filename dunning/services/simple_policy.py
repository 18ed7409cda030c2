"""Dunning settings for teams that do not want to edit steps: a few answers make an ordinary policy.

How many retries, over how many days, at what hour, which emails and banners, and what happens at the
end. :func:`simple_policy_steps` turns the answers into steps (a pure function); :func:`policy_save_simple`
writes them as a policy's draft (new or existing), audited, and optionally publishes it with
``policy_publish``. The step editor can refine the result like any other policy.

Retries run at fixed times: evenly spread over the period, at the chosen hour in the customer's time
zone. Smart timing (retrying when a payment is most likely to go through) arrives with the smart-retries
work; the settings will offer it then.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from customers.actors import Actor
from customers.services import audit_record
from dunning.models import RETRYABLE_CATEGORIES, DunningPolicy, PolicyStep, PolicyVersion, StepAction
from dunning.services.policies import policy_publish, policy_steps_validate

MAX_RETRIES = 10
MAX_DAYS = 90
LATEST_RETRY_HOUR = 21  # emails follow an hour later, the end of the period two hours later

# Email template key -> when it goes out.
SIMPLE_EMAILS: dict[str, str] = {
    "failure_1": "When the payment first fails (friendly)",
    "failure_2": "After the first failed retry (what they will lose)",
    "failure_3": "After the second failed retry (urgent, with an offer of help)",
    "final_notice": "A final notice a week before the end (halfway on shorter schedules)",
    "suspended": "When access is suspended or the subscription cancelled",
}
# End action -> what it means. "" ends the case and leaves the invoice open.
END_ACTIONS: dict[str, str] = {
    "": "Nothing more: the case ends, the invoice stays open",
    StepAction.DEGRADE: "Degrade service",
    StepAction.SUSPEND: "Suspend access",
    StepAction.CANCEL: "Cancel the subscription",
    StepAction.MARK_UNCOLLECTIBLE: "Mark the invoice uncollectible",
}
ACCESS_ENDING = (StepAction.SUSPEND, StepAction.CANCEL)
INVOICE_ENDING = (StepAction.CANCEL, StepAction.MARK_UNCOLLECTIBLE)


@dataclass(frozen=True)
class SimpleSettings:
    retries: int = 3
    over_days: int = 21
    retry_hour: int = 9
    emails: frozenset[str] = field(default_factory=lambda: frozenset(SIMPLE_EMAILS))
    banners: bool = True
    end_action: str = StepAction.SUSPEND
    escalate: bool = True

    def check(self) -> None:
        errors = []
        if not 0 <= self.retries <= MAX_RETRIES:
            errors.append(f"Choose between 0 and {MAX_RETRIES} retries.")
        if not 1 <= self.over_days <= MAX_DAYS:
            errors.append(f"Choose a period between 1 and {MAX_DAYS} days.")
        if self.retries > self.over_days:
            errors.append("At most one retry a day: choose fewer retries or more days.")
        if not 0 <= self.retry_hour <= LATEST_RETRY_HOUR:
            errors.append(
                f"Retries run between 00:00 and {LATEST_RETRY_HOUR}:00 (the emails follow later that day)."
            )
        if unknown := set(self.emails) - set(SIMPLE_EMAILS):
            errors.append(f"Unknown emails: {', '.join(sorted(unknown))}.")
        if self.end_action not in END_ACTIONS:
            errors.append(f"Unknown end action {self.end_action!r}.")
        if errors:
            raise ValidationError(errors)


def _step(
    day: int, hour: int | None, action: str, template: str = "", categories: Any = ()
) -> dict[str, Any]:
    return {
        "day_offset": day,
        "local_hour": hour,
        "action": str(action),
        "template_key": template,
        "decline_categories": sorted(str(category) for category in categories),
    }


def simple_policy_steps(settings: SimpleSettings) -> list[dict[str, Any]]:
    """The steps the answers stand for, in order (the frozen step format of policy versions)."""
    settings.check()
    n, days, hour = settings.retries, settings.over_days, settings.retry_hour
    emails = settings.emails
    retry_days = [round(i * days / n) for i in range(1, n + 1)]
    # (day, hour, rank, step): the rank orders steps of the same moment; invoice-ending ones come last.
    planned: list[tuple[int, int, int, dict[str, Any]]] = []

    def add(day: int, at: int | None, rank: int, step: dict[str, Any]) -> None:
        planned.append((day, -1 if at is None else at, rank, step))

    if "failure_1" in emails:
        add(0, None, 0, _step(0, None, StepAction.EMAIL, "failure_1"))
    if settings.banners:
        add(0, None, 1, _step(0, None, StepAction.BANNER, "banner_payment_failed"))
    for day in retry_days:
        add(day, hour, 2, _step(day, hour, StepAction.RETRY, categories=RETRYABLE_CATEGORIES))
    second = retry_days[0] if n >= 1 else max(1, round(days / 3))
    third = retry_days[1] if n >= 2 else min(days, max(second + 1, round(2 * days / 3)))
    if "failure_2" in emails:
        add(second, hour + 1, 3, _step(second, hour + 1, StepAction.EMAIL, "failure_2"))
    if "failure_3" in emails:
        add(third, hour + 1, 3, _step(third, hour + 1, StepAction.EMAIL, "failure_3"))
    # A week before the end (halfway on short schedules), on a day without another email when possible.
    final = days - min(7, days // 2)
    other_email_days = {day for key, day in (("failure_2", second), ("failure_3", third)) if key in emails}
    while final in other_email_days and final < days:
        final += 1
    if "final_notice" in emails:
        add(final, hour + 1, 4, _step(final, hour + 1, StepAction.EMAIL, "final_notice"))
        if settings.banners:
            add(final, hour + 1, 4, _step(final, hour + 1, StepAction.BANNER, "banner_final_notice"))
    end = settings.end_action
    if end:
        add(days, hour + 2, 9 if end in INVOICE_ENDING else 5, _step(days, hour + 2, end))
    if end in ACCESS_ENDING and "suspended" in emails:
        add(days, hour + 2, 6, _step(days, hour + 2, StepAction.EMAIL, "suspended"))
    if settings.escalate:
        add(days, hour + 2, 7, _step(days, hour + 2, StepAction.ESCALATE))
    # By moment, then rank: an invoice-ending step (rank 9) is always the last one.
    planned.sort(key=lambda item: item[:3])
    steps = [step for *_, step in planned]
    if not steps:
        raise ValidationError("Choose at least one retry, email or end action.")
    return steps


def simple_settings_of(policy: DunningPolicy) -> SimpleSettings:
    """The answers a policy's draft steps come closest to (to prefill the form for an existing policy)."""
    steps = [step.as_frozen() for step in policy.steps.order_by("position")]
    if not steps:
        return SimpleSettings()
    retries = [step for step in steps if step["action"] == StepAction.RETRY]
    ends = [step["action"] for step in steps if step["action"] in END_ACTIONS and step["action"]]
    hours = [step["local_hour"] for step in retries if step["local_hour"] is not None]
    return SimpleSettings(
        retries=min(len(retries), MAX_RETRIES),
        over_days=max(1, min(MAX_DAYS, max(step["day_offset"] for step in steps))),
        retry_hour=min(hours[0], LATEST_RETRY_HOUR) if hours else 9,
        emails=frozenset(
            step["template_key"]
            for step in steps
            if step["action"] == StepAction.EMAIL and step["template_key"] in SIMPLE_EMAILS
        ),
        banners=any(step["action"] == StepAction.BANNER for step in steps),
        end_action=ends[0] if ends else "",
        escalate=any(step["action"] == StepAction.ESCALATE for step in steps),
    )


def policy_save_simple(
    *,
    settings: SimpleSettings,
    actor: Actor,
    policy: DunningPolicy | None = None,
    publish: bool = False,
    **fields: Any,
) -> tuple[DunningPolicy, PolicyVersion | None]:
    """Write the answers as a policy's draft steps and caps, in one transaction; publish when asked.

    ``policy`` None creates one from ``fields`` (name, description, priority, matching rules). An existing
    policy's draft steps are replaced; its published versions, and the cases using them, are untouched.
    The grace period becomes the whole period, so the end action may take access away on the last day.
    """
    steps = simple_policy_steps(settings)
    policy_steps_validate(steps=steps, grace_period_days=settings.over_days)
    with transaction.atomic():
        if policy is None:
            policy = DunningPolicy(**fields)
        else:
            policy = DunningPolicy.objects.select_for_update(no_key=True, of=("self",)).get(pk=policy.pk)
            for name, value in fields.items():
                setattr(policy, name, value)
        policy.max_retries = settings.retries
        policy.grace_period_days = settings.over_days
        policy.full_clean()
        created = policy.pk is None
        policy.save()
        policy.steps.all().delete()
        PolicyStep.objects.bulk_create(
            PolicyStep(policy=policy, position=position, **step)
            for position, step in enumerate(steps, start=1)
        )
        audit_record(
            actor=actor,
            action="policy.simple_settings_saved",
            details={
                "policy_id": policy.pk,
                "policy": policy.name,
                "created": created,
                "settings": {**asdict(settings), "emails": sorted(settings.emails)},
                "steps": len(steps),
            },
        )
        version = (
            policy_publish(policy=policy, actor=actor, notes="From the simple settings") if publish else None
        )
    return policy, version
