"""Reporting sits on top: it may import every app, and none imports it. Its measures cover the domain."""

from __future__ import annotations

import ast
from pathlib import Path

import customers
import dunning
import notifications
from dunning.models import RecoveryChannel
from reporting.measures import CHANNELS, MEASURES
from reporting.models import WeeklyRollup, WeeklyTotals


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith("reporting.")
        ):
            names.append(node.value)
    return names


def test_no_other_app_imports_reporting() -> None:
    offending = []
    for package in (customers, notifications, dunning):
        for path in sorted(Path(package.__file__).parent.rglob("*.py")):
            offending += [f"{path}: {name}" for name in _imports(path) if name.split(".")[0] == "reporting"]
    assert offending == []


def test_every_recovery_channel_has_its_row_in_the_reports() -> None:
    # A new channel in dunning must be added to reporting.measures.CHANNELS (and a migration for its columns).
    assert {channel for channel, _label in CHANNELS} == set(RecoveryChannel.values)


def test_the_rollups_have_a_column_for_every_measure() -> None:
    dimensions = {"id", "week_start", "currency", "policy_id", "policy_version_id", "segment"}
    dimensions |= {"first_decline_category", "first_decline_code"}
    for model in (WeeklyRollup, WeeklyTotals):
        assert {field.column for field in model._meta.concrete_fields} - dimensions == set(MEASURES)
