from django.apps import AppConfig


class ReportingConfig(AppConfig):
    """Read-only recovery metrics. Imports the other apps; imported by none."""

    name = "reporting"
    verbose_name = "Reporting"

    def ready(self) -> None:
        from dunning.signals import tick_finished
        from reporting.receivers import record_tick_figures, refresh_after_tick

        # The figures first: the tick's duration must not include the refresh.
        tick_finished.connect(record_tick_figures, dispatch_uid="reporting.record_tick_figures")
        tick_finished.connect(refresh_after_tick, dispatch_uid="reporting.refresh_after_tick")
