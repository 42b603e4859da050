"""Pure planning cores: load study, NEC capacity, charger-schedule optimisation and the SSM estimator.

Site planning (``evsite plan``), in pipeline order:

- ``meter``: read meter files (Onboard/RTEM ``time,raw``, ``timestamp,kW``, kWh intervals, CityLearn) into kW
  on the site's local clock;
- ``cleaning``: counted repairs (missing, duplicates, DST, outage zero runs, robust outliers);
- ``loadstudy``: daily profiles, k-means with k by silhouette, baseload;
- ``capacity``: NEC 220.87 / 625.42 numbers and the hourly ALM headroom;
- ``tariff`` and ``ev_demand``: TOU prices and expected EV energy / plug-in hours;
- ``optimise`` (evsite model, GEKKO + a HiGHS reference) and ``seed_method`` (the seed study's model, fixed);
- ``pipeline``: one building end to end, many in parallel; ``report``: JSON, CSV, PNG, OCPP profile.

Every operator-facing problem is a ``planning.errors.PlanningError``.
"""
