from django.urls import path

from . import views

app_name = "reviews"

urlpatterns = [
    path("branches/<int:pk>/reviews/", views.branch_cycles, name="branch_cycles"),
    path("branches/<int:pk>/reviews/open/", views.cycle_open, name="cycle_open"),
    path("reviews/<int:pk>/", views.cycle_detail, name="cycle"),
    path("reviews/<int:pk>/advance/", views.cycle_advance, name="cycle_advance"),
    path("reviews/<int:pk>/deadline/", views.cycle_deadline, name="cycle_deadline"),
    path("reviews/<int:pk>/reopen/", views.cycle_reopen, name="cycle_reopen"),
    path("reviews/<int:pk>/self-assessment/", views.self_assessment, name="self_assessment"),
    path("reviews/<int:pk>/committee/", views.committee_review, name="committee_review"),
    path(
        "reviews/<int:pk>/committee/declarations/<int:declaration_pk>/",
        views.committee_decide,
        name="committee_decide",
    ),
    path("reviews/<int:pk>/committee/agree/", views.committee_agree, name="committee_agree"),
    path("reviews/<int:pk>/committee/meeting/", views.committee_meeting, name="committee_meeting"),
    path(
        "reviews/<int:pk>/committee/appraisals/",
        views.committee_appraisals,
        name="committee_appraisals",
    ),
    path("reviews/<int:pk>/general-meeting/", views.general_meeting, name="general_meeting"),
    path("reviews/<int:pk>/acknowledge/", views.acknowledge, name="acknowledge"),
    path("me/reviews/", views.my_reviews, name="my_reviews"),
    path("me/notifications/", views.notifications, name="notifications"),
]
