"""Dunning policies: matching rules, ordered steps, caps, and frozen published versions."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from customers.currencies import validate_currency
from customers.models import PaymentMethodType
from dunning.models.declines import DeclineCategory


class StepAction(models.TextChoices):
    RETRY = "retry", "Retry the charge"
    EMAIL = "email", "Send an email"
    BANNER = "banner", "Show an in-app banner"
    WEBHOOK = "webhook", "Send a webhook"
    ESCALATE = "escalate", "Escalate to staff"
    DEGRADE = "degrade", "Degrade service"
    SUSPEND = "suspend", "Suspend access"
    CANCEL = "cancel", "Cancel the subscription"
    MARK_UNCOLLECTIBLE = "mark_uncollectible", "Mark the invoice uncollectible"


# Steps after which nothing else can happen to the invoice: they must come last.
INVOICE_ENDING_ACTIONS: frozenset[str] = frozenset({StepAction.CANCEL, StepAction.MARK_UNCOLLECTIBLE})
# Steps that take access away: never before the grace period has passed.
ACCESS_ENDING_ACTIONS: frozenset[str] = frozenset({StepAction.SUSPEND, StepAction.CANCEL})
# Steps that talk to the customer (kept when retry caps are reached).
COMMUNICATION_ACTIONS: frozenset[str] = frozenset({StepAction.EMAIL, StepAction.BANNER, StepAction.WEBHOOK})


def validate_categories(value: Any) -> None:
    if not isinstance(value, list) or any(v not in DeclineCategory.values for v in value):
        raise ValidationError(
            "Choose decline categories among: %(allowed)s (or none for all).",
            params={"allowed": ", ".join(DeclineCategory.values)},
            code="invalid_categories",
        )


class DunningPolicy(models.Model):
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    priority = models.PositiveIntegerField(
        default=100, help_text="Lower numbers are tried first when several policies match."
    )
    # Matching rules: a blank rule matches everything.
    match_segment = models.SlugField(max_length=50, blank=True, verbose_name="segment")
    match_currency = models.CharField(
        max_length=3, blank=True, validators=[validate_currency], verbose_name="currency"
    )
    match_min_amount_minor = models.BigIntegerField(
        null=True, blank=True, verbose_name="minimum amount", help_text="In minor units of the currency."
    )
    match_max_amount_minor = models.BigIntegerField(
        null=True, blank=True, verbose_name="maximum amount", help_text="In minor units of the currency."
    )
    match_payment_method_type = models.CharField(
        max_length=20, blank=True, choices=PaymentMethodType.choices, verbose_name="payment method type"
    )
    # Caps and timing.
    max_retries = models.PositiveSmallIntegerField(
        default=4,
        validators=[MaxValueValidator(20)],
        help_text="Retries per invoice, initial attempt excluded.",
    )
    network_retry_cap = models.PositiveSmallIntegerField(
        default=15, help_text="Attempts per card in any rolling 30 days (card networks penalise more)."
    )
    grace_period_days = models.PositiveSmallIntegerField(
        default=14, help_text="No suspension or cancellation before this many days after the first failure."
    )
    # Smart retry timing (see the README, "Smart retries").
    smart_min_success_percent = models.FloatField(
        default=2.0,
        db_default=2.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(100.0)],
        verbose_name="smart retry threshold (%)",
        help_text="A smart retry whose best estimated success stays below this is skipped, to save the "
        "card's network budget. Messages go on.",
    )
    retry_min_spacing_hours = models.PositiveSmallIntegerField(
        default=20,
        db_default=20,
        validators=[MaxValueValidator(24 * 14)],
        verbose_name="minimum hours between smart retries",
    )
    retry_budget = models.PositiveSmallIntegerField(
        default=0,
        db_default=0,
        validators=[MaxValueValidator(20)],
        verbose_name="retry budget",
        help_text="Stripe-style: this many retries within the budget days, each placed by the model. 0 = "
        "use the retry steps below. When set, publishing replaces the retry steps with smart ones.",
    )
    retry_budget_days = models.PositiveSmallIntegerField(
        default=0, db_default=0, validators=[MaxValueValidator(90)], verbose_name="retry budget days"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["priority", "name"]
        verbose_name_plural = "dunning policies"
        # Editing a draft is not publishing it: a published version starts charging new cases.
        permissions = [("publish_dunningpolicy", "Can publish a new version of a dunning policy")]
        constraints = [
            models.CheckConstraint(
                condition=Q(match_min_amount_minor__isnull=True) | Q(match_min_amount_minor__gte=0),
                name="policy_min_amount_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(match_min_amount_minor__isnull=True)
                | Q(match_max_amount_minor__isnull=True)
                | Q(match_max_amount_minor__gte=F("match_min_amount_minor")),
                name="policy_amount_range_ordered",
            ),
            # Amounts in different currencies are not comparable: a range needs a currency.
            models.CheckConstraint(
                condition=(Q(match_min_amount_minor__isnull=True) & Q(match_max_amount_minor__isnull=True))
                | ~Q(match_currency=""),
                name="policy_amount_range_needs_currency",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if (self.match_min_amount_minor is not None or self.match_max_amount_minor is not None) and not (
            self.match_currency
        ):
            raise ValidationError({"match_currency": "An amount range needs a currency to compare in."})
        if (
            self.match_min_amount_minor is not None
            and self.match_max_amount_minor is not None
            and self.match_max_amount_minor < self.match_min_amount_minor
        ):
            raise ValidationError({"match_max_amount_minor": "The maximum is below the minimum."})

    @property
    def current_version(self) -> PolicyVersion | None:
        return self.versions.order_by("-number").first()


class RetryTiming(models.TextChoices):
    FIXED = "fixed", "Fixed: at the step's day and hour"
    SMART = "smart", "Smart: the best slot in a window, learnt from past retries"


class PolicyStep(models.Model):
    """A draft step, edited inline. Publishing copies the steps into a frozen PolicyVersion."""

    policy = models.ForeignKey(DunningPolicy, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField(help_text="Order of the step within the policy.")
    day_offset = models.PositiveSmallIntegerField(help_text="Days after the first failure (0 = that day).")
    local_hour = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(23)],
        help_text="Hour in the customer's time zone; blank = at the failure's time of day.",
    )
    action = models.CharField(max_length=24, choices=StepAction.choices)
    template_key = models.SlugField(
        max_length=64, blank=True, help_text="Message template, for emails/banners."
    )
    decline_categories = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_categories],
        help_text="Only for cases whose last decline is in these categories; empty = all.",
    )
    timing = models.CharField(
        max_length=8,
        choices=RetryTiming.choices,
        default=RetryTiming.FIXED,
        db_default=RetryTiming.FIXED,
        help_text="Retries only: fixed, or smart within the window.",
    )
    window_days = models.PositiveSmallIntegerField(
        default=0,
        db_default=0,
        validators=[MaxValueValidator(30)],
        help_text="Smart retries: the window runs from the step's day and hour for this many days.",
    )

    class Meta:
        ordering = ["policy_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "position"], name="policy_step_position_unique"),
            models.CheckConstraint(
                condition=Q(local_hour__isnull=True) | Q(local_hour__lte=23), name="policy_step_hour_range"
            ),
            models.CheckConstraint(
                condition=Q(action__in=StepAction.values), name="policy_step_action_valid"
            ),
        ]

    def __str__(self) -> str:
        hour = f" at {self.local_hour:02d}:00" if self.local_hour is not None else ""
        return f"day {self.day_offset}{hour}: {self.get_action_display()}"

    def as_frozen(self) -> dict[str, Any]:
        return {
            "day_offset": self.day_offset,
            "local_hour": self.local_hour,
            "action": self.action,
            "template_key": self.template_key,
            "decline_categories": list(self.decline_categories or []),
            **(
                {"timing": RetryTiming.SMART, "window_days": self.window_days}
                if self.action == StepAction.RETRY and self.timing == RetryTiming.SMART
                else {}
            ),
        }

    def clean(self) -> None:
        if self.timing == RetryTiming.SMART and self.action != StepAction.RETRY:
            raise ValidationError({"timing": "Only retry steps can be smart."})


class PolicyVersion(models.Model):
    """What a policy said when published. Cases keep the version they started with."""

    policy = models.ForeignKey(DunningPolicy, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    steps = models.JSONField(
        help_text="Frozen steps: day_offset, local_hour, action, template_key, categories."
    )
    max_retries = models.PositiveSmallIntegerField()
    network_retry_cap = models.PositiveSmallIntegerField()
    grace_period_days = models.PositiveSmallIntegerField()
    smart_min_success_percent = models.FloatField(default=2.0, db_default=2.0)
    retry_min_spacing_hours = models.PositiveSmallIntegerField(default=20, db_default=20)
    published_at = models.DateTimeField(default=timezone.now)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["policy_id", "-number"]
        constraints = [models.UniqueConstraint(fields=["policy", "number"], name="policy_version_unique")]

    def __str__(self) -> str:
        return f"{self.policy.name} v{self.number}"
