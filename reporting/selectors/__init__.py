"""Reads of the reporting app: dataclasses for the dashboard, the customer and case pages and the digest."""

from reporting.selectors.dashboard import DashboardData, dashboard
from reporting.selectors.filters import ReportFilters

__all__ = ["DashboardData", "ReportFilters", "dashboard"]
