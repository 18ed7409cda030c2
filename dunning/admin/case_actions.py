"""The case page's staff actions: what each one asks for (a form), the service it calls, and what staff are
told afterwards. The admin views in ``dunning/admin/cases.py`` only route requests here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import messages
from django.utils import timezone

from customers.actors import Actor
from customers.money import format_money, to_major_units, to_minor_units
from dunning import state as machine
from dunning.models import (
    AttemptStatus,
    DeclineCategory,
    DeclineCode,
    DunningCase,
    PaymentAttempt,
    StepAction,
)
from dunning.services import staff


class ConfirmForm(forms.Form):
    """Nothing to ask: the button is the confirmation."""


class ReasonForm(forms.Form):
    text = forms.CharField(label="Reason", widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))


class OptionalReasonForm(forms.Form):
    text = forms.CharField(
        label="Reason (optional)", required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 60})
    )


class NoteForm(forms.Form):
    text = forms.CharField(label="Note", widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))


class ReviewForm(forms.Form):
    text = forms.CharField(
        label="What the review found",
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="e.g. “Checked with the bank: a single payment, no refund needed.”",
    )


class DateInput(forms.DateInput):
    input_type = "date"


class PauseForm(forms.Form):
    text = forms.CharField(label="Reason", widget=forms.Textarea(attrs={"rows": 2, "cols": 60}))
    resume_on = forms.DateField(
        label="Resume on (optional)",
        required=False,
        widget=DateInput(),
        help_text="The case resumes by itself at the start of this day; leave empty to resume it by hand.",
    )

    def clean_resume_on(self) -> Any:
        resume_on = self.cleaned_data.get("resume_on")
        if resume_on is not None and resume_on <= timezone.localdate():
            raise forms.ValidationError("Choose a day after today.")
        return resume_on

    def resume_at(self) -> datetime | None:
        resume_on = self.cleaned_data.get("resume_on")
        return None if resume_on is None else timezone.make_aware(datetime.combine(resume_on, time.min))


class MarkPaidForm(forms.Form):
    amount = forms.DecimalField(
        label="Amount received",
        max_digits=18,
        decimal_places=4,
        min_value=Decimal(0),
        help_text="Less than the amount left is a part payment: dunning carries on for the rest.",
    )
    paid_on = forms.DateField(label="Received on", widget=DateInput())
    method = forms.ChoiceField(label="Paid by", choices=staff.OfflinePaymentMethod.choices)
    reference = forms.CharField(
        label="Payment reference", max_length=200, help_text="Bank transfer id, cheque number…"
    )

    def __init__(self, *args: Any, case: DunningCase, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        invoice = case.invoice
        self.currency = invoice.currency
        self.remaining_minor = invoice.amount_due_minor - invoice.amount_paid_minor
        self.fields["amount"].initial = to_major_units(self.remaining_minor, self.currency)
        self.fields["amount"].label = f"Amount received ({self.currency})"
        self.fields["paid_on"].initial = timezone.localdate()

    def clean_amount(self) -> int:
        amount = self.cleaned_data["amount"]
        try:
            minor = to_minor_units(amount, self.currency)
        except ValueError:
            raise forms.ValidationError(f"{self.currency} amounts have fewer decimal places.") from None
        if minor <= 0:
            raise forms.ValidationError("The amount received must be more than zero.")
        if minor > self.remaining_minor:
            raise forms.ValidationError(
                f"That is more than the {format_money(self.remaining_minor, self.currency)} left to pay."
            )
        return minor

    def clean_paid_on(self) -> Any:
        paid_on = self.cleaned_data["paid_on"]
        if paid_on > timezone.localdate():
            raise forms.ValidationError("The payment date is in the future.")
        return paid_on


@dataclass(frozen=True)
class StaffAction:
    name: str
    label: str
    permission: str
    event: str | None = None  # the state-machine event, to offer the action only when allowed
    form: type[forms.Form] = ConfirmForm
    moves_money: bool = False
    only_when_flagged: bool = False  # offered only on cases flagged for staff review
    style: str = ""  # CSS class of its button on the case page
    help: str = field(default="", compare=False)

    def offered_for(self, case: DunningCase) -> bool:
        if self.only_when_flagged and not case.needs_staff_review:
            return False
        return self.event is None or machine.can(case.state, self.event)

    def make_form(self, case: DunningCase, data: Any = None) -> forms.Form:
        if self.form is MarkPaidForm:
            return MarkPaidForm(data, case=case)
        return self.form(data)


MANAGE = "dunning.manage_dunningcase"
ACTIONS = [
    StaffAction(
        "retry",
        "Retry now",
        "dunning.retry_dunningcase",
        machine.Event.RECOVER,
        moves_money=True,
        style="primary",
    ),
    StaffAction(
        "mark_paid",
        "Mark paid",
        "dunning.mark_paid_dunningcase",
        machine.Event.RECOVER,
        MarkPaidForm,
        help="Money received outside the gateway: all of it, or a part payment.",
    ),
    StaffAction("pause", "Pause", MANAGE, machine.Event.PAUSE, PauseForm),
    StaffAction("resume", "Resume", MANAGE, machine.Event.RESUME, OptionalReasonForm),
    StaffAction(
        "review_done", "Mark reviewed", MANAGE, None, ReviewForm, only_when_flagged=True, style="primary"
    ),
    StaffAction("note", "Add a note", MANAGE, None, NoteForm),
    StaffAction("hand_off", "Hand off to collections", MANAGE, machine.Event.HAND_OFF, ReasonForm),
    StaffAction("cancel", "Cancel dunning", MANAGE, machine.Event.CANCEL, ReasonForm, style="danger"),
]
ACTIONS_BY_NAME = {action.name: action for action in ACTIONS}


def decline_description(processor: str, code: str, category: str) -> str:
    """The staff description of a decline code, or the category's words when the code has none."""
    text = (
        DeclineCode.objects.filter(processor=processor, code=code)
        .values_list("staff_description", flat=True)
        .first()
    )
    if text:
        return text.rstrip(".") + "."
    return DeclineCategory(category).label + "." if category in DeclineCategory.values else "No reason given."


