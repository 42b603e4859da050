"""Pure planning cores: load study, NEC capacity, charger sizing, cost schedule and the SSM estimator.

Site planning (``evsite plan``), in pipeline order:

- ``meter``: read meter files (Onboard/RTEM ``time,raw``, ``timestamp,kW``, kWh/Wh/W, CityLearn; separators,
  decimal commas, encodings, date formats, split date/time columns) into kW on the site's local clock;
- ``cleaning``: counted repairs (missing, duplicates, DST, outages, dropout-then-catch-up pairs, isolated
  spikes), every removed or suspect reading listed with its time and value;
- ``loadstudy``: daily profiles, k-means with k by silhouette, baseload;
- ``capacity``: NEC 220.87 (125%), 220.57 (edition-dependent EVSE load), 625.42 (continuous factor) and the
  check that the measured demand fits the service at all;
- ``tariff``, ``ev_demand`` and ``sessions``: TOU prices, expected EV energy / plug-in hours, the pool of real
  sessions the sizing draws from;
- ``sizing``: chargers with load management by a year's replay under ``planning.allocation.allocate``;
- ``optimise`` (cost schedule in GEKKO, cross-checked by HiGHS on every plan; the energy-bound count) and
  ``seed_method`` (the seed study's model, fixed, never written above the service);
- ``pipeline``: one building end to end, many in parallel; ``report``: JSON, CSV, PNG, OCPP profile.

The hourly EV ceiling load management reads is ONE key per building of ``plan.json``::

    "ev_ceiling_kw": {"tz": "<IANA zone>", "by_day_type": {"weekday": [24 floats], "weekend": [24 floats]}}

kW of EV power for the whole site per local wall-clock hour, holding against every measured hour of the year
(or the stated ``static_percentile``); see ``planning.pipeline``.

Every operator-facing problem is a ``planning.errors.PlanningError``.
"""
