"""Hardware tiers: which one a space runs with (README "Nodes and hardware tiers").

The owner's choice (`Space.hardware`, the page and the API) wins; without one, the README's
`suggested_hardware` (Hugging Face's key) applies if this hub has that tier and the owner's
quota allows it (GPU spaces: QUOTA_GPU_SPACES_PER_USER), so an editor's README cannot raise
what the owner pays for; else HARDWARE_DEFAULT.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from spaces.nodes.conf import hardware_tiers, setting
from spaces.records.models import Space
from spaces.records.status import SERVING, SpaceStatus

S = SpaceStatus
# A space holds its tier's share of its node from its start until it stops (a frozen space
# keeps its memory).
HOLDING = frozenset(SERVING) | {S.APP_STARTING}


@dataclass(frozen=True)
class Tier:
    name: str
    cpus: float
    memory_bytes: int
    gpus: int = 0
    labels: dict = field(default_factory=dict)
    description: str = ""

    @property
    def memory(self) -> str:
        """Docker's notation, for RunSpec.memory."""
        return f"{self.memory_bytes // 2**20}m" if self.memory_bytes % 2**30 else f"{self.memory_bytes // 2**30}g"

    def as_dict(self) -> dict:
        return {"name": self.name, "cpus": self.cpus, "memory_bytes": self.memory_bytes, "gpus": self.gpus,
                "labels": dict(self.labels), "description": self.description}


def tiers() -> dict[str, Tier]:
    return {name: Tier(**t) for name, t in hardware_tiers().items()}


def default_tier() -> Tier:
    known = tiers()
    return known.get(setting("HARDWARE_DEFAULT")) or next(iter(known.values()))


def tier_named(name: str) -> Tier | None:
    return tiers().get(name or "")


def gpu_spaces_of(owner_id: int, *, exclude: int | None = None) -> int:
    """The owner's spaces that hold a GPU tier now (placed with one, running or starting)."""
    gpu_tiers = [t.name for t in tiers().values() if t.gpus]
    if not gpu_tiers:
        return 0
    qs = Space.objects.filter(owner_id=owner_id, tier__in=gpu_tiers, status__in=HOLDING | {S.RUNNING_BUILDING})
    if exclude is not None:
        qs = qs.exclude(pk=exclude)
    return qs.count()


def gpu_quota_allows(space: Space) -> bool:
    limit = setting("QUOTA_GPU_SPACES_PER_USER")
    return not limit or gpu_spaces_of(space.owner_id, exclude=space.pk) < limit


def suggested(space: Space) -> str:
    rev = space.latest_revision or space.running_revision
    return str((rev.metadata if rev else {}).get("suggested_hardware") or "")


def space_tier(space: Space) -> tuple[Tier, str]:
    """(the tier the space runs with, where it came from: "owner", "readme" or "default")."""
    chosen = tier_named(space.hardware)
    if chosen is not None:
        return chosen, "owner"
    wish = tier_named(suggested(space))
    if wish is not None and (not wish.gpus or gpu_quota_allows(space)):
        return wish, "readme"
    return default_tier(), "default"


def held_tier(space: Space) -> Tier:
    """The tier a placed space holds (recorded when it was placed)."""
    return tier_named(space.tier) or default_tier()
