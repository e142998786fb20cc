"""The HTTP endpoints the providers call, without an API key (functions/receipts): delivery receipts (`receipts`)
and replies people sent (`replies`), put together by `resolver`.

Nothing is trusted without proof: the push's token (per provider) first, its signature where the provider signs,
and only then is the body read, in the provider's own format (globesms.providers.<provider>.receipts / .replies).
"""
