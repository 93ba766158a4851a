"""Metric definitions, aggregation and (later) recommendation analyzers (pure)."""
