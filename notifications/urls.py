from django.urls import path

from notifications import tracking_webhooks, views

app_name = "notifications"
urlpatterns = [
    path("api/v1/banners/", views.banners, name="banners"),
    path("api/v1/banners/token/", views.banner_token, name="banner-token"),
    path("api/v1/banners/embed/", views.banners_embed, name="banners-embed"),
    # The email provider's tracking webhook (ANYMAIL_PROVIDER only; every other address answers 404).
    path("anymail/<str:provider>/tracking/", tracking_webhooks.tracking_webhook, name="tracking-webhook"),
]
