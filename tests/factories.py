"""Factories for organizations, members, roles and users — the one place tests build data."""

from __future__ import annotations

import io
from dataclasses import dataclass

import factory
from django.contrib.auth.models import User
from openpyxl import Workbook, load_workbook

from members.models import Member, Organization, Role
from members.services import organization_add

TEST_PASSWORD = "Demo@2026-test"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda number: f"user{number}")
    password = factory.django.Password(TEST_PASSWORD)
    is_active = True


class OrganizationFactory(factory.django.DjangoModelFactory):
    """A node of the organization tree, added through the service so treebeard keeps its paths.

    ``parent`` (an Organization or None for a new committee at the top) is not a model field:
    it is handed to ``organization_add``.
    """

    class Meta:
        model = Organization

    name = factory.Sequence(lambda number: f"党组织{number}")
    kind = Organization.Kind.COMMITTEE
    parent = None

    @classmethod
    def _create(cls, model_class, *args, parent=None, **kwargs) -> Organization:
        return organization_add(parent=parent, name=kwargs["name"], kind=kwargs["kind"])

    @classmethod
    def _build(cls, model_class, *args, **kwargs):
        raise NotImplementedError("an Organization only exists inside the tree: use create()")


class BranchFactory(OrganizationFactory):
    name = factory.Sequence(lambda number: f"第{number}党支部")
    kind = Organization.Kind.BRANCH
    parent = factory.SubFactory(OrganizationFactory)


class MemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Member

    organization = factory.SubFactory(BranchFactory)
    name = factory.Sequence(lambda number: f"党员{number}")
    phone = factory.Sequence(lambda number: f"137{number:08d}")
    category = Member.Category.FULL
    status = Member.Status.ACTIVE


class RoleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Role

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(BranchFactory)
    post = Role.Post.SECRETARY


@dataclass(frozen=True)
class Tree:
    """committee → general branch → branches A and B; branch C directly under the committee."""

    committee: Organization
    general_branch: Organization
    branch_a: Organization
    branch_b: Organization
    branch_c: Organization

    def by_key(self, key: str) -> Organization:
        return getattr(self, key)


ORGANIZATION_KEYS = ("committee", "general_branch", "branch_a", "branch_b", "branch_c")


def build_tree() -> Tree:
    committee = OrganizationFactory(name="测试党委", kind=Organization.Kind.COMMITTEE)
    general_branch = OrganizationFactory(
        name="测试党总支", kind=Organization.Kind.GENERAL_BRANCH, parent=committee
    )
    branch_a = BranchFactory(name="甲党支部", parent=general_branch)
    branch_b = BranchFactory(name="乙党支部", parent=general_branch)
    branch_c = BranchFactory(name="丙党支部", parent=committee)
    # Reload every node: adding children changes numchild on rows we already hold.
    return Tree(
        *(
            Organization.objects.get(pk=node.pk)
            for node in (committee, general_branch, branch_a, branch_b, branch_c)
        )
    )


ROSTER_HEADERS = [
    "姓名",
    "性别",
    "手机号",
    "出生日期",
    "入党日期",
    "类别",
    "状态",
    "党员干部",
    "不列入考核原因",
]


def roster_workbook(rows: list[list], headers: list[str] | None = None) -> bytes:
    """An .xlsx built in memory: one header row (the template's unless given), then ``rows``."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(ROSTER_HEADERS if headers is None else headers)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def workbook_rows(content: bytes) -> list[tuple]:
    """Every row of the first sheet of a downloaded workbook, as cell values."""
    workbook = load_workbook(io.BytesIO(content), read_only=True)
    try:
        return list(workbook.worksheets[0].iter_rows(values_only=True))
    finally:
        workbook.close()
