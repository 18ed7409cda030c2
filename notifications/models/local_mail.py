"""The admin's "Sent mail (local)" entry. No table: the page reads ``notifications.local_mailbox``."""

from __future__ import annotations

from django.db import models


class LocalMail(models.Model):
    """Stands for the local mailbox in the admin index; never queried (``managed = False``, no table)."""

    class Meta:
        managed = False
        default_permissions = ()
        verbose_name = "sent mail (local)"
        verbose_name_plural = "sent mail (local)"

    def __str__(self) -> str:
        return "Sent mail (local)"
