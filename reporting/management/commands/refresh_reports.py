"""Bring the recovery reports up to date now (the tick does it after every run), or rebuild them."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from reporting.services import rollups_refresh


class Command(BaseCommand):
    help = "Refresh the recovery reports' rollups; --full rebuilds them from scratch (after a bulk load)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--full", action="store_true", help="Rebuild every case's facts and every week.")

    def handle(self, *args: Any, full: bool, **options: Any) -> None:
        result = rollups_refresh(full=full)
        if result.skipped:
            self.stdout.write("Nothing changed since the last refresh.")
            return
        kind = "Rebuilt" if result.full else "Refreshed"
        self.stdout.write(
            f"{kind}: {result.cases} case(s) recomputed, {result.weeks} week(s) summed, in {result.duration_ms} ms."
        )
