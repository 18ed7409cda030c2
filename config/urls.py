from django.contrib import admin
from django.urls import include, path

from config import health, metrics

admin.site.site_header = "Dunning back office"
admin.site.site_title = "Dunning back office"
admin.site.index_title = "Recover failed payments"

urlpatterns = [
    # Before admin/, whose catch-all would otherwise answer these URLs.
    path("admin/reports/", include("reporting.urls")),
    path("admin/", admin.site.urls),
    # Operations: readiness (JSON, 200/503), liveness, and Prometheus metrics (README, "Operations").
    path("healthz", health.healthz, name="healthz"),
    path("healthz/live", health.live, name="healthz-live"),
    path("metrics", metrics.metrics, name="metrics"),
    # Banner API (/api/v1/banners/...) and the configured email provider's tracking webhook
    # (/anymail/<ANYMAIL_PROVIDER>/tracking/).
    path("", include("notifications.urls")),
    # The customers' payment-update page: /portal/<signed token>/ (dunning/portal/).
    path("portal/", include("dunning.portal.urls")),
    # Stripe's webhook endpoint: /webhooks/stripe/.
    path("", include("dunning.urls")),
]
