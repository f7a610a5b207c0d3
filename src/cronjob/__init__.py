"""cronjob: time-based work, on time, once.

The ``cronjob`` package is the core: the pure domain (:mod:`cronjob.domain`), the ports the
adapters implement (:mod:`cronjob.ports`) and the application services
(:mod:`cronjob.services`). It imports nothing outside the standard library.
"""

__version__ = "0.1.0"
