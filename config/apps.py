from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.db.models.signals import post_migrate


class ConfigConfig(AppConfig):
    """Project-level wiring: commands that span every app (serve, bootstrap, schedules), staff sign-in
    (config/staff_auth/), the staff roles (config/roles.py), the admin home and the record of finished
    ticks it shows."""

    name = "config"
    verbose_name = "Operations"

    def ready(self) -> None:
        from config.receivers import record_tick
        from config.roles import sync_after_migrate
        from dunning.signals import tick_finished

        post_migrate.connect(sync_after_migrate, dispatch_uid="config.roles.sync_after_migrate")
        tick_finished.connect(record_tick, dispatch_uid="config.record_tick")


class BackOfficeAdminConfig(admin_apps.AdminConfig):
    """``django.contrib.admin`` with the back office's site: a verified second factor for staff who need
    one, and a home that answers "what needs me today?".

    Named in INSTALLED_APPS in place of ``django.contrib.admin``; not this module's default config.
    """

    default = False
    default_site = "config.admin_site.BackOfficeAdminSite"

    def ready(self) -> None:
        super().ready()
        from django.contrib import admin
        from django_otp.plugins.otp_static.models import StaticDevice
        from django_otp.plugins.otp_totp.models import TOTPDevice

        # Authenticators change only through enrolment and `reset_mfa`, which audit it; django-otp's own
        # admin pages would let a superuser add a device to someone else's account, unaudited.
        for model in (TOTPDevice, StaticDevice):
            if admin.site.is_registered(model):
                admin.site.unregister(model)
