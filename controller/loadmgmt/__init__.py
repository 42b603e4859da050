"""Automatic load management (NEC 625.42): the live loop around ``planning.allocation`` (see ``manager``)."""
