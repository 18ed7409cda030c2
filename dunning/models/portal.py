"""Per-customer state of the payment portal: the token version that lets staff revoke every link at once."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from customers.models import Customer

# Links carry the version they were made with; a customer without a row is at this version.
INITIAL_TOKEN_VERSION = 1


class PortalAccess(models.Model):
    """One row per customer whose links were ever revoked (the others are implicitly at version 1).

    Revoking bumps ``token_version``: every link signed with an older version stops working at once, while
    links made afterwards work. Living in the dunning app keeps the customers tables untouched.
    """

    customer = models.OneToOneField(Customer, on_delete=models.CASCADE, related_name="portal_access")
    token_version = models.PositiveIntegerField(default=INITIAL_TOKEN_VERSION)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_by_label = models.CharField(max_length=150, blank=True)

    class Meta:
        verbose_name = "portal access"
        verbose_name_plural = "portal access"
        permissions = [
            ("send_portal_link", "Can copy and email payment portal links"),
            ("revoke_portal_links", "Can revoke a customer's payment portal links"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(token_version__gte=INITIAL_TOKEN_VERSION), name="portal_access_version_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"Portal links of customer {self.customer_id} (version {self.token_version})"
