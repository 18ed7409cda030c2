"""django-q2 entry points: thin wrappers with stable dotted paths."""

from __future__ import annotations

from reporting.services import digest_send, rollups_refresh


def send_weekly_digest() -> str:
    result = digest_send()
    return f"sent to {len(result.recipients)} recipient(s)" if result.sent else f"not sent: {result.reason}"


def rebuild_rollups() -> str:
    """The nightly safety net: rebuild the rollups from scratch, whatever the incremental refreshes did."""
    result = rollups_refresh(full=True)
    return f"rebuilt {result.cases} case(s) over {result.weeks} week(s) in {result.duration_ms} ms"
