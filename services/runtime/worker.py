"""``fuli worker``: Dramatiq actors of the services, the outbox relay and the periodic jobs."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, TypeVar

import dramatiq
import redis
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware.asyncio import AsyncIO

from services.runtime.bus import ActorSpec, PeriodicJob
from services.runtime.db import create_pool
from services.runtime.heartbeat import Heartbeat
from services.runtime.outbox import OutboxRelay
from services.runtime.resources import Resources
from services.runtime.service import Host, ServiceSpec
from services.runtime.settings import Settings

log = logging.getLogger("fuli.worker")

T = TypeVar("T")


def create_broker(settings: Settings) -> dramatiq.Broker:
    url = settings.broker_url or settings.redis_url
    if url is None:
        raise RuntimeError("no broker: set FULI_BROKER_URL or FULI_REDIS_URL")
    broker: dramatiq.Broker
    if url.startswith(("amqp://", "amqps://")):
        # Publisher confirms: the relay deletes outbox rows only after the broker has them.
        broker = RabbitmqBroker(url=url, confirm_delivery=True)
    else:
        broker = RedisBroker(url=url, namespace="fuli-dramatiq")  # type: ignore[no-untyped-call]
    broker.add_middleware(AsyncIO())
    return broker


def declare_actors(broker: dramatiq.Broker, specs: Sequence[ActorSpec]) -> None:
    for spec in specs:
        declare = dramatiq.actor(actor_name=spec.name, queue_name=spec.queue, broker=broker,
                                 max_retries=spec.max_retries, time_limit=spec.time_limit_ms)
        declare(spec.fn)


class WorkerContext:
    """What async actors use: the worker's Host (Resources and every service's components),
    opened once, on the worker's event loop, at the first actor that needs it."""

    _settings: Settings | None = None
    _specs: Sequence[ServiceSpec[Any]] = ()
    _host: Host | None = None
    _lock: asyncio.Lock | None = None

    @classmethod
    def configure(cls, settings: Settings, specs: Sequence[ServiceSpec[Any]]) -> None:
        cls._settings = settings
        cls._specs = specs
        cls._host = None
        cls._lock = None

    @classmethod
    async def host(cls) -> Host:
        if cls._host is None:
            if cls._settings is None:
                raise RuntimeError("WorkerContext.configure(settings, specs) was not called")
            cls._lock = cls._lock or asyncio.Lock()
            async with cls._lock:
                if cls._host is None:
                    host = Host(cls._settings, cls._specs)
                    await host.open(await Resources.open(cls._settings,
                                                         application_name="fuli-worker"))
                    cls._host = host
        return cls._host

    @classmethod
    async def resources(cls) -> Resources:
        return (await cls.host()).resources

    @classmethod
    async def components(cls, service: str, kind: type[T]) -> T:
        return (await cls.host()).components(service, kind)

    @classmethod
    async def close(cls) -> None:
        host, cls._host = cls._host, None
        if host is not None:
            resources = host.resources
            await host.close()
            await resources.close()


class Scheduler(threading.Thread):
    """Enqueues periodic jobs. Each (job, time slot) is claimed with SET NX in Redis, so any
    number of worker replicas enqueue each run once."""

    def __init__(self, broker: dramatiq.Broker, redis_url: str, jobs: Sequence[PeriodicJob],
                 stop: threading.Event) -> None:
        super().__init__(name="fuli-scheduler", daemon=True)
        self.broker = broker
        self.client = redis.Redis.from_url(redis_url)
        self.jobs = jobs
        self.stop_event = stop

    def tick(self, now: float) -> list[str]:
        enqueued = []
        for job in self.jobs:
            slot = int(now // job.every_s)
            claim = f"fuli:sched:{job.actor}:{slot}"
            if self.client.set(claim, b"1", nx=True, ex=max(job.every_s * 2, 10)):
                self.broker.enqueue(dramatiq.Message(queue_name=job.queue, actor_name=job.actor,
                                                     args=(), kwargs={}, options={}))
                enqueued.append(job.actor)
        return enqueued

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.tick(time.time())
            except Exception:
                log.exception("scheduler tick failed")
            self.stop_event.wait(1.0)


class RelayThread(threading.Thread):
    def __init__(self, settings: Settings, broker: dramatiq.Broker,
                 stop: threading.Event) -> None:
        super().__init__(name="fuli-outbox-relay", daemon=True)
        self.settings = settings
        self.broker = broker
        self.stop_event = stop

    def _enqueue(self, messages: list[dramatiq.Message[Any]]) -> None:
        for message in messages:
            self.broker.enqueue(message)

    async def _main(self) -> None:
        assert self.settings.database_url is not None
        pool = await create_pool(self.settings.database_url, min_size=1, max_size=2,
                                 application_name="fuli-relay")
        stop = asyncio.Event()

        async def watch_stop() -> None:
            await asyncio.to_thread(self.stop_event.wait)
            stop.set()

        watcher = asyncio.create_task(watch_stop())
        try:
            relay = OutboxRelay(pool, self._enqueue,
                                resend_after_s=self.settings.event_resend_after_s)
            await relay.run(stop, self.settings.outbox_poll_ms / 1000)
        finally:
            watcher.cancel()
            await pool.close()

    def run(self) -> None:
        asyncio.run(self._main())


def run_worker(settings: Settings, specs: Sequence[ServiceSpec[Any]],
               actors: Sequence[ActorSpec], periodic: Sequence[PeriodicJob],
               stop: threading.Event) -> None:
    """Run ``actors`` and the ``periodic`` jobs (with every service of ``specs`` hosted for
    them) until ``stop`` is set."""
    assert settings.redis_url is not None
    WorkerContext.configure(settings, specs)
    broker = create_broker(settings)
    dramatiq.set_broker(broker)
    declare_actors(broker, actors)
    broker.emit_after("process_boot")
    worker = dramatiq.Worker(broker, worker_threads=settings.worker_threads)
    worker.start()
    threads: list[threading.Thread] = [RelayThread(settings, broker, stop)]
    if periodic:
        threads.append(Scheduler(broker, settings.redis_url, periodic, stop))
    for thread in threads:
        thread.start()
    log.info("worker running", extra={"fields": {
        "actors": [a.name for a in actors],
        "periodic": [p.actor for p in periodic]}})
    # Beats only while every part runs: a dead relay or Dramatiq thread makes the worker stale.
    heartbeat = Heartbeat(settings, stop, healthy=lambda: all(
        t.is_alive() for t in (*threads, *worker.workers, *worker.consumers.values())))
    heartbeat.start()
    try:
        stop.wait()
    finally:
        heartbeat.join(timeout=10)
        loop_thread = get_event_loop_thread()
        if loop_thread is not None:
            loop_thread.run_coroutine(WorkerContext.close())
        worker.stop()
        for thread in threads:
            thread.join(timeout=10)
        broker.close()
