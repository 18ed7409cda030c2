"""Policies: validation of step lists, publishing frozen versions, and choosing one for a failed invoice."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max, Q

from customers.actors import Actor
from customers.models import Invoice, PaymentMethod
from customers.services import audit_record
from dunning.models import (
    ACCESS_ENDING_ACTIONS,
    INVOICE_ENDING_ACTIONS,
    DeclineCategory,
    DunningPolicy,
    PolicyVersion,
    StepAction,
)


def policy_steps_validate(*, steps: Sequence[dict[str, Any]], grace_period_days: int) -> None:
    """The rules every step list obeys, in the admin inline and again at publish time.

    Raises one ValidationError listing every problem, each with the step's position (1-based).
    """
    errors: list[str] = []
    previous_offset = -1
    for position, step in enumerate(steps, start=1):
        offset, action = step["day_offset"], step["action"]
        if action not in StepAction.values:
            errors.append(f"Step {position}: unknown action {action!r}.")
        if offset < previous_offset:
            errors.append(
                f"Step {position}: day {offset} comes after day {previous_offset}; day offsets must not decrease."
            )
        previous_offset = max(previous_offset, offset)
        hour = step.get("local_hour")
        if hour is not None and not 0 <= hour <= 23:
            errors.append(f"Step {position}: hour {hour} is not between 0 and 23.")
        if action in INVOICE_ENDING_ACTIONS and position != len(steps):
            errors.append(f"Step {position}: '{action}' ends the invoice, so it must be the last step.")
        if action in ACCESS_ENDING_ACTIONS and offset < grace_period_days:
            errors.append(
                f"Step {position}: '{action}' on day {offset} is inside the {grace_period_days}-day grace period."
            )
        if action in (StepAction.EMAIL, StepAction.BANNER) and not step.get("template_key"):
            errors.append(f"Step {position}: an {action} step needs a template key.")
        unknown = set(step.get("decline_categories") or []) - set(DeclineCategory.values)
        if unknown:
            errors.append(f"Step {position}: unknown decline categories {sorted(unknown)}.")
        if step.get("timing") == "smart" and action != StepAction.RETRY:
            errors.append(f"Step {position}: only retry steps can be smart.")
        if step.get("timing") == "smart" and not 0 <= (step.get("window_days") or 0) <= 30:
            errors.append(f"Step {position}: a smart window lasts 0 to 30 days.")
    if errors:
        raise ValidationError(errors)


def budget_steps(steps: Sequence[dict[str, Any]], *, retries: int, days: int) -> list[dict[str, Any]]:
    """A Stripe-style retry budget as steps: the draft's retry steps give way to ``retries`` smart retries
    whose windows split days 1..``days`` evenly; the model places each retry inside its window, and the
    policy's minimum spacing keeps two retries apart across window edges. Other steps stay as they are."""
    categories = next(
        (list(s.get("decline_categories") or []) for s in steps if s["action"] == StepAction.RETRY),
        [DeclineCategory.SOFT.value, DeclineCategory.PROCESSING.value],
    )
    span = max(days, 1) / retries
    budget = []
    for number in range(retries):
        start = 1 + int(number * span)
        end = max(start, int((number + 1) * span))
        budget.append(
            {
                "day_offset": start,
                "local_hour": 0,
                "action": StepAction.RETRY.value,
                "template_key": "",
                "decline_categories": categories,
                "timing": "smart",
                "window_days": end - start + 1,
            }
        )
    kept = [s for s in steps if s["action"] != StepAction.RETRY]
    # Stable: a retry and another step on the same day keep the retry first.
    return sorted([*budget, *kept], key=lambda s: (s["day_offset"], s["action"] != StepAction.RETRY))


def policy_publish(*, policy: DunningPolicy, actor: Actor, notes: str = "") -> PolicyVersion:
    """Freeze the policy's current steps and caps as its next version. Cases already open keep theirs."""
    with transaction.atomic():
        policy = DunningPolicy.objects.select_for_update(no_key=True, of=("self",)).get(pk=policy.pk)
        steps = [step.as_frozen() for step in policy.steps.order_by("position")]
        if policy.retry_budget:
            steps = budget_steps(steps, retries=policy.retry_budget, days=policy.retry_budget_days or 1)
        if not steps:
            raise ValidationError("A policy needs at least one step before it can be published.")
        policy_steps_validate(steps=steps, grace_period_days=policy.grace_period_days)
        number = (policy.versions.aggregate(n=Max("number"))["n"] or 0) + 1
        version = PolicyVersion.objects.create(
            policy=policy,
            number=number,
            steps=steps,
            max_retries=policy.max_retries,
            network_retry_cap=policy.network_retry_cap,
            grace_period_days=policy.grace_period_days,
            smart_min_success_percent=policy.smart_min_success_percent,
            retry_min_spacing_hours=policy.retry_min_spacing_hours,
            published_by=actor.user,
            notes=notes,
        )
        audit_record(
            actor=actor,
            action="policy.published",
            details={"policy_id": policy.pk, "policy": policy.name, "version": number, "steps": len(steps)},
        )
    return version


def policy_version_select(*, invoice: Invoice, payment_method: PaymentMethod | None) -> PolicyVersion:
    """The latest published version of the first active policy (by priority) whose rules all match.

    A blank rule matches anything. Raises ValidationError when no active, published policy matches, which
    a fresh installation never does: the default policy matches everything.
    """
    customer = invoice.customer
    candidates = (
        DunningPolicy.objects.filter(is_active=True, versions__isnull=False)
        .filter(Q(match_segment="") | Q(match_segment=customer.segment))
        .filter(Q(match_currency="") | Q(match_currency=invoice.currency))
        .filter(
            Q(match_min_amount_minor__isnull=True) | Q(match_min_amount_minor__lte=invoice.amount_due_minor)
        )
        .filter(
            Q(match_max_amount_minor__isnull=True) | Q(match_max_amount_minor__gte=invoice.amount_due_minor)
        )
        .filter(
            Q(match_payment_method_type="")
            | Q(match_payment_method_type=payment_method.type if payment_method else "")
        )
        .distinct()
        .order_by("priority", "id")
    )
    policy = candidates.first()
    if policy is None:
        raise ValidationError(
            f"No active, published dunning policy matches invoice {invoice.number}. "
            "Publish a policy without matching rules as the catch-all."
        )
    return policy.versions.order_by("-number").first()  # type: ignore[return-value]
