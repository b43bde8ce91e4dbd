"""Hooks of the fuzz test in openapi.rs: a tus PATCH body
(application/offset+octet-stream) is raw bytes, which schemathesis sends as
it sends application/octet-stream."""

import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
