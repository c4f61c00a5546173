"""Changes to organizations, members and roles."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from .models import Member, Organization, Role

# Which kinds of organization may sit directly below which.
ALLOWED_CHILDREN = {
    None: {Organization.Kind.COMMITTEE},
    Organization.Kind.COMMITTEE: {
        Organization.Kind.COMMITTEE,
        Organization.Kind.GENERAL_BRANCH,
        Organization.Kind.BRANCH,
    },
    Organization.Kind.GENERAL_BRANCH: {Organization.Kind.BRANCH},
    Organization.Kind.BRANCH: set(),
}


@transaction.atomic
def organization_add(*, parent: Organization | None, name: str, kind: str) -> Organization:
    """Add an organization under ``parent`` (a new committee at the top when None)."""
    allowed = ALLOWED_CHILDREN[parent.kind if parent else None]
    if kind not in allowed:
        raise ValidationError(
            _("%(parent)s下不能设立%(kind)s。")
            % {
                "parent": parent.get_kind_display() if parent else _("最上级"),
                "kind": Organization.Kind(kind).label,
            }
        )
    if parent is None:
        return Organization.objects.add_root({"name": name, "kind": kind})
    # Reload: treebeard keeps child counts on the parent row.
    fresh_parent = Organization.objects.get(pk=parent.pk)
    return Organization.objects.add_child(fresh_parent, {"name": name, "kind": kind})


@transaction.atomic
def member_create(*, organization: Organization, **fields) -> Member:
    """Put a new member on a branch roster."""
    if not organization.is_branch:
        raise ValidationError(_("党员只能登记在党支部。"))
    member = Member(organization=organization, **fields)
    member.full_clean()
    member.save()
    return member


@transaction.atomic
def role_assign(*, user: User, organization: Organization, post: str) -> Role:
    """Give ``user`` a post in ``organization`` (no-op if they already hold it)."""
    if post == Role.Post.STAFF and organization.is_branch:
        raise ValidationError(_("党委工作人员职务只能设在党委或党总支。"))
    role, _created = Role.objects.get_or_create(user=user, organization=organization, post=post)
    return role
