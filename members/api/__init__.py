"""The REST API of the members app, and the framework every app's API shares: the error
shape (``errors``), ``Idempotency-Key`` (``idempotency``), throttling, pagination and the
OpenAPI schema class (``schema``)."""
