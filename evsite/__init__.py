"""evsite: an EV charging site controller.

Packages: ``controller`` (OCPP 1.6J central system, load management, aggregator runtime), ``simulators``
(charge points, EV fleets, meters, signals), ``planning`` (load study, NEC capacity, optimisation, SSM
estimator) and this one, ``evsite``, which holds what they share: the clock, the config schema, logging and
the command line.
"""

__version__ = "0.1.0"
