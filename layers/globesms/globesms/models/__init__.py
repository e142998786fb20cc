"""Every external shape, as pydantic models (API bodies, queue bodies) or plain records."""
