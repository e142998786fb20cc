"""Fixtures shared by every test folder."""

import gc
import os
from collections.abc import Iterator
from typing import Any

import botocore.handlers
import pytest
from botocore.validate import validate_parameters
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from local import moto_speedups

# No test may reach real AWS: fake credentials and a fixed region before anything creates a client.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    POWERTOOLS_TRACE_DISABLED="true",
    POWERTOOLS_METRICS_NAMESPACE="globesms",
    POWERTOOLS_DEV="false",
)
for _name in [name for name in os.environ if name.startswith("AWS_ENDPOINT_URL")]:  # and AWS_ENDPOINT_URL_<SERVICE>
    os.environ.pop(_name)
os.environ.pop("AWS_PROFILE", None)

# The in-process moto of the integration, reliability and fuzz tests gets the patches the local stack's moto server
# has (local/moto_speedups.py: the same answers, without sorting a whole table per query or copying it per
# transaction item). tests/integration/test_moto_speedups.py checks them against unpatched moto in child processes.
moto_speedups.apply()


def validate_request(params: dict[str, Any], model: Any, **_: Any) -> None:
    """botocore's parameter validation, which the deployed clients leave out (globesms/aws/clients.py): here every
    request of every client is checked against its operation's input shape, so an adapter that builds a malformed
    request fails a test rather than a deployment (where the service would refuse it)."""
    if model.input_shape is not None:
        validate_parameters(params, model.input_shape)


# Before anything creates a boto3 session: each session copies the built-in handlers when it is made.
botocore.handlers.BUILTIN_HANDLERS.append(("before-parameter-build", validate_request))

# `make test` runs the tests on every core beside each other, so one example's wall time says nothing about the code:
# no per-example deadline and no "too slow" data generation check (speed is measured by `make bench`, never
# asserted); each test keeps its own example count.
hypothesis_settings.register_profile("globesms", deadline=None, suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.load_profile("globesms")


@pytest.fixture(scope="module", autouse=True)
def _long_lived_objects_out_of_the_collectors_sight() -> Iterator[None]:
    """After each module, what survives a full collection is frozen (`gc.freeze()`): a pytest worker keeps hundreds
    of MB of objects for good (botocore's service models per session, moto's and Powertools' tables, imported
    modules), and every later full collection walked all of them again, ~0.7 s each, many times per module. The
    integration tests in one process spent 22 s collecting; with this 12 s, and ran 9% faster. Frozen objects are
    still freed by reference counting; only a cycle that becomes garbage later is kept."""
    yield
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _fresh_settings() -> None:
    """Settings are read once per process (as in Lambda); each test reads them again from its own environment."""
    from globesms.config import settings

    settings.cache_clear()


@pytest.fixture
def lambda_context() -> object:
    class Context:
        function_name = "globesms-test"
        memory_limit_in_mb = 256
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:globesms-test"
        aws_request_id = "test-request"

        @staticmethod
        def get_remaining_time_in_millis() -> int:
            return 30_000

    return Context()
