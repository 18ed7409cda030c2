from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path, reverse_lazy

from config import health, metrics


def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico on every page that names none (the admin's): the static file."""
    response = HttpResponsePermanentRedirect(static("favicon.ico"))
    response["Cache-Control"] = "public, max-age=86400"
    return response


admin.site.site_header = "Dunning back office"
admin.site.site_title = "Dunning back office"
admin.site.index_title = "Recover failed payments"
# "View site" opens what customers see without a link: the portal's "send me a fresh link" page (the
# portal itself needs a customer's token; there is no other public page).
admin.site.site_url = reverse_lazy("portal:fresh-link")

urlpatterns = [
    # Before admin/, whose catch-all would otherwise answer these URLs.
    path("admin/reports/", include("reporting.urls")),
    path("admin/", admin.site.urls),
    # Operations: readiness (JSON, 200/503), liveness, and Prometheus metrics (README, "Operations").
    path("healthz", health.healthz, name="healthz"),
    path("healthz/live", health.live, name="healthz-live"),
    path("metrics", metrics.metrics, name="metrics"),
    path("favicon.ico", favicon, name="favicon"),
    # Banner API (/api/v1/banners/...) and the configured email provider's tracking webhook
    # (/anymail/<ANYMAIL_PROVIDER>/tracking/).
    path("", include("notifications.urls")),
    # The customers' payment-update page: /portal/<signed token>/ (dunning/portal/).
    path("portal/", include("dunning.portal.urls")),
    # Stripe's webhook endpoint: /webhooks/stripe/.
    path("", include("dunning.urls")),
]
