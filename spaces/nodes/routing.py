"""The queue a space's work goes to (design.md §7): its node's own queues.

`resolve` is added to `records.jobs.queue_resolvers` at start (spaces/apps.py), so every
`jobs.send` of a space's task goes to the node the space is placed on: starts to the node's
starts queue, stop and unfreeze to its lifecycle queue. A space on no node, or on a node that is
not live, gets the task's own queue (the hub's workers): a start there places the space first
(placement.py) and hands the start on to the chosen node's queue. Deletion stays on the hub
(routes, files and rows are the hub's); it asks the node to remove the containers
(`node_release_task`). With no Node row nothing changes: every task keeps its own queue.

The queue names are the contract with a node's worker (`celery -A hub worker -Q
node.<name>,node.<name>.starts`, README "Nodes"): they are what the node registered.
"""
from __future__ import annotations

from spaces.nodes.models import Node
from spaces.nodes.selectors import LIVE
from spaces.records.models import Revision, Space

# task name -> (which queue of the node, the argument that names the space: "space" or "revision")
SPACE_TASKS = {
    "spaces.tasks.start_revision_task": ("starts", "revision"),
    "spaces.tasks.restart_crashed_space_task": ("starts", "space"),
    "spaces.tasks.wake_start_space_task": ("starts", "space"),
    "spaces.tasks.stop_space_task": ("lifecycle", "space"),
    "spaces.tasks.wake_space_task": ("lifecycle", "space"),
    "spaces.tasks.sleep_space_task": ("lifecycle", "space"),
}


def node_queue(node: Node, kind: str) -> str:
    return node.starts_queue if kind == "starts" else node.queue


def resolve(task: str, args: tuple, kwargs: dict) -> str | None:
    which = SPACE_TASKS.get(task)
    if which is None or not args:
        return None
    kind, named = which
    if named == "revision":
        row = (Revision.objects.filter(pk=args[0], space__node__state__in=LIVE)
               .values_list("space__node__queue", "space__node__starts_queue").first())
    else:
        row = (Space.objects.filter(pk=args[0], node__state__in=LIVE)
               .values_list("node__queue", "node__starts_queue").first())
    if row is None:
        return None
    return row[1] if kind == "starts" else row[0]
