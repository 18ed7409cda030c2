"""Tasks for finance staff: escalations from dunning and operational alerts."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from customers.models import Customer, Invoice


class StaffTaskStatus(models.TextChoices):
    OPEN = "open", "Open"
    DONE = "done", "Done"


class StaffTask(models.Model):
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.CASCADE, related_name="staff_tasks"
    )
    invoice = models.ForeignKey(Invoice, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    case_ref = models.BigIntegerField(null=True, blank=True, db_index=True)
    title = models.CharField(max_length=200)
    details = models.TextField(blank=True)
    status = models.CharField(max_length=8, choices=StaffTaskStatus.choices, default=StaffTaskStatus.OPEN)
    group_name = models.CharField(max_length=150, blank=True, help_text="The staff group that was told.")
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    done_at = models.DateTimeField(null=True, blank=True)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["status", "-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=StaffTaskStatus.values), name="staff_task_status_valid"
            )
        ]
        indexes = [models.Index(fields=["status", "-created_at"], name="staff_task_status_idx")]

    def __str__(self) -> str:
        return self.title
