"""``python manage.py learn_retry_timing [--now ISO-8601] [--no-paydays]``: rebuild the smart retry model."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from dunning.management.commands.run_dunning import parse_now
from dunning.services.timing_learn import retry_timing_learn


class Command(BaseCommand):
    help = (
        "Rebuild the smart retry timing model from this installation's own retries, and each customer's "
        "payday from their paid invoices. Runs nightly from the task cluster; safe to run by hand."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--now", help="Pretend it is this moment (ISO-8601 with a zone).")
        parser.add_argument("--no-paydays", action="store_true", help="Only rebuild the model's counts.")

    def handle(self, *args: Any, now: str | None, no_paydays: bool, **options: Any) -> None:
        moment = parse_now(now) if now else timezone.now()

        def progress(line: str) -> None:
            self.stderr.write(f"  … {line}")
            sys.stderr.flush()

        record = retry_timing_learn(now=moment, progress=progress, paydays=not no_paydays)
        self.stdout.write(
            f"Learnt from {record.attempts_counted:,} retries; {record.customers_with_payday:,} customers "
            f"with a payday; {record.duration_seconds:.1f} s."
        )
