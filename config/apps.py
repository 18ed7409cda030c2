from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class ConfigConfig(AppConfig):
    """Project-level wiring: commands that span every app (serve, bootstrap, schedules), the admin home,
    and the record of finished ticks it shows."""

    name = "config"
    verbose_name = "Operations"

    def ready(self) -> None:
        from config.receivers import record_tick
        from dunning.signals import tick_finished

        tick_finished.connect(record_tick, dispatch_uid="config.record_tick")


class BackOfficeAdminConfig(admin_apps.AdminConfig):
    """``django.contrib.admin`` with the back office's site: its home answers "what needs me today?".

    Named in INSTALLED_APPS in place of ``django.contrib.admin``; not this module's default config.
    """

    default = False
    default_site = "config.admin_site.BackOfficeAdminSite"
