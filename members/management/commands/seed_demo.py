"""Load the demo organization, roster and logins. Running it again changes nothing."""

from __future__ import annotations

import random
from datetime import date

from django.contrib.auth.models import Permission, User
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from members.models import Member, Organization, Role
from members.services import organization_add, role_assign
from reviews.demo import seed_demo_reviews
from scoring.demo import seed_demo_scoring

DEMO_PASSWORD = "Demo@2026"
SCHEME_MODELS = ["scheme", "schemeadoption", "outcomeband", "rulecategory", "rule"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦方白邹孟熊秦邱江尹薛段雷侯龙史陶黎贺顾毛郝龚邵万钱严武戴孔汤"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国红梅志明玉兰海燕晓东春梅文斌丹凤立新永辉淑珍德胜建华凤英俊峰国庆慧敏"

COMMITTEE = "城关镇党委"
TREE = {
    "机关党总支": ["机关第一党支部", "机关第二党支部"],
    "社区党总支": ["东关社区党支部", "西街社区党支部", "离退休干部党支部"],
}
# (category, status) of the 16 people on each branch roster, officers first.
ROSTER_SHAPE = (
    [(Member.Category.FULL, Member.Status.ACTIVE)] * 10
    + [(Member.Category.PROBATIONARY, Member.Status.ACTIVE)] * 2
    + [(Member.Category.DEVELOPMENT_TARGET, Member.Status.ACTIVE)]
    + [(Member.Category.ACTIVIST, Member.Status.ACTIVE)]
    + [(Member.Category.FULL, Member.Status.FLOWING)]
    + [(Member.Category.FULL, Member.Status.EXEMPT)]
)
RETIRED_SHAPE = (
    [(Member.Category.FULL, Member.Status.RETIRED)] * 12
    + [(Member.Category.FULL, Member.Status.EXEMPT)] * 2
    + [(Member.Category.FULL, Member.Status.TRANSFERRED_OUT)]
    + [(Member.Category.FULL, Member.Status.ACTIVE)]
)
DECLARATION_LABELS = {
    "pending": "待审核",
    "approved": "通过",
    "adjusted": "调整后通过",
    "rejected": "未通过",
}
OFFICER_POSTS = [
    ("shuji", Role.Post.SECRETARY, "书记"),
    ("jiluyuan", Role.Post.RECORDER, "积分记录员"),
    ("jijian", Role.Post.DISCIPLINE_COMMISSIONER, "纪检委员"),
]


def _name(generator: random.Random, used: set[str]) -> str:
    while True:
        given = generator.choice(GIVEN) + (
            generator.choice(GIVEN) if generator.random() < 0.7 else ""
        )
        name = generator.choice(SURNAMES) + given
        if name not in used:
            used.add(name)
            return name


def _user(username: str, full_name: str, **flags) -> User:
    user, created = User.objects.get_or_create(username=username, defaults=flags)
    if created:
        user.first_name = full_name
        user.set_password(DEMO_PASSWORD)
        user.save()
    return user


def _child(parent: Organization | None, name: str, kind: str) -> Organization:
    siblings = (
        Organization.objects.filter(depth=1)
        if parent is None
        else Organization.objects.get_children(parent)
    )
    existing = siblings.filter(name=name).first()
    return existing or organization_add(parent=parent, name=name, kind=kind)


class Command(BaseCommand):
    help = (
        "载入演示数据：一个党委、2 个党总支、5 个党支部、约 80 名党员、各类演示账号，"
        "以及上一年度和本年度的积分细则、积分台账和积分申报（可重复运行）。"
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--roster-only",
            action="store_true",
            help="只载入组织、名册和账号，不生成积分台账和评议。",
        )

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        generator = random.Random(2026)
        used_names: set[str] = set()
        committee = _child(None, COMMITTEE, Organization.Kind.COMMITTEE)
        _user("admin", "系统管理员", is_staff=True, is_superuser=True)
        staff = _user("dangwei", "党委工作人员", is_staff=True)
        role_assign(user=staff, organization=committee, post=Role.Post.STAFF)
        # Committee staff maintain the scheme in the admin (scoped there to their committee).
        staff.user_permissions.add(
            *Permission.objects.filter(
                content_type__app_label="scoring",
                content_type__model__in=SCHEME_MODELS,
            ),
            *Permission.objects.filter(
                codename__startswith="view_",
                content_type__app_label__in=["scoring", "reviews", "publicity"],
            ),
        )
        branch_number = 0
        for general_index, (general_name, branch_names) in enumerate(TREE.items(), start=1):
            general = _child(committee, general_name, Organization.Kind.GENERAL_BRANCH)
            role_assign(
                user=_user(f"zongzhi{general_index}", f"{general_name}工作人员"),
                organization=general,
                post=Role.Post.STAFF,
            )
            for branch_name in branch_names:
                branch_number += 1
                branch = _child(general, branch_name, Organization.Kind.BRANCH)
                shape = RETIRED_SHAPE if "离退休" in branch_name else ROSTER_SHAPE
                self._roster(branch, branch_number, shape, generator, used_names)
        if options["roster_only"]:
            self.stdout.write(self.style.SUCCESS(self.logins()))
            return
        for seeded in seed_demo_scoring():
            if seeded.skipped:
                self.stdout.write(f"演示积分 {seeded.year} 年度：{seeded.skipped}，未新增。")
            else:
                declared = "、".join(
                    f"{label}{seeded.declarations.get(key, 0)}"
                    for key, label in DECLARATION_LABELS.items()
                )
                self.stdout.write(
                    f"演示积分 {seeded.year} 年度：{seeded.entries} 条积分记录，申报（{declared}）。"
                )
        cycles = seed_demo_reviews(committee, timezone.localdate())
        if cycles:
            self.stdout.write(
                f"演示评议：新建 {cycles} 个季度/年度评议（往期已归档，本季度自评中）。"
            )
        self.stdout.write(self.style.SUCCESS(self.logins()))

    def _roster(self, branch, number, shape, generator, used_names) -> None:
        for index, (category, status) in enumerate(shape):
            name = _name(generator, used_names)
            phone = f"139{number:02d}{index:02d}{generator.randrange(10000):04d}"
            gender = generator.choice([Member.Gender.MALE, Member.Gender.FEMALE])
            birth_year = (
                generator.randrange(1945, 1960)
                if status == Member.Status.RETIRED
                else generator.randrange(1965, 2002)
            )
            member = Member.objects.filter(
                organization=branch, phone__startswith=f"139{number:02d}{index:02d}"
            ).first()
            if member is None:
                member = Member.objects.create(
                    organization=branch,
                    name=name,
                    phone=phone,
                    gender=gender,
                    birth_date=date(
                        birth_year, generator.randrange(1, 13), generator.randrange(1, 29)
                    ),
                    joined_on=date(min(birth_year + 25, 2024), generator.randrange(1, 13), 1),
                    category=category,
                    status=status,
                    is_cadre=index < 3,
                    exempt_reason="年老体弱，行动不便" if status == Member.Status.EXEMPT else "",
                )
            if index < len(OFFICER_POSTS):
                prefix, post, _label = OFFICER_POSTS[index]
                user = _user(f"{prefix}{number}", member.name)
                if member.user_id is None:
                    member.user = user
                    member.save(update_fields=["user"])
                role_assign(user=user, organization=branch, post=post)
            elif index in (3, 4) and number <= 2:
                user = _user(f"dangyuan{number}{'' if index == 3 else 'b'}", member.name)
                if member.user_id is None:
                    member.user = user
                    member.save(update_fields=["user"])

    @staticmethod
    def logins() -> str:
        return "\n".join(
            [
                f"演示账号（密码均为 {DEMO_PASSWORD}）：",
                "  admin      系统管理员（后台）",
                "  dangwei    党委工作人员：党委总览、各支部名册",
                "  zongzhi1   机关党总支工作人员",
                "  shuji1     机关第一党支部书记：名册、导入导出",
                "  jiluyuan1  机关第一党支部积分记录员",
                "  jijian1    机关第一党支部纪检委员",
                "  dangyuan1  机关第一党支部党员：我的积分（手机）",
            ]
        )
