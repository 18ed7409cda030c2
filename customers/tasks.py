"""django-q2 entry points for the customers layer: thin wrappers with stable dotted paths."""

from __future__ import annotations

from customers.accounts_csv.services import account_imports_purge_expired, account_tables_analyze


def refresh_account_statistics() -> None:
    """After a large CSV import: fresh planner statistics for the account tables."""
    account_tables_analyze()


def purge_expired_account_imports() -> int:
    """Delete the stored files of admin imports left unconfirmed past their expiry (hourly is plenty)."""
    return account_imports_purge_expired()
