"""``python manage.py import_stripe [--since WHEN] [--no-cases] [--batch-size N]``."""

from __future__ import annotations

import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from dunning.management.timeparse import parse_since
from dunning.services.stripe_sync import SyncSummary, stripe_import


class Command(BaseCommand):
    help = (
        "Backfill from Stripe: customers (linked by metadata.external_id when set), their cards, and their "
        "open invoices; invoices whose payment already failed get a dunning case. Idempotent: run it again "
        "to resume or to pick up what is new."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--since", help="Only objects created since: 2026-05-01, 2026-05-01T09:00Z or 30d."
        )
        parser.add_argument(
            "--no-cases", action="store_true", help="Copy failed invoices without opening their cases."
        )
        parser.add_argument("--batch-size", type=int, default=100, help="Report progress every N objects.")

    def handle(self, *args: Any, since: str | None, no_cases: bool, batch_size: int, **options: Any) -> None:
        if not settings.STRIPE_SECRET_KEY:
            raise CommandError("STRIPE_SECRET_KEY is not set: there is no Stripe account to import from.")
        if batch_size < 1:
            raise CommandError("--batch-size must be a positive number")
        interactive = sys.stdout.isatty()

        def progress(summary: SyncSummary) -> None:
            counts = ", ".join(f"{key} {value}" for key, value in sorted(summary.counts.items()))
            if interactive:
                self.stderr.write(f"\r{counts}…", ending="")
            else:
                self.stderr.write(f"progress: {counts}")

        summary = stripe_import(
            since=parse_since(since) if since else None,
            open_cases=not no_cases,
            progress=progress,
            batch_size=batch_size,
        )
        if interactive:
            self.stderr.write("")
        for line in summary.lines():
            self.stdout.write(line)
        if summary.error:
            raise CommandError(summary.error)
