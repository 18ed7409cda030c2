"""Portal addresses. The fixed routes (``link``, ``setup``) are matched before ``<token>``; keep their
names in ``log_redaction`` in step, so they are not redacted as if they were tokens."""

from django.urls import path

from dunning.portal import views

app_name = "portal"
urlpatterns = [
    path("link/", views.fresh_link, name="fresh-link"),
    path("setup/return/", views.setup_return, name="setup-return"),
    path("setup/complete/", views.setup_complete, name="setup-complete"),
    path("setup/cancelled/", views.setup_cancelled, name="setup-cancelled"),
    path("<str:token>/", views.page, name="page"),
    path("<str:token>/card/", views.card, name="card"),
    path("<str:token>/pay/", views.pay, name="pay"),
    path("<str:token>/paid/", views.paid, name="paid"),
]
