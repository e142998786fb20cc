"""globesms: the shared package of the SMS gateway (lives in the Lambda layer under /opt/python)."""
