"""What the filter form offers: the currencies, segments and policy versions that have cases."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection

from dunning.models import PolicyVersion
from reporting import sql


@dataclass(frozen=True)
class VersionChoice:
    id: int
    policy_id: int
    policy: str
    number: int

    @property
    def label(self) -> str:
        return f"{self.policy} v{self.number}"


@dataclass(frozen=True)
class FilterChoices:
    currencies: list[str]
    segments: list[str]
    versions: list[VersionChoice]

    @property
    def policies(self) -> list[tuple[int, str]]:
        seen: dict[int, str] = {}
        for version in self.versions:
            seen.setdefault(version.policy_id, version.policy)
        return sorted(seen.items(), key=lambda item: item[1].lower())


def filter_choices() -> FilterChoices:
    """Two queries: the distinct values of the (small) weekly rollup, and the published versions."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT 'currency', currency FROM {sql.ROLLUP} "
            f"UNION SELECT DISTINCT 'segment', segment FROM {sql.ROLLUP}",
            [],
        )
        rows = cursor.fetchall()
    versions = [
        VersionChoice(version.pk, version.policy_id, version.policy.name, version.number)
        for version in PolicyVersion.objects.select_related("policy").order_by("policy__name", "number")
    ]
    return FilterChoices(
        currencies=sorted(value for kind, value in rows if kind == "currency"),
        segments=sorted(value for kind, value in rows if kind == "segment"),
        versions=versions,
    )
