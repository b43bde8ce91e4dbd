"""S3 object checksums given by the client held to the bytes received, as AWS
holds them.

A PutObject or UploadPart carrying `x-amz-checksum-sha256`, `-sha1` or
`-crc32` is stored by S3 only if the bytes it received have that checksum;
otherwise it answers 400 BadDigest "The SHA256 you specified did not match
the calculated checksum." and stores nothing. A value that is not the base64
of a digest of the algorithm's size is answered 400 InvalidRequest "Value for
x-amz-checksum-sha256 header is invalid.". S3 keeps the checksum with the
object (GetObject with ChecksumMode ENABLED returns it) whether or not the
client also named the algorithm in `x-amz-sdk-checksum-algorithm`.

moto 5.2.5 stores the object whatever checksum header it carries, and keeps
the checksum only when `x-amz-sdk-checksum-algorithm` names it; the services
rest on S3 refusing an object that is not the one they checked (ingest-core's
Store sends the SHA-256 of what it validated), so both are fixed here.

Only the three algorithms moto computes exactly are checked: without its
optional libraries moto computes CRC32C and CRC64NVME as plain CRC32. A
checksum sent as an aws-chunked trailer (the SDKs' default for a streamed
body) is not checked.
"""

import base64
import binascii

from moto.core.utils import get_service_model
from moto.s3.exceptions import S3ClientError
from moto.s3.responses import S3Response
from moto.s3.utils import compute_checksum

# Algorithm → the size of its digest in bytes.
CHECKED = {"SHA256": 32, "SHA1": 20, "CRC32": 4}

get_service_model("s3")._service_description["shapes"].setdefault(
    "BadDigest",
    {"type": "structure", "members": {}, "error": {"httpStatusCode": 400}, "exception": True},
)


def given_checksum(headers):
    """The (algorithm, value) of the one x-amz-checksum-* header the request
    carries, if it carries one."""
    for name, value in headers.items():
        name = name.lower()
        if name.startswith("x-amz-checksum-") and name not in (
            "x-amz-checksum-type",
            "x-amz-checksum-algorithm",
            "x-amz-checksum-mode",
        ):
            return name[len("x-amz-checksum-"):].upper(), value
    return None, None


def check_given_checksum(response):
    algorithm, value = given_checksum(response.headers)
    if algorithm not in CHECKED:
        return
    header = f"x-amz-checksum-{algorithm.lower()}"
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != CHECKED[algorithm]:
        raise S3ClientError("InvalidRequest", f"Value for {header} header is invalid.")
    body = response.body or b""
    if isinstance(body, str):
        body = body.encode()
    if compute_checksum(body, algorithm=algorithm) != value.encode():
        raise S3ClientError(
            "BadDigest", f"The {algorithm} you specified did not match the calculated checksum."
        )


_key_response_put = S3Response._key_response_put


def key_response_put(self, query, key_name):
    copying = "x-amz-copy-source" in self.headers
    object_or_part = not any(
        sub in query for sub in ("retention", "legal-hold", "acl", "tagging")
    )
    if object_or_part and not copying:
        check_given_checksum(self)
    return _key_response_put(self, query, key_name)


S3Response._key_response_put = key_response_put

_get_checksum = S3Response._get_checksum


def get_checksum(self, response_headers):
    algorithm, value = _get_checksum(self, response_headers)
    if not algorithm:
        given, value = given_checksum(self.headers)
        if given:
            algorithm = given
            response_headers[f"x-amz-checksum-{given.lower()}"] = value
    return algorithm, value


S3Response._get_checksum = get_checksum