def _next_step(case: DunningCase) -> str:
    if not case.is_active:
        return f"The case is now {case.get_state_display().lower()}."
    if case.state == machine.State.PAUSED:
        return "The case stays paused: nothing is scheduled until it resumes."
    steps = case.policy_version.steps
    if case.next_action_at is None or case.next_step_index >= len(steps):
        return "No steps are left in the policy."
    step = steps[case.next_step_index]
    when = timezone.localtime(case.next_action_at).strftime("%Y-%m-%d %H:%M %Z")
    return f"Dunning carries on: next, “{StepAction(step['action']).label}” on {when}."


def retry_outcome(attempt: PaymentAttempt) -> tuple[int, str]:
    """What staff are told after "Retry now": the message level and the words (never only a raw code)."""
    amount = format_money(attempt.amount_minor, attempt.currency)
    if attempt.status == AttemptStatus.SUCCEEDED:
        return messages.SUCCESS, f"{amount} charged: the invoice is paid and the case is recovered."
    if attempt.status != AttemptStatus.FAILED:
        return messages.WARNING, (
            f"The gateway gave no answer for the charge of {amount}. Its outcome is checked with the gateway "
            "before anything else is tried (at the next tick); it can never be charged twice."
        )
    case = DunningCase.objects.select_related("policy_version").get(pk=attempt.case_id)
    category = attempt.decline_category
    what_next = {
        DeclineCategory.HARD: "This payment method is never retried: send the customer a portal link so "
        "they can give a new one.",
        DeclineCategory.FRAUD: "This payment method is never retried, and the case is flagged for review.",
        DeclineCategory.AUTHENTICATION_REQUIRED: "The customer has to approve the payment with their bank: "
        "send them a portal link.",
    }.get(category, _next_step(case))
    description = decline_description(attempt.decline_processor, attempt.decline_code, category)
    return messages.WARNING, (
        f"The charge of {amount} was declined: {description} {what_next} "
        f"(decline code {attempt.decline_code})"
    )


def run_action(action: StaffAction, case: DunningCase, actor: Actor, form: forms.Form) -> tuple[int, str]:
    """Call the action's service with the form's values; returns the message level and text for staff."""
    data = form.cleaned_data
    text = data.get("text", "")
    if action.name == "retry":
        return retry_outcome(staff.case_retry_now(case=case, actor=actor))
    if action.name == "mark_paid":
        payment = staff.case_record_offline_payment(
            case=case,
            actor=actor,
            reference=data["reference"],
            amount_minor=data["amount"],
            paid_on=data["paid_on"],
            method=data["method"],
        )
        received = format_money(payment.amount_minor, payment.currency)
        if payment.settled:
            return messages.SUCCESS, f"{received} recorded: the invoice is paid and the case is recovered."
        left = format_money(payment.remaining_minor, payment.currency)
        return (
            messages.SUCCESS,
            f"Part payment of {received} recorded: {left} left, dunning carries on for it.",
        )
    if action.name == "pause":
        assert isinstance(form, PauseForm)
        resume_at = form.resume_at()
        staff.case_pause(case=case, actor=actor, reason=text, resume_at=resume_at)
        if resume_at is None:
            return messages.SUCCESS, "Case paused until someone resumes it."
        return messages.SUCCESS, f"Case paused; it resumes by itself on {resume_at:%Y-%m-%d}."
    if action.name == "resume":
        staff.case_resume(case=case, actor=actor, reason=text)
        return messages.SUCCESS, "Case resumed; the remaining steps moved by the time it was paused."
    if action.name == "review_done":
        staff.case_review_done(case=case, actor=actor, note=text)
        return messages.SUCCESS, "Review recorded; the case is no longer flagged."
    if action.name == "cancel":
        staff.case_cancel(case=case, actor=actor, reason=text)
        return messages.SUCCESS, "Dunning cancelled."
    if action.name == "hand_off":
        staff.case_hand_off(case=case, actor=actor, reason=text)
        return messages.SUCCESS, "Handed off to collections."
    staff.case_add_note(case=case, actor=actor, text=text)
    return messages.SUCCESS, "Note added."
