"""docs/permissions.md is the posts × actions table of the code, not a copy that can drift."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from members.management.commands import permission_matrix
from members.permissions import MEMBER_POST, POST_ACTIONS, Action


def test_the_document_matches_the_code():
    call_command("permission_matrix", "--check")


def test_the_check_fails_when_the_code_changes(monkeypatch):
    changed = dict(POST_ACTIONS)
    changed[MEMBER_POST] = POST_ACTIONS[MEMBER_POST] | {Action.RECORD_ENTRY}
    monkeypatch.setattr(permission_matrix, "POST_ACTIONS", changed)

    with pytest.raises(CommandError, match="docs/permissions.md 与 members/permissions.py 不一致"):
        call_command("permission_matrix", "--check")


def test_every_action_is_described_and_every_post_has_a_column():
    text = permission_matrix.render()
    assert set(permission_matrix.ACTION_TEXT) == set(Action)
    for action in Action:
        assert f"| `{action.value}` |" in text
    header = next(line for line in text.splitlines() if line.startswith("| action |"))
    assert header.count("|") == 2 + len(POST_ACTIONS) + 1
