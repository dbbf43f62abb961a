"""Each worker process's Services: made by `workers.broker:setup` in the process itself (never
at import, never shared across the fork), their parts built on first use once the process has
booted, and let go when it stops. Actors and the reaper reach them through the broker:
`services_of(broker)`.
"""

from __future__ import annotations

import logging

import dramatiq
from dramatiq import Broker
from sqlalchemy.exc import OperationalError

from bootstrap import Services
from db.roles import check_app_login
from usecases.documents import ocr_off

log = logging.getLogger("docuchat.workers")


class ServicesMiddleware(dramatiq.Middleware):
    def __init__(self, services: Services) -> None:
        self.services = services

    def after_process_boot(self, broker: Broker) -> None:
        try:
            with self.services.engine.connect() as conn:
                check_app_login(conn)  # refuse to work as a role row-level security cannot bind
        except OperationalError as exc:  # the database may be restarting: jobs will retry
            log.warning("could not check the database login at start: %s", exc)
        if off := ocr_off(self.services.settings):
            log.warning(off)

    def before_process_stop(self, broker: Broker) -> None:
        self.services.close()


def services_of(broker: Broker | None = None) -> Services:
    """The Services of this worker process (of `broker`, by default the global one)."""
    broker = broker or dramatiq.get_broker()
    for middleware in broker.middleware:
        if isinstance(middleware, ServicesMiddleware):
            return middleware.services
    raise RuntimeError("the broker has no Services: workers start with `workers.broker:setup`")
