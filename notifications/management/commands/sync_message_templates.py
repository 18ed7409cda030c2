from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from notifications.default_templates import install_default_templates
from notifications.models import MessageTemplate


class Command(BaseCommand):
    help = "Create the shipped message templates that are missing. Never overwrites an edited template."

    def handle(self, *args: Any, **options: Any) -> None:
        created = install_default_templates(MessageTemplate)
        self.stdout.write(f"{created} template(s) created.")
