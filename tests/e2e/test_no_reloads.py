"""Issue 9, item 1: sleeping, waking and visibility changes reload nothing, so a loaded space
never sees a failed request while 20 other spaces churn.

Eight keep-alive clients read one space through the real proxy while 20 minimal `sdk: docker`
spaces fall asleep (idle, as the proxy saw it), are made private, woken by a request, made
public again and read anonymously. Zero failed requests on the loaded space, and the
proxy's reload count (deploy/proxy/run.sh counts every SIGHUP) does not move: only creating
the spaces reloaded, before the measurement.
"""
from __future__ import annotations

import pytest

from .churn import KeepAliveLoad, churn, deploy_many, proxy_counters

pytestmark = pytest.mark.e2e

CHURNING = 20


def test_churn_of_20_spaces_reloads_nothing_and_fails_no_request(stack):
    owner, token = stack.new_user()
    loaded = deploy_many(stack, token, owner, ["loaded"])["loaded"]
    names = [f"churn{i:02d}" for i in range(CHURNING)]
    spaces = deploy_many(stack, token, owner, names, sleep_after=5)
    reloads, generation = proxy_counters(stack)
    with KeepAliveLoad(loaded["url"], clients=8) as load:
        counts = churn(stack, token, owner, names, spaces, rounds=1)
    after = proxy_counters(stack)
    print(f"loaded space: {load.ok} requests ok, {len(load.failures)} failed; churn {counts}; "
          f"reloads {reloads} -> {after[0]}, generation {generation} -> {after[1]}")
    assert counts["slept"] == counts["woken"] == CHURNING and counts["visibility_changes"] == 2 * CHURNING
    assert load.ok > 500, load.ok
    assert load.failures == [], load.failures[:10]
    assert after == (reloads, generation), "a sleep, wake or visibility change reloaded the proxy"
