"""boto3 adapters for the ports. Clients are created on first use (and cached), never at import time, so tests
and the local stack can point them elsewhere (`AWS_ENDPOINT_URL`, moto) before anything connects."""
