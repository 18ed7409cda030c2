"""``python manage.py reconcile_stripe [--since WHEN] [--events-only | --invoices-only]``."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from dunning.management.timeparse import parse_since
from dunning.services.stripe_sync import SyncSummary, stripe_reconcile


class Command(BaseCommand):
    help = (
        "Heal missed Stripe webhooks: store and process the events the inbox lacks (Stripe keeps them 30 "
        "days), then re-read our open Stripe invoices and follow Stripe where they were paid, voided or "
        "marked uncollectible. Safe to run any time; a second run changes nothing."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--since",
            help="Events created since: 2026-05-01, 2026-05-01T09:00Z, 48h or 7d "
            f"(default: {settings.STRIPE_RECONCILE_LOOKBACK_HOURS}h, STRIPE_RECONCILE_LOOKBACK_HOURS).",
        )
        only = parser.add_mutually_exclusive_group()
        only.add_argument("--events-only", action="store_true", help="List events; skip re-reading invoices.")
        only.add_argument("--invoices-only", action="store_true", help="Re-read open invoices only.")

    def handle(
        self, *args: Any, since: str | None, events_only: bool, invoices_only: bool, **options: Any
    ) -> None:
        if not settings.STRIPE_SECRET_KEY:
            raise CommandError("STRIPE_SECRET_KEY is not set: there is no Stripe account to reconcile with.")
        moment = (
            parse_since(since)
            if since
            else timezone.now() - timedelta(hours=settings.STRIPE_RECONCILE_LOOKBACK_HOURS)
        )
        interactive = sys.stdout.isatty()

        def progress(summary: SyncSummary) -> None:
            if interactive:
                counts = ", ".join(f"{key} {value}" for key, value in sorted(summary.counts.items()))
                self.stderr.write(f"\r{counts}…", ending="")

        summary = stripe_reconcile(
            since=moment, events=not invoices_only, invoices=not events_only, progress=progress
        )
        if interactive:
            self.stderr.write("")
        for line in summary.lines():
            self.stdout.write(line)
