"""The HTTP API (API Gateway REST API, Powertools' event handler): what functions/send_api serves.

One router per part of the API, each route parse -> call the stage that decides -> answer, and nothing decided
here: `send` (POST /v1/messages: accept or quote), `reads` (a message, a batch, finding messages), `cancel`,
`usage` (spend and route statistics), `templates`, `consent` (opt-outs and replies), `docs` (the OpenAPI document
and its page), `refusals` (how a refused request is answered, shared by all), and `resolver`, which puts them
together in the order the OpenAPI document lists them.

The route modules have no `from __future__ import annotations`: the resolver reads their signatures at run time.
Every traced route has capture_response=False: answers hold full numbers and texts, which the Tracer would
otherwise record as trace metadata (tests/unit/test_send_api_traces.py).
"""
