from django.urls import path

from notifications import views

app_name = "notifications"
urlpatterns = [
    path("api/v1/banners/", views.banners, name="banners"),
    path("api/v1/banners/token/", views.banner_token, name="banner-token"),
    path("api/v1/banners/embed/", views.banners_embed, name="banners-embed"),
]
