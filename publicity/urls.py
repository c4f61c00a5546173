"""The publicity board, its print view and the objection pages (``publicity:…``)."""

from django.urls import path

from . import views

app_name = "publicity"

urlpatterns = [
    path("publicity/<int:pk>/", views.board, name="board"),
    path("publicity/<int:pk>/print/", views.board_print, name="board_print"),
    path("publicity/<int:pk>/objections/", views.objections, name="objections"),
    path("publicity/<int:pk>/objections/new/", views.raise_objection, name="raise"),
    path(
        "publicity/<int:pk>/objections/<int:objection_pk>/recheck/", views.recheck, name="recheck"
    ),
    path(
        "publicity/<int:pk>/objections/<int:objection_pk>/examine/", views.examine, name="examine"
    ),
    path("publicity/<int:pk>/objections/<int:objection_pk>/rule/", views.rule, name="rule"),
    path("publicity/<int:pk>/objections/<int:objection_pk>/appeal/", views.appeal, name="appeal"),
    path("publicity/<int:pk>/objections/<int:objection_pk>/accept/", views.accept, name="accept"),
]
