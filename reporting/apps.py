from django.apps import AppConfig


class ReportingConfig(AppConfig):
    """Read-only recovery metrics. Imports the other apps; imported by none."""

    name = "reporting"
    verbose_name = "Reporting"
