"""Reporting's writers: the rollup refresh (its own tables only) and the weekly digest email."""

from reporting.services.refresh import RefreshResult, rollups_refresh

__all__ = ["RefreshResult", "rollups_refresh"]
