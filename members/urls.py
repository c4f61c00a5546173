from django.urls import path

from . import views

app_name = "members"

urlpatterns = [
    path("overview/", views.overview, name="overview"),
    path("audit/", views.audit, name="audit"),
    path("branches/<int:pk>/", views.branch_roster, name="roster"),
    path("branches/<int:pk>/roster/template.xlsx", views.roster_template, name="roster_template"),
    path("branches/<int:pk>/roster/import/", views.roster_import, name="roster_import"),
    path("branches/<int:pk>/roster/export.xlsx", views.roster_export, name="roster_export"),
    path("members/<int:pk>/", views.member_detail, name="member_detail"),
    path("me/", views.me, name="me"),
    path("no-role/", views.no_role, name="no_role"),
]
