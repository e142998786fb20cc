"""Delivery statistics per country x provider x type: counted from receipts (tally), stored in 5-minute buckets
behind a port (ports), summed over a window for the API and the scored router (summary)."""
