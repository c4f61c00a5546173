"""The REST API: /api/v1/ (every app's view sets on one router), the OpenAPI schema at
/api/schema/ and its documentation page at /api/docs/ (Swagger UI served from our own static
files — no CDN — with its start-up script loaded from a URL, not inline)."""

from __future__ import annotations

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import SimpleRouter

from members.api import views as member_views
from members.api.errors import api_not_found
from publicity.api import views as publicity_views
from reviews.api import views as review_views
from scoring.api import views as scoring_views

router = SimpleRouter(use_regex_path=False)
router.register("auth/token", member_views.AuthTokenViewSet, basename="auth-token")
router.register("organizations", member_views.OrganizationViewSet, basename="organization")
router.register("members", member_views.MemberViewSet, basename="member")
router.register("schemes", scoring_views.SchemeViewSet, basename="scheme")
router.register("rules", scoring_views.RuleViewSet, basename="rule")
router.register("entries", scoring_views.EntryViewSet, basename="entry")
router.register("declarations", scoring_views.DeclarationViewSet, basename="declaration")
router.register("period-scores", scoring_views.PeriodScoreViewSet, basename="period-score")
router.register("exports", scoring_views.ExportJobViewSet, basename="export")
router.register("review-cycles", review_views.ReviewCycleViewSet, basename="review-cycle")
router.register("objections", publicity_views.ObjectionViewSet, basename="objection")


class DocsView(SpectacularSwaggerSplitView):
    # Our copy of the page has no inline <style> (a strict CSP comes).
    template_name = "api/swagger_ui.html"


app_name = "api"

urlpatterns = [
    path("v1/", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", DocsView.as_view(url_name="api:schema"), name="docs"),
    # Any other /api/ address: the API's 404 body, not the HTML page.
    re_path(r"^[\s\S]*$", api_not_found),
]
