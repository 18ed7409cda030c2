from django.apps import AppConfig


class ConfigConfig(AppConfig):
    """Project-level wiring: commands that span every app (serve, bootstrap, schedules)."""

    name = "config"
    verbose_name = "Project"
