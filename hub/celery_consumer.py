"""The workers' Celery consumer: Celery's own, surviving a Redis broker that restarts while
tasks run (README: "Restarts and reconciliation").

On a lost broker connection Celery 5.7.0 collects the connection (closing its sockets), then
closes it once more (`Consumer.on_connection_error_after_connected`). When the worker was
waiting for more messages while tasks it had received were still running, kombu's first close
stopped half-way (its read of the dead socket failed), and the second one drops the channel's
connection pool and tries to requeue those messages through a transport the collect already let
go of: AttributeError ('NoneType' object has no attribute 'hostname'), which Celery treats as
unrecoverable, and the worker exits; so does a late acknowledgement of such a task. Reproduced
here with celery 5.7.0 / kombu 5.7.0 by killing Redis under a worker running 2 of its 4 slots.
Celery 5.6 only collected the connection, and that is what this consumer does: the second
close is skipped. The worker then connects again, and the tasks that were running finish (their
acknowledgement goes to the new Redis, which simply has nothing to remove).
"""
from __future__ import annotations

from celery.worker.consumer import Consumer as CeleryConsumer


class Consumer(CeleryConsumer):
    def on_connection_error_after_connected(self, exc):
        broken = self.connection
        if broken is not None:
            # Collected (its sockets closed) by the call below, but not closed a second time.
            broken.close = broken.release = lambda: None
        super().on_connection_error_after_connected(exc)
