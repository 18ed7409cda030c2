from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.db.models.signals import post_migrate


class ConfigConfig(AppConfig):
    """Project-level wiring: commands that span every app (serve, bootstrap, schedules), staff sign-in
    (config/staff_auth/) and the staff roles (config/roles.py)."""

    name = "config"
    verbose_name = "Project"

    def ready(self) -> None:
        from config.roles import sync_after_migrate

        post_migrate.connect(sync_after_migrate, dispatch_uid="config.roles.sync_after_migrate")


class DunningAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with our site: a verified second factor for staff who need one."""

    default = False  # "config" in INSTALLED_APPS means ConfigConfig

    default_site = "config.staff_auth.site.DunningAdminSite"

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
