"""Versions over time: identity, generations, staleness, migration and the promotion gate."""
