"""The base of every pydantic model in the package: pydantic's BaseModel, with its validators built on first use.

Why: pydantic builds each model's validator and serializer when the class is defined, by default. The package
defines about sixty models and a function uses a handful of them per invocation, so building them all at import
cost every cold start about 60 ms of CPU (`make bench`'s cold start figure; the models of `globesms.models` alone:
111 ms eager, 52 ms deferred, on this project's 2-core machine). `defer_build` builds a model's when it is first
validated, serialized or asked for its schema, with the same result. A subclass's own `model_config` adds to this.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    model_config = ConfigDict(defer_build=True)
