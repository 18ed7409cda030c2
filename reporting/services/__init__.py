"""Reporting's writers: the rollup refresh (its own tables only) and the weekly digest email."""

from reporting.services.digest import DigestResult, digest_send
from reporting.services.refresh import RefreshResult, rollups_refresh

__all__ = ["DigestResult", "RefreshResult", "digest_send", "rollups_refresh"]
