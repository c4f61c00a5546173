"""Organizations and members through the API: each role sees exactly what the pages let it
see; anything else is 404; nothing can be written."""

from __future__ import annotations

import pytest

from members.models import Member
from tests.api.conftest import ROLES, assert_error

ALL_ORGANIZATIONS = ["测试党委", "测试党总支", "甲党支部", "乙党支部", "丙党支部"]
VISIBLE_ORGANIZATIONS = {
    "superuser": ALL_ORGANIZATIONS,
    "committee_staff": ALL_ORGANIZATIONS,
    "general_staff": ["测试党总支", "甲党支部", "乙党支部"],
    "secretary_a": ["甲党支部"],
    "recorder_a": ["甲党支部"],
    "discipline_a": ["甲党支部"],
    "member_a": ["甲党支部"],
    "secretary_b": ["乙党支部"],
    "member_b": ["乙党支部"],
    "no_role": [],
}
VISIBLE_MEMBERS = {
    "superuser": ["张三", "李四", "王芳", "赵六", "钱七", "孙八"],
    "committee_staff": ["张三", "李四", "王芳", "赵六", "钱七", "孙八"],
    "general_staff": ["张三", "李四", "王芳", "赵六", "钱七"],
    "secretary_a": ["张三", "李四", "王芳"],
    "recorder_a": ["张三", "李四", "王芳"],
    "discipline_a": ["张三", "李四", "王芳"],
    "member_a": ["张三"],
    "secretary_b": ["赵六", "钱七"],
    "member_b": ["赵六"],
    "no_role": [],
}


def names(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [row["name"] for row in response.json()["results"]]


@pytest.mark.parametrize("role", ROLES)
def test_organizations_listed_are_those_the_role_may_read(api, members, role):
    response = api(role).get("/api/v1/organizations/")

    assert sorted(names(response)) == sorted(VISIBLE_ORGANIZATIONS[role])
    assert response.json()["count"] == len(VISIBLE_ORGANIZATIONS[role])


@pytest.mark.parametrize("role", ROLES)
def test_an_organization_out_of_reach_is_404(api, tree, members, role):
    response = api(role).get(f"/api/v1/organizations/{tree.branch_a.pk}/")

    if "甲党支部" in VISIBLE_ORGANIZATIONS[role]:
        assert response.status_code == 200
        assert response.json()["name"] == "甲党支部"
        assert response.json()["parent"] == tree.general_branch.pk
    else:
        assert_error(response, 404, "not_found")


def test_anonymous_may_not_list_organizations(api, members):
    assert_error(api("anonymous").get("/api/v1/organizations/"), 401, "not_authenticated")


def test_an_organization_says_what_the_user_may_do_there(api, tree, members):
    secretary = api("secretary_a").get(f"/api/v1/organizations/{tree.branch_a.pk}/").json()
    member = api("member_a").get(f"/api/v1/organizations/{tree.branch_a.pk}/").json()

    assert "record_entry" in secretary["actions"]
    assert "reverse_entry" in secretary["actions"]
    assert member["actions"] == [
        "view_publicity",
        "declare",
        "self_assess",
        "acknowledge",
        "raise_objection",
    ]


def test_organizations_filter_by_kind_and_subtree(api, tree, members):
    client = api("committee_staff")

    branches = names(client.get("/api/v1/organizations/", {"kind": "branch"}))
    below = names(client.get("/api/v1/organizations/", {"within": tree.general_branch.pk}))

    assert branches == ["甲党支部", "乙党支部", "丙党支部"]
    assert below == ["测试党总支", "甲党支部", "乙党支部"]


def test_a_bad_filter_value_is_a_field_error(api, members):
    response = api("committee_staff").get("/api/v1/organizations/", {"kind": "planet"})

    body = assert_error(response, 400, "invalid")
    assert list(body["errors"]) == ["kind"]


@pytest.mark.parametrize("role", ROLES)
def test_members_listed_are_those_the_role_may_see(api, members, role):
    response = api(role).get("/api/v1/members/")

    assert sorted(names(response)) == sorted(VISIBLE_MEMBERS[role])


@pytest.mark.parametrize("role", ROLES)
def test_a_member_out_of_reach_is_404(api, members, role):
    response = api(role).get(f"/api/v1/members/{members['member_a'].pk}/")

    if "张三" in VISIBLE_MEMBERS[role]:
        assert response.status_code == 200
        assert response.json()["phone"] == "13900000001"
    else:
        assert_error(response, 404, "not_found")


def test_members_filter(api, tree, members):
    client = api("committee_staff")

    assert names(client.get("/api/v1/members/", {"organization": tree.general_branch.pk})) == [
        "张三",
        "李四",
        "王芳",
        "赵六",
        "钱七",
    ]
    assert names(client.get("/api/v1/members/", {"category": "probationary"})) == ["王芳"]
    assert names(client.get("/api/v1/members/", {"search": "张"})) == ["张三"]
    assert names(client.get("/api/v1/members/", {"status": "exempt"})) == ["孙八"]
    assert names(client.get("/api/v1/members/", {"organization": 987654})) == []


def test_me_is_the_users_own_record(api, members):
    assert api("member_b").get("/api/v1/members/me/").json()["name"] == "赵六"
    assert_error(api("no_role").get("/api/v1/members/me/"), 404, "not_found")


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_the_roster_cannot_be_written_through_the_api(api, members, method):
    member = members["member_a"]

    response = getattr(api("secretary_a"), method)(
        f"/api/v1/members/{member.pk}/", {"name": "改名", "status": "exempt"}, format="json"
    )

    assert_error(response, 405, "method_not_allowed")
    member.refresh_from_db()
    assert (member.name, member.status) == ("张三", Member.Status.ACTIVE)
