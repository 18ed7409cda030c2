"""Decline codes: what a processor's refusal means for the next step."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class DeclineCategory(models.TextChoices):
    SOFT = "soft", "Soft: retry later"
    HARD = "hard", "Hard: stop until the payment method changes"
    AUTHENTICATION_REQUIRED = "authentication_required", "Authentication required: the customer must act"
    FRAUD = "fraud", "Fraud: never retry; flag for staff"
    PROCESSING = "processing", "Processing error: retry soon"


# Categories whose attempts may be retried off-session on the same payment method.
RETRYABLE_CATEGORIES: frozenset[str] = frozenset({DeclineCategory.SOFT, DeclineCategory.PROCESSING})


class DeclineCode(models.Model):
    """processor + code → category, with the words shown to customers and staff.

    Codes first seen at run time are created unclassified and treated as soft until staff classify them.
    """

    processor = models.CharField(max_length=20, help_text="stripe for card declines, ach for ACH returns.")
    code = models.CharField(max_length=64)
    category = models.CharField(max_length=32, choices=DeclineCategory.choices, default=DeclineCategory.SOFT)
    customer_message = models.CharField(
        max_length=300, blank=True, help_text="Plain words for the customer, shown in emails and the portal."
    )
    staff_description = models.TextField(blank=True)
    is_classified = models.BooleanField(
        default=True, help_text="False for codes first seen at run time: treated as soft until reviewed."
    )
    times_seen = models.PositiveIntegerField(default=0, help_text="Counted for unclassified codes only.")
    first_seen_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["processor", "code"]
        constraints = [
            models.UniqueConstraint(fields=["processor", "code"], name="decline_code_unique"),
            models.CheckConstraint(
                condition=Q(category__in=DeclineCategory.values), name="decline_code_category_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.processor}:{self.code} ({self.category})"
