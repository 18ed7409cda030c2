"""Mounted under /admin/reports/ (config/urls.py), next to the admin whose look and login they share."""

from django.urls import path

from reporting import views

app_name = "reporting"

urlpatterns = [
    path("", views.dashboard_view, name="dashboard"),
    path("csv/<slug:slug>.csv", views.csv_view, name="csv"),
    path("refresh/", views.refresh_view, name="refresh"),
    path("customers/<int:customer_id>/", views.customer_view, name="customer"),
    path("cases/<int:case_id>/", views.case_view, name="case"),
    path("retry-timing/", views.retry_timing_view, name="retry_timing"),
]
