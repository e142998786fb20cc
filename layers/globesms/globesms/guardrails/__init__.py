"""Guardrails: prices and quotes, country permissions, spend limits (docs/guardrails.md)."""
