"""Span model, OTLP decoding and GenAI normalization (pure apart from protobuf)."""
