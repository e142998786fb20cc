"""A pack is claimed, sent within the providers' limits, and its outcomes decided: retry, fail over, or wait."""
