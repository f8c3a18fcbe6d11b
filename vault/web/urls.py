"""Routes of the web pages."""

from __future__ import annotations

from django.urls import path
from django.views.i18n import set_language

from vault.web import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("language", set_language, name="set_language"),
    path("recordings/", views.catalog, name="catalog"),
    path("recordings/<str:device>/<str:rec>/", views.recording_page, name="recording"),
    path("recordings/<str:device>/<str:rec>/view", views.viewing_start, name="viewing_start"),
    path("viewings/<str:viewing_id>/", views.viewing_page, name="viewing"),
    path("viewings/<str:viewing_id>/stream", views.viewing_stream, name="viewing_stream"),
    path("viewings/<str:viewing_id>/status", views.viewing_status, name="viewing_status"),
    path("viewings/<str:viewing_id>/event", views.viewing_event, name="viewing_event"),
    path("cameras/", views.cameras, name="cameras"),
    path("sync", views.sync, name="sync"),
    path("requests/", views.requests_page, name="requests"),
    path("requests/<int:request_id>/", views.request_page, name="request"),
    path("audit/", views.audit_page, name="audit"),
    path("reports/", views.reports_page, name="reports"),
    path("reports/<int:report_id>/", views.report_page, name="report"),
    path("reports/<int:report_id>/print", views.report_print, name="report_print"),
    path("reports/<int:report_id>/pdf", views.report_pdf, name="report_pdf"),
]
