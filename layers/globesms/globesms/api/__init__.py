"""The HTTP API (API Gateway REST API, Powertools' event handler): what functions/send_api serves.

One router per part of the API, each route parse -> call the stage that decides -> answer, and nothing decided
here: `send` (POST /v1/messages: accept or quote), `reads` (a message, a batch, finding messages), `cancel`,
`usage` (spend and route statistics), `templates`, `consent` (opt-outs and replies), `docs` (the OpenAPI document
and its page), `refusals` (how a refused request is answered, shared by all), and `resolver`, which puts them
together in the order the OpenAPI document lists them.

The route modules have no `from __future__ import annotations`: the resolver reads their signatures at run time.
Each route declares its answers afresh (`success_answer`, `refusal_answers`), even where two routes give the same:
Powertools fills a route's answer dicts in place when it builds the OpenAPI document (the model's schema, the
return type's where no content is given), so a dict shared by two routes would carry the first one's.
Every traced route has capture_response=False: answers hold full numbers and texts, which the Tracer would
otherwise record as trace metadata (tests/unit/test_send_api_traces.py).
"""
