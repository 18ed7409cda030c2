from django.apps import AppConfig


class ReportingConfig(AppConfig):
    """Read-only recovery metrics. Imports the other apps; imported by none."""

    name = "reporting"
    verbose_name = "Reporting"

    def ready(self) -> None:
        from dunning.signals import tick_finished
        from reporting.receivers import refresh_after_tick

        tick_finished.connect(refresh_after_tick, dispatch_uid="reporting.refresh_after_tick")
