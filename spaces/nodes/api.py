"""The operator API for nodes (staff only) and the list of hardware tiers (README "Nodes and
hardware tiers"). Non-staff callers get 403 (401 without credentials), and a database or broker
that does not answer gives 503 with Retry-After (spaces/web/unavailable.py).

    GET  /api/hardware                      the tiers of this hub (anyone: clients choose from it)
    GET  /api/nodes                         every node with capacity, load and spaces
    GET  /api/nodes/<name>                  one node
    POST /api/nodes/<name>/<action>         cordon, uncordon, drain, remove
"""
from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotAuthenticated, PermissionDenied
from rest_framework.response import Response

from spaces.accounts.api_base import BaseApi
from spaces.nodes import services
from spaces.nodes.models import Node
from spaces.nodes.selectors import nodes_overview
from spaces.nodes.tiers import default_tier, tiers
from spaces.records.models import Space
from spaces.web.unavailable import ApiAnswers503WhenDown

ACTIONS = ("cordon", "uncordon", "drain", "remove")


class NodeOut(serializers.Serializer):
    name = serializers.CharField()
    address = serializers.CharField()
    state = serializers.CharField()
    cordoned = serializers.BooleanField()
    schedulable = serializers.BooleanField()
    heartbeat_at = serializers.DateTimeField(allow_null=True)
    fresh = serializers.BooleanField()
    epoch = serializers.IntegerField()
    queue = serializers.CharField()
    starts_queue = serializers.CharField()
    cpus = serializers.FloatField()
    memory_bytes = serializers.IntegerField()
    gpus = serializers.ListField(child=serializers.DictField())
    labels = serializers.DictField(child=serializers.CharField())
    can_build = serializers.BooleanField()
    used = serializers.DictField()
    free_memory_bytes = serializers.IntegerField()
    free_cpus = serializers.FloatField()
    free_gpus = serializers.IntegerField()
    spaces = serializers.ListField(child=serializers.CharField())
    note = serializers.CharField()


class TierOut(serializers.Serializer):
    name = serializers.CharField()
    cpus = serializers.FloatField()
    memory_bytes = serializers.IntegerField()
    gpus = serializers.IntegerField()
    labels = serializers.DictField(child=serializers.CharField())
    description = serializers.CharField()
    default = serializers.BooleanField()


def _row(item: dict, spaces: list[str]) -> dict:
    node = item["node"]
    fields = ("name", "address", "state", "cordoned", "schedulable", "heartbeat_at", "epoch", "queue", "starts_queue",
              "cpus", "memory_bytes", "gpus", "labels", "can_build", "note")
    return {**{f: getattr(node, f) for f in fields}, "fresh": item["fresh"], "used": item["used"],
            "free_memory_bytes": item["free_memory_bytes"], "free_cpus": item["free_cpus"],
            "free_gpus": item["free_gpus"], "spaces": spaces}


def _spaces_by_node() -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for node_id, owner, name in (Space.objects.filter(node__isnull=False).order_by("owner__username", "name")
                                 .values_list("node_id", "owner__username", "name")):
        out.setdefault(node_id, []).append(f"{owner}/{name}")
    return out


class StaffApi(ApiAnswers503WhenDown, BaseApi):
    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if not request.user.is_authenticated:
            raise NotAuthenticated("Log in or send an API token of a staff user.")
        if not request.user.is_staff:
            raise PermissionDenied("Nodes are for the hub's operators (staff users) only.")


def _listing(name: str, item) -> dict:
    return {200: inline_serializer(name, {"results": item(many=True)})}


STAFF_ONLY = {401: OpenApiResponse(description="no credentials"), 403: OpenApiResponse(description="not staff"),
              503: OpenApiResponse(description="database or broker down (Retry-After)")}


class NodeListApi(StaffApi):
    @extend_schema(operation_id="nodes_list", tags=["nodes"], responses={**_listing("NodeList", NodeOut),
                                                                          **STAFF_ONLY})
    def get(self, request):
        spaces = _spaces_by_node()
        rows = [_row(item, spaces.get(item["node"].pk, [])) for item in nodes_overview()]
        return Response({"results": NodeOut(rows, many=True).data})


def _one(name: str) -> tuple[Node, dict]:
    for item in nodes_overview():
        if item["node"].name == name:
            return item["node"], item
    raise Http404


class NodeDetailApi(StaffApi):
    @extend_schema(operation_id="nodes_detail", tags=["nodes"], responses={200: NodeOut, **STAFF_ONLY})
    def get(self, request, name):
        node, item = _one(name)
        return Response(NodeOut(_row(item, _spaces_by_node().get(node.pk, []))).data)


class NodeActionApi(StaffApi):
    @extend_schema(operation_id="nodes_action", tags=["nodes"], request=None,
                   description="action: cordon, uncordon, drain or remove",
                   responses={202: inline_serializer("NodeAction", {"node": NodeOut(),
                                                                    "moving": serializers.IntegerField()}),
                              **STAFF_ONLY})
    def post(self, request, name, action):
        if action not in ACTIONS:
            raise Http404
        node, _ = _one(name)
        moved: list[int] = []
        if action in ("cordon", "uncordon"):
            services.node_cordon(node, cordoned=action == "cordon")
        elif action == "drain":
            moved = services.node_drain(node)
        else:
            moved = services.node_remove(node)
        node, item = _one(name)
        body = NodeOut(_row(item, _spaces_by_node().get(node.pk, []))).data
        return Response({"node": body, "moving": len(moved)}, status=status.HTTP_202_ACCEPTED)


class HardwareApi(ApiAnswers503WhenDown, BaseApi):
    @extend_schema(operation_id="hardware_list", tags=["nodes"], responses=_listing("HardwareTierList", TierOut))
    def get(self, request):
        default = default_tier().name
        rows = [{**t.as_dict(), "default": t.name == default} for t in tiers().values()]
        return Response({"results": TierOut(rows, many=True).data})
