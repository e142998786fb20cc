"""Operator tools for a deployed (or the local) globesms stack."""
