"""The live site: OCPP 1.6J central system, persistence, load management and the aggregator runtime."""
