"""``python manage.py run_dunning [--now ISO-8601] [--dry-run] [--limit N]``: one tick."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from dunning.services.staff import cases_resume_due
from dunning.services.tick import TickSummary, run_tick


def parse_now(value: str) -> datetime:
    moment = parse_datetime(value)
    if moment is None:
        raise CommandError(f"--now {value!r} is not an ISO-8601 date and time, e.g. 2026-03-01T09:00:00Z")
    if timezone.is_naive(moment):
        raise CommandError("--now needs a time zone, e.g. 2026-03-01T09:00:00Z or 2026-03-01T10:00:00+01:00")
    return moment


class Command(BaseCommand):
    help = "Run every due dunning step once: retries, emails, banners, webhooks, escalations, access changes."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--now", help="Pretend it is this moment (ISO-8601 with a zone): previews, tests."
        )
        parser.add_argument("--dry-run", action="store_true", help="Show what is due; change nothing.")
        parser.add_argument("--limit", type=int, help="Process at most this many due cases.")

    def handle(self, *args: Any, now: str | None, dry_run: bool, limit: int | None, **options: Any) -> None:
        if limit is not None and limit < 1:
            raise CommandError("--limit must be a positive number")
        moment = parse_now(now) if now else timezone.now()
        interactive = sys.stdout.isatty()

        def progress(summary: TickSummary) -> None:
            if interactive:
                self.stderr.write(f"\r{summary.cases} cases processed…", ending="")

        # Pauses whose resume date has come end first, so their cases take part in this tick.
        resumed = cases_resume_due(now=moment, dry_run=dry_run)
        summary = run_tick(now=moment, dry_run=dry_run, limit=limit, progress=progress)
        if interactive:
            self.stderr.write("")
        self.stdout.write(f"Tick at {moment.isoformat()}")
        if resumed:
            verb = "would resume" if dry_run else "resumed"
            self.stdout.write(f"{verb}: {len(resumed)} paused case(s) whose resume date has come")
        for line in summary.lines():
            self.stdout.write(line)
