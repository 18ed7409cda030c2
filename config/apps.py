from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ConfigConfig(AppConfig):
    """Project-level wiring: commands that span every app (serve, bootstrap, schedules), staff sign-in
    (config/staff_auth/) and the staff roles (config/roles.py)."""

    name = "config"
    verbose_name = "Project"

    def ready(self) -> None:
        from config.roles import sync_after_migrate

        post_migrate.connect(sync_after_migrate, dispatch_uid="config.roles.sync_after_migrate")
