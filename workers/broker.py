"""Entry module of the worker fleet: `dramatiq workers.broker workers.actors`.

The dramatiq CLI imports this module first, so it installs the broker before any actor is
declared; that import-time build is the one the worker process needs. Engines and models are
made later, per process, on first use (`workers.resources`).
"""

import dramatiq

from core.bootstrap import create_broker
from core.redaction import install_log_redaction
from core.settings import load_settings
from workers.reaper import JobReaper

install_log_redaction()
settings = load_settings()
broker = create_broker(settings)
broker.add_middleware(JobReaper(settings))
dramatiq.set_broker(broker)
