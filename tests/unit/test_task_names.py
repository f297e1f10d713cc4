"""Every task keeps the name it had before the rooms (issue 8): the beat schedule, the routes and
spaces/records/jobs.py name tasks by string, so a renamed task would be silently never run."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from celery import current_app
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
NAMES = {"build_revision_task", "start_revision_task", "stop_space_task", "delete_space_task", "publish_route_task",
         "housekeeping_task", "reconcile_task", "crash_check_task", "restart_crashed_space_task",
         "build_leases_sweep_task", "lost_work_sweep_task", "copy_run_logs_task", "refresh_trending_task",
         "sleep_check_task", "wake_space_task", "wake_start_space_task", "share_links_expired_task"}


def test_every_task_keeps_its_name():
    registered = {name for name in current_app.tasks if name.startswith("spaces.")}
    assert {f"spaces.tasks.{n}" for n in NAMES} <= registered
    assert all(name.startswith("spaces.tasks.") for name in registered), registered


def test_every_beat_entry_and_route_names_a_registered_task():
    named = [entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()] + list(settings.CELERY_TASK_ROUTES)
    assert named
    assert [name for name in named if name not in current_app.tasks] == []


def test_every_task_sent_by_name_is_registered():
    sent = set()
    for path in (ROOT / "spaces").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("send", "send_on_commit") and node.args
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
                    and re.fullmatch(r"spaces\.tasks\.\w+", node.args[0].value)):
                sent.add(node.args[0].value)
    assert len(sent) >= 8, sent
    assert sorted(name for name in sent if name not in current_app.tasks) == []
