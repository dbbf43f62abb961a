"""Entry module of the worker fleet: `dramatiq workers.broker workers.actors`.

The dramatiq CLI imports this module first, so it installs the broker before any actor is
declared; that import-time build is the one the worker process needs.
"""

import dramatiq

from core.bootstrap import create_broker
from core.settings import load_settings

broker = create_broker(load_settings())
dramatiq.set_broker(broker)
