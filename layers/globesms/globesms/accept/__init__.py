"""A request becomes records and packs: validation at the door, idempotency, packing, and reading them back."""
