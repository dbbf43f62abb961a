"""Entry module of the worker fleet: `dramatiq workers.broker workers.actors`.

The dramatiq CLI imports this module first, so it installs the broker before any actor is
declared; that import-time build is the one the worker process needs. Engines and models are
made later, per process, on first use (`workers.resources`).
"""

import dramatiq

from core.bootstrap import create_broker
from core.logs import configure_logging
from core.redaction import install_log_redaction
from core.settings import load_settings
from workers.log_context import JobLogContext
from workers.reaper import JobReaper

install_log_redaction()
settings = load_settings()
configure_logging(settings.log_level, settings.log_format)
broker = create_broker(settings)
broker.add_middleware(JobReaper(settings))
broker.add_middleware(JobLogContext())
dramatiq.set_broker(broker)
