"""hub/celery_consumer.py: on a lost broker connection the workers' consumer collects the old
connection but does not close it a second time, which with Celery 5.7.0 kills a worker whose
Redis restarted while it ran tasks (reproduced for real in tests/e2e/test_restarts.py)."""
from __future__ import annotations

from unittest import mock

from celery.worker.consumer import Consumer as CeleryConsumer

from hub.celery_consumer import Consumer


def lose_connection(consumer_cls) -> mock.MagicMock:
    consumer = consumer_cls.__new__(consumer_cls)  # only what the method touches
    consumer.connection = connection = mock.MagicMock()
    consumer.app = mock.MagicMock()
    consumer.app.conf.worker_cancel_long_running_tasks_on_connection_loss = False
    consumer.app.conf.worker_enable_prefetch_count_reduction = False
    close = connection.close
    consumer.on_connection_error_after_connected(ConnectionError("Connection closed by server."))
    assert consumer.connection is None  # replaced by a new one on restart
    assert connection.collect.called
    return close


def test_the_lost_connection_is_collected_but_not_closed_again():
    assert not lose_connection(Consumer).called


def test_celerys_own_consumer_closes_it_again():
    # What the subclass exists for: if Celery stops doing this, the workaround can go.
    assert lose_connection(CeleryConsumer).called
