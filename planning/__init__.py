"""Pure planning cores: load study, NEC capacity, charger-schedule optimisation and the SSM estimator."""
