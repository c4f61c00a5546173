"""The scheme admin: committee staff see only their own schemes; a locked scheme stays as it is."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from members.models import Organization, Role
from scoring.models import PeriodLock, Rule, RuleCategory, Scheme
from scoring.schemes import scheme_adopt, scheme_create_from_preset
from tests.factories import OrganizationFactory, RoleFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def committees():
    return OrganizationFactory(name="甲党委"), OrganizationFactory(name="乙党委")


def _staff(committee: Organization, username: str):
    user = UserFactory(username=username, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="scoring"))
    RoleFactory(user=user, organization=committee, post=Role.Post.STAFF)
    return user


def _scheme(committee: Organization, name: str) -> Scheme:
    scheme = scheme_create_from_preset(
        owner=committee, year=2026, name=name, preset="five_stars_base_100"
    )
    scheme_adopt(organization=committee, scheme=scheme)
    return scheme


def test_staff_see_only_the_schemes_of_their_committee(client, committees):
    # given
    own, other = committees
    _scheme(own, "甲细则")
    _scheme(other, "乙细则")
    client.force_login(_staff(own, "staff_a"))

    # when
    response = client.get(reverse("admin:scoring_scheme_changelist"))

    # then
    assert response.status_code == 200
    assert [scheme.name for scheme in response.context["cl"].queryset] == ["甲细则"]


def test_staff_cannot_open_another_committees_scheme(client, committees):
    own, other = committees
    foreign = _scheme(other, "乙细则")
    client.force_login(_staff(own, "staff_a"))

    response = client.get(reverse("admin:scoring_scheme_change", args=[foreign.pk]))

    # the admin redirects to its index with "does not exist" for objects outside the queryset
    assert response.status_code == 302
    assert Scheme.objects.get(pk=foreign.pk).name == "乙细则"


def test_a_scheme_used_by_a_locked_period_cannot_be_changed(client, committees):
    # given
    own, _other = committees
    scheme = _scheme(own, "甲细则")
    staff = _staff(own, "staff_a")
    PeriodLock.objects.create(organization=own, year=2026, quarter=1, locked_by=staff)
    client.force_login(staff)

    # when
    page = client.get(reverse("admin:scoring_scheme_change", args=[scheme.pk]))
    response = client.post(
        reverse("admin:scoring_scheme_change", args=[scheme.pk]),
        {"name": "改名", "year": 2026, "owner": own.pk, "base_score": "80"},
    )

    # then: read-only page, and the post changes nothing
    assert page.status_code == 200
    assert page.context["has_change_permission"] is False
    assert response.status_code == 403
    scheme.refresh_from_db()
    assert (scheme.name, scheme.base_score, scheme.version) == ("甲细则", Decimal("100.00"), 1)


def test_editing_an_unlocked_rule_bumps_the_scheme_version(client, committees):
    own, _other = committees
    scheme = _scheme(own, "甲细则")
    category = RuleCategory.objects.create(scheme=scheme, name="学习教育")
    rule = Rule.objects.create(
        scheme=scheme,
        category=category,
        code="B-1",
        name="研讨发言",
        kind=Rule.Kind.BONUS,
        points_min=Decimal("5"),
        points_max=Decimal("5"),
    )
    client.force_login(_staff(own, "staff_a"))

    response = client.post(
        reverse("admin:scoring_rule_change", args=[rule.pk]),
        {
            "scheme": scheme.pk,
            "category": category.pk,
            "code": "B-1",
            "name": "研讨会发言",
            "kind": "bonus",
            "points_min": "5",
            "points_max": "5",
            "applies_to": "[]",
            "audience": "all",
            "position": "0",
        },
    )

    assert response.status_code == 302
    rule.refresh_from_db()
    scheme.refresh_from_db()
    assert (rule.name, rule.version, scheme.version) == ("研讨会发言", 1, 2)
