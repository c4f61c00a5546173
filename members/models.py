"""Organizations, members and the posts users hold in organizations."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords
from treebeard.mp_tree import MP_Node


class Organization(MP_Node):
    """党组织: a node of the committee → general branch → branch tree.

    The materialized path (``path``) makes "this organization and everything below it"
    one indexed prefix query, which every permission check relies on.
    """

    class Kind(models.TextChoices):
        COMMITTEE = "committee", _("党委")
        GENERAL_BRANCH = "general_branch", _("党总支")
        BRANCH = "branch", _("党支部")

    name = models.CharField(_("名称"), max_length=100)
    kind = models.CharField(_("类型"), max_length=20, choices=Kind.choices)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    history = HistoricalRecords(excluded_fields=["numchild"])

    class Meta:
        verbose_name = _("党组织")
        verbose_name_plural = _("党组织")

    def __str__(self) -> str:
        return self.name

    @property
    def is_branch(self) -> bool:
        return self.kind == self.Kind.BRANCH


class Member(models.Model):
    """党员档案: one person on a branch roster, with or without a login."""

    class Category(models.TextChoices):
        FULL = "full", _("正式党员")
        PROBATIONARY = "probationary", _("预备党员")
        DEVELOPMENT_TARGET = "development_target", _("发展对象")
        ACTIVIST = "activist", _("入党积极分子")

    class Status(models.TextChoices):
        ACTIVE = "active", _("在册")
        RETIRED = "retired", _("离退休")
        FLOWING = "flowing", _("流动党员")
        EXEMPT = "exempt", _("不列入积分考核")
        TRANSFERRED_OUT = "transferred_out", _("转出")

    class Gender(models.TextChoices):
        MALE = "male", _("男")
        FEMALE = "female", _("女")

    # Members ranked in the party-member list; the others form the candidates' list.
    PARTY_CATEGORIES = (Category.FULL, Category.PROBATIONARY)
    UNRANKED_STATUSES = (Status.EXEMPT, Status.TRANSFERRED_OUT)

    organization = models.ForeignKey(
        Organization,
        verbose_name=_("所在支部"),
        on_delete=models.PROTECT,
        related_name="members",
        limit_choices_to={"kind": Organization.Kind.BRANCH},
    )
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        verbose_name=_("登录账号"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="member",
    )
    name = models.CharField(_("姓名"), max_length=50)
    gender = models.CharField(_("性别"), max_length=10, choices=Gender.choices, blank=True)
    phone = models.CharField(_("手机号"), max_length=20, blank=True)
    birth_date = models.DateField(_("出生日期"), null=True, blank=True)
    joined_on = models.DateField(_("入党（列为积极分子）日期"), null=True, blank=True)
    category = models.CharField(_("类别"), max_length=20, choices=Category.choices)
    status = models.CharField(
        _("状态"), max_length=20, choices=Status.choices, default=Status.ACTIVE
    )
    is_cadre = models.BooleanField(_("党员干部"), default=False)
    exempt_reason = models.CharField(_("不列入考核原因"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    history = HistoricalRecords()

    class Meta:
        verbose_name = _("党员")
        verbose_name_plural = _("党员")
        ordering = ["organization_id", "name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="exempt") | ~Q(exempt_reason=""),
                name="member_exempt_needs_reason",
                violation_error_message=_("不列入积分考核的党员须填写原因。"),
            ),
            models.UniqueConstraint(
                fields=["phone"],
                condition=~Q(phone=""),
                name="member_phone_unique",
                violation_error_message=_("该手机号已登记在其他党员名下。"),
            ),
        ]
        indexes = [models.Index(fields=["organization", "category", "status"])]

    def __str__(self) -> str:
        return self.name

    @property
    def is_ranked(self) -> bool:
        """Exempt and transferred-out members keep their ledger but are not ranked."""
        return self.status not in self.UNRANKED_STATUSES

    @property
    def is_party_member(self) -> bool:
        return self.category in self.PARTY_CATEGORIES


class Role(models.Model):
    """A user's post in an organization; its rights reach everything below it."""

    class Post(models.TextChoices):
        SECRETARY = "secretary", _("书记")
        DEPUTY_SECRETARY = "deputy_secretary", _("副书记")
        ORGANIZATION_COMMISSIONER = "organization_commissioner", _("组织委员")
        DISCIPLINE_COMMISSIONER = "discipline_commissioner", _("纪检委员")
        RECORDER = "recorder", _("积分记录员")
        COMMITTEE_MEMBER = "committee_member", _("支委委员")
        STAFF = "staff", _("党委工作人员")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("用户"),
        on_delete=models.CASCADE,
        related_name="party_roles",
    )
    organization = models.ForeignKey(
        Organization, verbose_name=_("党组织"), on_delete=models.CASCADE, related_name="roles"
    )
    post = models.CharField(_("职务"), max_length=30, choices=Post.choices)
    created_at = models.DateTimeField(_("任职登记时间"), auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        verbose_name = _("职务")
        verbose_name_plural = _("职务")
        constraints = [
            models.UniqueConstraint(
                fields=["user", "organization", "post"],
                name="role_unique_post",
                violation_error_message=_("该用户在此组织已担任此职务。"),
            )
        ]

    def __str__(self) -> str:
        return f"{self.organization} · {self.get_post_display()} · {self.user}"


class IdempotencyKey(models.Model):
    """An ``Idempotency-Key`` an API client sent with a POST, and the answer it got.

    The row is inserted before the request is carried out, in the same transaction, so a
    second request with the same key waits on the unique constraint until the first one
    commits, then finds the stored answer and replays it: one object, one answer. A request
    that fails stores nothing (its transaction rolls back), so the client may retry it."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("用户"),
        on_delete=models.CASCADE,
        related_name="+",
    )
    key = models.CharField(_("幂等键"), max_length=255)
    method = models.CharField(_("请求方法"), max_length=10)
    path = models.CharField(_("请求路径"), max_length=500)
    fingerprint = models.CharField(_("请求摘要"), max_length=64)
    status_code = models.PositiveSmallIntegerField(_("响应状态码"), null=True)
    response_body = models.JSONField(_("响应内容"), null=True)
    response_headers = models.JSONField(_("响应头"), default=dict)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("幂等键")
        verbose_name_plural = _("幂等键")
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_unique_per_user")
        ]
        indexes = [models.Index(fields=["created_at"])]

    def __str__(self) -> str:
        return f"{self.user_id} {self.key}"
