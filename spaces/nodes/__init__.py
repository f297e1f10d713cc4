"""Nodes (issue 12): the machines spaces run on. The Node rows (address, capacity, GPUs,
labels, heartbeat, fencing epoch) are the only cluster state; hardware tiers (conf.py,
tiers.py), placement of a space on a node (placement.py), the queue its lifecycle work goes to
(routing.py), registration and heartbeat of a node's worker (heartbeat.py), lost nodes,
cordon, drain and removal (services.py), the operator API (api.py).

With no Node row everything runs as before on the hub's own engine and queues (the implicit
local node): `make up` does not change.
May call: access, accounts, web, records, runner.
"""
