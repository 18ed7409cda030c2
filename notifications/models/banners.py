"""In-app banners and the API keys the product uses to read them."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from customers.models import Customer, Invoice


class BannerSeverity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


class Banner(models.Model):
    """The in-product message for one dunning case: active while the case is open, cleared on recovery."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="banners")
    case_ref = models.BigIntegerField(unique=True, help_text="The dunning case id. One banner per case.")
    invoice = models.ForeignKey(Invoice, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    message = models.TextField()
    severity = models.CharField(max_length=16, choices=BannerSeverity.choices, default=BannerSeverity.WARNING)
    cta_url = models.URLField("call-to-action link", max_length=500, blank=True)
    cta_label = models.CharField("call-to-action label", max_length=80, default="Update payment method")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(severity__in=BannerSeverity.values), name="banner_severity_valid"
            ),
        ]
        indexes = [
            # The banner API: active banners of one customer, and nothing else.
            models.Index(fields=["customer"], condition=Q(active=True), name="banner_active_customer_idx"),
        ]

    def __str__(self) -> str:
        return f"Banner for case {self.case_ref} ({'active' if self.active else 'cleared'})"


class ApiKey(models.Model):
    """A key for the banner API. Only a SHA-256 of the token is stored; the token is shown once."""

    name = models.CharField(max_length=100, help_text="Who uses it, e.g. 'web app production'.")
    prefix = models.CharField(max_length=16, unique=True, help_text="The visible start of the token.")
    hashed_key = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
