"""Who sees what: every page and download of a branch, and the permission module behind them.

A branch's objects outside a user's reach answer 404 (never 403), so their existence does not
leak; a permission test also checks that the forbidden change did not happen.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from members.models import Member
from members.permissions import Action, can, home_for, members_visible_to, organizations_where
from tests.factories import ORGANIZATION_KEYS, Tree, UserFactory, roster_workbook, workbook_rows

pytestmark = pytest.mark.django_db

EVERYONE = (
    "committee_staff",
    "general_staff",
    "secretary_a",
    "recorder_a",
    "discipline_a",
    "member_a",
    "secretary_b",
    "member_b",
    "no_role",
    "superuser",
)
BRANCH_A_PEOPLE = ("secretary_a", "recorder_a", "discipline_a", "member_a")
BRANCH_KEYS = ("branch_a", "branch_b", "branch_c")
MEMBER_KEYS = ("member_a", "secretary_a", "other_a", "member_b", "secretary_b", "member_c")

ALL = frozenset(ORGANIZATION_KEYS)
UNDER_GENERAL = frozenset({"general_branch", "branch_a", "branch_b"})
A = frozenset({"branch_a"})
B = frozenset({"branch_b"})
NONE: frozenset[str] = frozenset()

# The roster's actions; other apps add actions of their own, tested with those apps.
ROSTER_ACTIONS = (
    Action.VIEW_ROSTER,
    Action.MANAGE_ROSTER,
    Action.EXPORT_ROSTER,
    Action.VIEW_OVERVIEW,
    Action.VIEW_PUBLICITY,
)

# user → action → the organizations (tree keys) where the user may do it.
EXPECTED_REACH: dict[str, dict[Action, frozenset[str]]] = {
    "committee_staff": {
        Action.VIEW_ROSTER: ALL,
        Action.MANAGE_ROSTER: NONE,
        Action.EXPORT_ROSTER: ALL,
        Action.VIEW_OVERVIEW: ALL,
        Action.VIEW_PUBLICITY: ALL,
    },
    "general_staff": {
        Action.VIEW_ROSTER: UNDER_GENERAL,
        Action.MANAGE_ROSTER: NONE,
        Action.EXPORT_ROSTER: UNDER_GENERAL,
        Action.VIEW_OVERVIEW: UNDER_GENERAL,
        Action.VIEW_PUBLICITY: UNDER_GENERAL,
    },
    "secretary_a": {
        Action.VIEW_ROSTER: A,
        Action.MANAGE_ROSTER: A,
        Action.EXPORT_ROSTER: A,
        Action.VIEW_OVERVIEW: NONE,
        Action.VIEW_PUBLICITY: A,
    },
    "recorder_a": {
        Action.VIEW_ROSTER: A,
        Action.MANAGE_ROSTER: NONE,
        Action.EXPORT_ROSTER: NONE,
        Action.VIEW_OVERVIEW: NONE,
        Action.VIEW_PUBLICITY: A,
    },
    "discipline_a": {
        Action.VIEW_ROSTER: A,
        Action.MANAGE_ROSTER: NONE,
        Action.EXPORT_ROSTER: NONE,
        Action.VIEW_OVERVIEW: NONE,
        Action.VIEW_PUBLICITY: A,
    },
    "member_a": {
        Action.VIEW_ROSTER: NONE,
        Action.MANAGE_ROSTER: NONE,
        Action.EXPORT_ROSTER: NONE,
        Action.VIEW_OVERVIEW: NONE,
        Action.VIEW_PUBLICITY: A,
    },
    "secretary_b": {
        Action.VIEW_ROSTER: B,
        Action.MANAGE_ROSTER: B,
        Action.EXPORT_ROSTER: B,
        Action.VIEW_OVERVIEW: NONE,
        Action.VIEW_PUBLICITY: B,
    },
    "member_b": {
        Action.VIEW_ROSTER: NONE,
        Action.MANAGE_ROSTER: NONE,
        Action.EXPORT_ROSTER: NONE,
        Action.VIEW_OVERVIEW: NONE,
        Action.VIEW_PUBLICITY: B,
    },
    "no_role": {action: NONE for action in ROSTER_ACTIONS},
    "superuser": {action: ALL for action in ROSTER_ACTIONS},
    "anonymous": {action: NONE for action in ROSTER_ACTIONS},
}

# user → the roster entries (member keys) whose record they may open.
EXPECTED_VISIBLE_MEMBERS: dict[str, frozenset[str]] = {
    "committee_staff": frozenset(MEMBER_KEYS),
    "general_staff": frozenset({"member_a", "secretary_a", "other_a", "member_b", "secretary_b"}),
    "secretary_a": frozenset({"member_a", "secretary_a", "other_a"}),
    "recorder_a": frozenset({"member_a", "secretary_a", "other_a"}),
    "discipline_a": frozenset({"member_a", "secretary_a", "other_a"}),
    "member_a": frozenset({"member_a"}),
    "secretary_b": frozenset({"member_b", "secretary_b"}),
    "member_b": frozenset({"member_b"}),
    "no_role": frozenset(),
    "superuser": frozenset(MEMBER_KEYS),
    "anonymous": frozenset(),
}

# branch → its roster names in the order the roster (and its export) lists them.
ROSTER_NAMES = {
    "branch_a": ["张三", "李四", "王芳"],
    "branch_b": ["赵六", "钱七"],
    "branch_c": ["孙八"],
}


def user_for(key: str, users: dict[str, User]) -> User | AnonymousUser:
    return AnonymousUser() if key == "anonymous" else users[key]


def valid_upload() -> SimpleUploadedFile:
    content = roster_workbook([["新党员", "男", "13600000001", None, None, "正式党员", "在册"]])
    return SimpleUploadedFile("名册.xlsx", content)


def send(client, method: str, url: str):
    """GET the page, or POST a valid roster upload to it."""
    if method == "post":
        return client.post(url, {"file": valid_upload()})
    return client.get(url)


# --- pages and downloads -------------------------------------------------------------------

BRANCH_B_REQUESTS = [
    ("get", "members:roster", "branch_b"),
    ("get", "members:member_detail", "member_b"),
    ("get", "members:member_detail", "secretary_b"),
    ("get", "members:roster_export", "branch_b"),
    ("get", "members:roster_template", "branch_b"),
    ("get", "members:roster_import", "branch_b"),
    ("post", "members:roster_import", "branch_b"),
]


def target_pk(target: str, tree: Tree, members: dict[str, Member]) -> int:
    return tree.by_key(target).pk if target in ORGANIZATION_KEYS else members[target].pk


@pytest.mark.parametrize("user_key", BRANCH_A_PEOPLE)
@pytest.mark.parametrize(("method", "url_name", "target"), BRANCH_B_REQUESTS)
def test_branch_a_people_get_404_for_everything_of_branch_b(
    client_for, tree, members, user_key, method, url_name, target
):
    # given
    client = client_for(user_key)
    url = reverse(url_name, kwargs={"pk": target_pk(target, tree, members)})

    # when
    response = send(client, method, url)

    # then
    assert response.status_code == 404
    assert list(
        Member.objects.filter(organization=tree.branch_b).values_list("name", flat=True)
    ) == ["赵六", "钱七"]
    assert Member.objects.count() == 6


def test_import_into_branch_b_by_secretary_of_a_creates_no_member(client_for, tree, members):
    # given
    client = client_for("secretary_a")

    # when
    response = client.post(
        reverse("members:roster_import", kwargs={"pk": tree.branch_b.pk}), {"file": valid_upload()}
    )

    # then
    assert response.status_code == 404
    assert Member.objects.filter(name="新党员").exists() is False
    assert Member.objects.filter(organization=tree.branch_b).count() == 2
    assert Member.objects.count() == 6


@pytest.mark.parametrize("branch_key", (*BRANCH_KEYS, "general_branch", "committee"))
@pytest.mark.parametrize("user_key", EVERYONE)
def test_roster_page_answers_only_within_reach(client_for, tree, members, user_key, branch_key):
    # given
    may_view = branch_key in EXPECTED_REACH[user_key][Action.VIEW_ROSTER]
    is_branch = branch_key in BRANCH_KEYS

    # when
    response = client_for(user_key).get(
        reverse("members:roster", kwargs={"pk": tree.by_key(branch_key).pk})
    )

    # then: committees and general branches have no roster page, for anybody
    if may_view and is_branch:
        assert response.status_code == 200
        assert [member.name for member in response.context["members"]] == ROSTER_NAMES[branch_key]
    else:
        assert response.status_code == 404


@pytest.mark.parametrize("branch_key", BRANCH_KEYS)
@pytest.mark.parametrize("user_key", EVERYONE)
def test_roster_export_answers_only_within_reach_with_the_branch_rows(
    client_for, tree, members, user_key, branch_key
):
    # when
    response = client_for(user_key).get(
        reverse("members:roster_export", kwargs={"pk": tree.by_key(branch_key).pk})
    )

    # then
    if branch_key in EXPECTED_REACH[user_key][Action.EXPORT_ROSTER]:
        assert response.status_code == 200
        rows = workbook_rows(response.content)
        assert rows[0][0] == "姓名"
        assert [row[0] for row in rows[1:]] == ROSTER_NAMES[branch_key]
    else:
        assert response.status_code == 404


@pytest.mark.parametrize("url_name", ("members:roster_template", "members:roster_import"))
@pytest.mark.parametrize("branch_key", BRANCH_KEYS)
@pytest.mark.parametrize("user_key", EVERYONE)
def test_template_and_import_page_only_for_roster_managers(
    client_for, tree, members, user_key, branch_key, url_name
):
    # when
    response = client_for(user_key).get(
        reverse(url_name, kwargs={"pk": tree.by_key(branch_key).pk})
    )

    # then: staff oversee the rosters but do not keep them
    expected = 200 if branch_key in EXPECTED_REACH[user_key][Action.MANAGE_ROSTER] else 404
    assert response.status_code == expected


@pytest.mark.parametrize("member_key", MEMBER_KEYS)
@pytest.mark.parametrize("user_key", EVERYONE)
def test_member_detail_answers_only_within_reach(client_for, members, user_key, member_key):
    # when
    response = client_for(user_key).get(
        reverse("members:member_detail", kwargs={"pk": members[member_key].pk})
    )

    # then
    if member_key in EXPECTED_VISIBLE_MEMBERS[user_key]:
        assert response.status_code == 200
        assert response.context["member"] == members[member_key]
    else:
        assert response.status_code == 404


def test_member_detail_of_a_missing_member_is_404(client_for, members):
    response = client_for("superuser").get(reverse("members:member_detail", kwargs={"pk": 999999}))

    assert response.status_code == 404


@pytest.mark.parametrize(
    ("user_key", "member_key"),
    [("member_a", "member_a"), ("secretary_a", "secretary_a"), ("member_b", "member_b")],
)
def test_me_shows_the_users_own_roster_entry(client_for, members, user_key, member_key):
    response = client_for(user_key).get(reverse("members:me"))

    assert response.status_code == 200
    assert response.context["member"] == members[member_key]


@pytest.mark.parametrize("user_key", ("committee_staff", "recorder_a", "no_role"))
def test_me_without_roster_entry_redirects_to_no_role(client_for, members, user_key):
    response = client_for(user_key).get(reverse("members:me"))

    assert response.status_code == 302
    assert response["Location"] == "/no-role/"


@pytest.mark.parametrize("url_name", ("members:roster", "members:roster_export"))
def test_plain_member_cannot_open_own_branch_roster_or_export(client_for, tree, members, url_name):
    response = client_for("member_a").get(reverse(url_name, kwargs={"pk": tree.branch_a.pk}))

    assert response.status_code == 404


@pytest.mark.parametrize(
    ("user_key", "expected_choices", "expected_branches"),
    [
        ("committee_staff", ["测试党委", "测试党总支"], ["甲党支部", "乙党支部", "丙党支部"]),
        ("general_staff", ["测试党总支"], ["甲党支部", "乙党支部"]),
        ("superuser", ["测试党委", "测试党总支"], ["甲党支部", "乙党支部", "丙党支部"]),
    ],
)
def test_overview_lists_the_organizations_below_the_staff_post(
    client_for, members, user_key, expected_choices, expected_branches
):
    response = client_for(user_key).get(reverse("members:overview"))

    assert response.status_code == 200
    choices = response.context["organization_choices"]
    assert [label.strip("\u3000") for _pk, label in choices] == expected_choices
    assert [summary.name for summary, _badges in response.context["rows"]] == expected_branches
    assert response.context["branch_count"] == len(expected_branches)


@pytest.mark.parametrize(
    "user_key", ("secretary_a", "recorder_a", "discipline_a", "member_a", "no_role")
)
def test_overview_is_404_without_a_staff_post(client_for, members, user_key):
    response = client_for(user_key).get(reverse("members:overview"))

    assert response.status_code == 404


ANONYMOUS_REQUESTS = [
    ("get", "home", None),
    ("get", "members:overview", None),
    ("get", "members:me", None),
    ("get", "members:no_role", None),
    ("get", "members:roster", "branch_a"),
    ("get", "members:member_detail", "member_a"),
    ("get", "members:roster_export", "branch_a"),
    ("get", "members:roster_template", "branch_a"),
    ("get", "members:roster_import", "branch_a"),
    ("post", "members:roster_import", "branch_a"),
]


@pytest.mark.parametrize(("method", "url_name", "target"), ANONYMOUS_REQUESTS)
def test_anonymous_users_are_sent_to_the_login_page(
    client, tree, members, method, url_name, target
):
    # given
    kwargs = {} if target is None else {"pk": target_pk(target, tree, members)}
    url = reverse(url_name, kwargs=kwargs)

    # when
    response = send(client, method, url)

    # then
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={quote(url)}"
    assert Member.objects.count() == 6


# --- the home page redirect ----------------------------------------------------------------

EXPECTED_HOME = {
    "committee_staff": ("members:overview", None),
    "general_staff": ("members:overview", None),
    "superuser": ("members:overview", None),
    "secretary_a": ("scoring:branch_ledger", "branch_a"),
    "recorder_a": ("scoring:branch_ledger", "branch_a"),
    "discipline_a": ("scoring:branch_ledger", "branch_a"),
    "secretary_b": ("scoring:branch_ledger", "branch_b"),
    "member_a": ("scoring:my_points", None),
    "member_b": ("scoring:my_points", None),
    "no_role": ("members:no_role", None),
}


@pytest.mark.parametrize("user_key", EVERYONE)
def test_home_for_names_where_the_users_work_is(tree, users, members, user_key):
    url_name, branch_key = EXPECTED_HOME[user_key]
    kwargs = {} if branch_key is None else {"pk": tree.by_key(branch_key).pk}

    assert home_for(users[user_key]) == (url_name, kwargs)


@pytest.mark.parametrize(
    ("user_key", "expected_path"),
    [
        ("committee_staff", "/overview/"),
        ("general_staff", "/overview/"),
        ("superuser", "/overview/"),
        ("secretary_a", "/branches/{branch_a}/ledger/"),
        ("recorder_a", "/branches/{branch_a}/ledger/"),
        ("discipline_a", "/branches/{branch_a}/ledger/"),
        ("secretary_b", "/branches/{branch_b}/ledger/"),
        ("member_a", "/me/points/"),
        ("member_b", "/me/points/"),
        ("no_role", "/no-role/"),
    ],
)
def test_home_page_redirects_to_the_users_work(client_for, tree, members, user_key, expected_path):
    # when
    response = client_for(user_key).get("/")

    # then
    assert response.status_code == 302
    assert response["Location"] == expected_path.format(
        branch_a=tree.branch_a.pk, branch_b=tree.branch_b.pk
    )
    assert client_for(user_key).get(response["Location"]).status_code == 200


# --- the permission module -----------------------------------------------------------------

REACH_CASES = [(user_key, action) for user_key in EXPECTED_REACH for action in ROSTER_ACTIONS]


@pytest.mark.parametrize(("user_key", "action"), REACH_CASES)
def test_can_answers_for_every_organization_of_the_tree(tree, users, members, user_key, action):
    # given
    user = user_for(user_key, users)

    # when
    allowed = {key for key in ORGANIZATION_KEYS if can(user, action, tree.by_key(key))}

    # then
    assert allowed == EXPECTED_REACH[user_key][action]


@pytest.mark.parametrize(("user_key", "action"), REACH_CASES)
def test_organizations_where_is_exactly_the_reach(tree, users, members, user_key, action):
    # given
    user = user_for(user_key, users)
    expected_pks = {tree.by_key(key).pk for key in EXPECTED_REACH[user_key][action]}

    # when
    organizations = organizations_where(user, action)

    # then
    assert set(organizations.values_list("pk", flat=True)) == expected_pks
    assert organizations.count() == len(expected_pks)


@pytest.mark.parametrize("user_key", EXPECTED_VISIBLE_MEMBERS)
def test_members_visible_to_is_exactly_the_visible_records(users, members, user_key):
    # given
    user = user_for(user_key, users)
    expected_pks = {members[key].pk for key in EXPECTED_VISIBLE_MEMBERS[user_key]}

    # when
    visible = members_visible_to(user)

    # then
    assert set(visible.values_list("pk", flat=True)) == expected_pks
    assert visible.count() == len(expected_pks)


@pytest.mark.parametrize(
    ("user_key", "expected"), [("superuser", ALL), ("no_role", NONE), ("anonymous", NONE)]
)
def test_superuser_may_do_everything_and_users_without_a_post_nothing(
    tree, users, members, user_key, expected
):
    user = user_for(user_key, users)

    for action in Action:
        assert {key for key in ORGANIZATION_KEYS if can(user, action, tree.by_key(key))} == expected
        assert set(organizations_where(user, action).values_list("pk", flat=True)) == {
            tree.by_key(key).pk for key in expected
        }


def test_home_for_anonymous_user_is_no_role(tree):
    assert home_for(AnonymousUser()) == ("members:no_role", {})


def test_inactive_user_loses_every_right(tree, users, members):
    # given
    users["secretary_a"].is_active = False
    users["secretary_a"].save()

    # then
    for action in Action:
        assert can(users["secretary_a"], action, tree.branch_a) is False
        assert list(organizations_where(users["secretary_a"], action)) == []
    assert list(members_visible_to(users["secretary_a"])) == []


def test_transferred_out_member_loses_the_member_rights_but_keeps_their_record(tree, members):
    # given
    user = UserFactory(username="transferred")
    member = members["other_a"]
    member.user = user
    member.status = Member.Status.TRANSFERRED_OUT
    member.save()

    # then
    assert can(user, Action.VIEW_PUBLICITY, tree.branch_a) is False
    assert list(organizations_where(user, Action.VIEW_PUBLICITY)) == []
    assert list(members_visible_to(user)) == [member]
