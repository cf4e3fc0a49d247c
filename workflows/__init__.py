"""Workflows: the durable sagas. Deterministic code only; all I/O happens in activities."""
