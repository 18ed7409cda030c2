from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path, reverse_lazy


def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness probe for load balancers: no database access, never cached."""
    response = HttpResponse("ok", content_type="text/plain")
    response["Cache-Control"] = "no-store"
    return response


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
    path("healthz", healthz, name="healthz"),
    path("favicon.ico", favicon, name="favicon"),
    # Banner API (/api/v1/banners/...) and the email provider's tracking webhooks.
    path("", include("notifications.urls")),
    path("anymail/", include("anymail.urls")),
    # The customers' payment-update page: /portal/<signed token>/ (dunning/portal/).
    path("portal/", include("dunning.portal.urls")),
    # Stripe's webhook endpoint: /webhooks/stripe/.
    path("", include("dunning.urls")),
]
