"""The space status state machine (spaces/records/status.py) and space_transition's conditional UPDATE."""
from __future__ import annotations

import itertools

import pytest

from spaces.records.models import Space
from spaces.records.services import space_transition
from spaces.records.status import SERVING, TRANSITIONS, SpaceStatus, allowed_sources, is_serving

S = SpaceStatus
ALL = list(S)
HF_STAGES = {"NO_APP_FILE", "CONFIG_ERROR", "BUILDING", "BUILD_ERROR", "APP_STARTING", "RUNNING",
             "RUNNING_BUILDING", "RUNNING_APP_STARTING", "RUNTIME_ERROR", "SLEEPING", "PAUSED", "DELETING"}


# ------------------------------------------------------------------------------ the table itself
def test_values_are_the_hugging_face_stage_names():
    assert {s.value for s in S} == HF_STAGES


def test_every_state_is_a_target():
    assert set(TRANSITIONS) == set(S)
    for to in S:
        assert allowed_sources(to) == TRANSITIONS[to]
        assert set(TRANSITIONS[to]) <= set(S)


def test_deleting_is_final():
    for to in S:
        assert S.DELETING not in TRANSITIONS[to], to


def test_every_live_state_can_be_deleted_and_paused():
    live = set(S) - {S.DELETING}
    assert TRANSITIONS[S.DELETING] == live
    assert TRANSITIONS[S.PAUSED] == live


def test_build_error_only_from_building():
    assert TRANSITIONS[S.BUILD_ERROR] == {S.BUILDING}


def test_serving_states():
    assert SERVING == {S.RUNNING, S.RUNNING_BUILDING, S.RUNNING_APP_STARTING}
    assert all(is_serving(s) for s in SERVING)
    assert not any(is_serving(s) for s in set(S) - SERVING)
    # RUNNING_* is only entered while something serves.
    assert TRANSITIONS[S.RUNNING_BUILDING] <= SERVING
    assert TRANSITIONS[S.RUNNING_APP_STARTING] <= SERVING
    # Sleeping is entered from serving; a new revision that fails while the space sleeps (its
    # configuration or build: SLEEPING, its start: APP_STARTING) leaves it asleep. Waking leads
    # back to RUNNING.
    assert TRANSITIONS[S.SLEEPING] <= SERVING | {S.SLEEPING, S.APP_STARTING}
    assert S.SLEEPING in TRANSITIONS[S.RUNNING]


def test_every_live_state_is_reachable_from_no_app_file():
    seen, todo = {S.NO_APP_FILE}, [S.NO_APP_FILE]
    while todo:
        current = todo.pop()
        for to, sources in TRANSITIONS.items():
            if current in sources and to not in seen:
                seen.add(to)
                todo.append(to)
    assert seen == set(S)


def test_unknown_target_is_refused():
    with pytest.raises(KeyError):
        allowed_sources("EXPLODED")


# ------------------------------------------------------------------------------ space_transition
@pytest.fixture
def space(db, make_user, make_space):
    return make_space(make_user("olive"), "demo", sdk="gradio")


@pytest.mark.django_db
def test_space_transition_follows_the_table_for_every_pair(space):
    """All 12 x 12 (from, to) pairs: the conditional UPDATE applies exactly the allowed ones."""
    for frm, to in itertools.product(ALL, ALL):
        Space.objects.filter(pk=space.pk).update(status=frm, error="before")
        allowed = frm in TRANSITIONS[to]
        changed = space_transition(space.pk, to, error="after")
        row = Space.objects.values("status", "error").get(pk=space.pk)
        assert changed is allowed, (frm, to)
        if allowed:
            assert row == {"status": to, "error": "after"}, (frm, to)
        else:
            assert row == {"status": frm, "error": "before"}, (frm, to)


@pytest.mark.django_db
@pytest.mark.parametrize("to", ALL)
def test_nothing_leaves_deleting(space, to):
    Space.objects.filter(pk=space.pk).update(status=S.DELETING)
    assert space_transition(space, to) is False
    assert Space.objects.get(pk=space.pk).status == S.DELETING


@pytest.mark.django_db
def test_transition_updates_the_instance_only_when_applied(space):
    Space.objects.filter(pk=space.pk).update(status=S.BUILDING)
    space.status = S.BUILDING
    assert space_transition(space, S.BUILD_ERROR, error="boom") is True
    assert (space.status, space.error) == (S.BUILD_ERROR, "boom")
    # BUILD_ERROR -> RUNNING_BUILDING is not allowed: the instance keeps its values.
    assert space_transition(space, S.RUNNING_BUILDING, error="x") is False
    assert (space.status, space.error) == (S.BUILD_ERROR, "boom")


@pytest.mark.django_db
def test_transition_is_decided_by_the_database_not_the_instance(space):
    """A concurrent change that got there first makes a stale caller's transition a no-op."""
    Space.objects.filter(pk=space.pk).update(status=S.BUILDING)
    stale = Space.objects.get(pk=space.pk)
    # Someone else pauses the space meanwhile.
    assert space_transition(space.pk, S.PAUSED) is True
    # The stale caller still believes BUILDING and reports the build failure: refused.
    assert space_transition(stale, S.BUILD_ERROR, error="late") is False
    assert Space.objects.get(pk=space.pk).status == S.PAUSED
    assert stale.status == S.BUILDING


@pytest.mark.django_db
def test_only_one_of_two_racing_transitions_wins(space):
    Space.objects.filter(pk=space.pk).update(status=S.BUILDING)
    first = space_transition(space.pk, S.BUILD_ERROR)
    second = space_transition(space.pk, S.BUILD_ERROR)
    assert (first, second) == (True, False)


@pytest.mark.django_db
def test_transition_writes_extra_fields_in_the_same_update(space):
    Space.objects.filter(pk=space.pk).update(status=S.APP_STARTING)
    assert space_transition(space, S.RUNNING, error="", active_slot="b") is True
    row = Space.objects.get(pk=space.pk)
    assert (row.status, row.active_slot) == (S.RUNNING, "b")
    # Refused: the extra fields are not written either.
    assert space_transition(space, S.BUILD_ERROR, active_slot="a") is False
    assert Space.objects.get(pk=space.pk).active_slot == "b"


@pytest.mark.django_db
def test_transition_error_is_capped(space):
    Space.objects.filter(pk=space.pk).update(status=S.BUILDING)
    space_transition(space, S.BUILD_ERROR, error="x" * 10_000)
    assert len(Space.objects.get(pk=space.pk).error) == 4000


@pytest.mark.django_db
def test_transition_without_error_keeps_the_error(space):
    Space.objects.filter(pk=space.pk).update(status=S.RUNNING, error="revision 2 failed")
    assert space_transition(space, S.SLEEPING) is True
    assert Space.objects.get(pk=space.pk).error == "revision 2 failed"


@pytest.mark.django_db
def test_transition_bumps_updated_at(space):
    before = Space.objects.get(pk=space.pk).updated_at
    Space.objects.filter(pk=space.pk).update(status=S.BUILDING, updated_at=before.replace(year=2000))
    space_transition(space, S.BUILD_ERROR)
    assert Space.objects.get(pk=space.pk).updated_at.year > 2000


@pytest.mark.django_db
def test_transition_of_a_missing_space_is_false():
    assert space_transition(10**12, S.RUNNING) is False
