from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import include, path


def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness probe for load balancers: no database access, never cached."""
    response = HttpResponse("ok", content_type="text/plain")
    response["Cache-Control"] = "no-store"
    return response


admin.site.site_header = "Dunning back office"
admin.site.site_title = "Dunning back office"
admin.site.index_title = "Recover failed payments"

urlpatterns = [
    # Before admin/, whose catch-all would otherwise answer these URLs.
    path("admin/reports/", include("reporting.urls")),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("healthz/live", healthz, name="healthz-live"),
    # Banner API (/api/v1/banners/...) and the configured email provider's tracking webhook
    # (/anymail/<ANYMAIL_PROVIDER>/tracking/).
    path("", include("notifications.urls")),
    # The customers' payment-update page: /portal/<signed token>/ (dunning/portal/).
    path("portal/", include("dunning.portal.urls")),
    # Stripe's webhook endpoint: /webhooks/stripe/.
    path("", include("dunning.urls")),
]
