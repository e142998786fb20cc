"""Consent and timing: who may be texted (the opt-out list, reply keywords)."""
