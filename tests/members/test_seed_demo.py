"""The demo data: its shape, that running it again changes nothing, and its logins."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db.models import Count
from django.urls import reverse

from members.models import Member, Organization, Role
from members.permissions import home_for

pytestmark = pytest.mark.django_db

DEMO_PASSWORD = "Demo@2026"
BRANCH_NAMES = [
    "机关第一党支部",
    "机关第二党支部",
    "东关社区党支部",
    "西街社区党支部",
    "离退休干部党支部",
]


def seed(*, roster_only: bool = True) -> str:
    """The demo command; by default without the ledger and reviews (tests/scoring/test_demo.py
    covers those), which these tests do not look at."""
    output = io.StringIO()
    call_command("seed_demo", *(["--roster-only"] if roster_only else []), stdout=output)
    return output.getvalue()


def snapshot() -> dict:
    """Everything the command writes, in a form two runs can be compared by."""
    return {
        "organizations": list(
            Organization.objects.order_by("path").values_list("path", "name", "kind")
        ),
        "members": list(
            Member.objects.order_by("phone").values_list(
                "organization__name", "name", "phone", "category", "status", "user__username"
            )
        ),
        "users": list(User.objects.order_by("username").values_list("username", "is_superuser")),
        "roles": list(
            Role.objects.order_by("user__username", "post").values_list(
                "user__username", "organization__name", "post"
            )
        ),
    }


def counts(field: str) -> dict[str, int]:
    return dict(
        Member.objects.order_by()
        .values_list(field)
        .annotate(total=Count("id"))
        .values_list(field, "total")
    )


def counts_by_kind() -> dict[str, int]:
    # order_by(): treebeard's manager orders by path, which would split the groups.
    return dict(
        Organization.objects.order_by()
        .values_list("kind")
        .annotate(total=Count("id"))
        .values_list("kind", "total")
    )


def test_seed_demo_builds_the_demo_and_a_second_run_changes_nothing():
    # when
    seed()
    first = snapshot()
    seed()

    # then
    assert snapshot() == first
    assert Organization.objects.count() == 8
    assert counts_by_kind() == {"committee": 1, "general_branch": 2, "branch": 5}
    assert (
        list(
            Organization.objects.filter(kind=Organization.Kind.BRANCH)
            .order_by("path")
            .values_list("name", flat=True)
        )
        == BRANCH_NAMES
    )
    assert Member.objects.count() == 80
    assert User.objects.count() == 23
    assert Role.objects.count() == 18
    assert Member.objects.filter(user__isnull=False).count() == 19


def test_seed_demo_has_every_category_and_every_status():
    # when
    seed()

    # then
    assert counts("category") == {
        "full": 64,
        "probationary": 8,
        "development_target": 4,
        "activist": 4,
    }
    assert counts("status") == {
        "active": 57,
        "retired": 12,
        "flowing": 4,
        "exempt": 6,
        "transferred_out": 1,
    }
    assert set(counts("category")) == set(Member.Category.values)
    assert set(counts("status")) == set(Member.Status.values)
    assert Member.objects.filter(status=Member.Status.EXEMPT, exempt_reason="").count() == 0


def test_every_demo_branch_has_a_secretary_a_recorder_and_a_discipline_commissioner():
    # when
    seed()

    # then
    for branch in Organization.objects.filter(kind=Organization.Kind.BRANCH):
        assert sorted(branch.roles.values_list("post", flat=True)) == [
            "discipline_commissioner",
            "recorder",
            "secretary",
        ], branch.name
        assert branch.members.count() == 16, branch.name


@pytest.mark.parametrize(
    ("username", "expected_path"),
    [
        ("admin", "/overview/"),
        ("dangwei", "/overview/"),
        ("zongzhi1", "/overview/"),
        ("shuji1", "/branches/{first_branch}/ledger/"),
        ("jiluyuan1", "/branches/{first_branch}/ledger/"),
        ("jijian1", "/branches/{first_branch}/ledger/"),
        ("dangyuan1", "/me/points/"),
    ],
)
def test_demo_login_lands_where_home_for_sends_the_user(client, username, expected_path):
    # given
    seed()
    first_branch = Organization.objects.get(name="机关第一党支部")
    expected_path = expected_path.format(first_branch=first_branch.pk)

    # when
    response = client.post(
        reverse("login"), {"username": username, "password": DEMO_PASSWORD}, follow=True
    )

    # then
    assert response.status_code == 200
    assert response.redirect_chain == [("/", 302), (expected_path, 302)]
    url_name, kwargs = home_for(User.objects.get(username=username))
    assert reverse(url_name, kwargs=kwargs) == expected_path
    assert response.wsgi_request.user.username == username


def test_the_demo_committee_staff_may_edit_schemes_and_rules_in_the_admin():
    # when
    seed()

    # then
    staff = User.objects.get(username="dangwei")
    assert staff.is_staff is True
    assert staff.is_superuser is False
    assert staff.has_perms(["scoring.change_scheme", "scoring.add_rule", "scoring.change_rule"])
    assert staff.has_perm("scoring.change_entry") is False
    assert staff.has_perm("scoring.view_entry") is True
