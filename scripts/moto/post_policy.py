"""S3 POST object uploads (browser-based uploads, presigned POSTs) held to
their policy as AWS holds them.

moto 5.2.5 stores whatever a POST carrying a `policy` field names, at any
size, under an expired, forged or unsigned policy. Upload limits handed to
clients rest on S3 refusing those, so a POST with a `policy` field to a
bucket that exists is checked here, in this order, before moto stores it:

- exactly one `file` part, else 400 IncorrectNumberOfFilesInPostRequest;
- the signature: Signature Version 4 (`x-amz-algorithm` AWS4-HMAC-SHA256,
  `x-amz-credential` AKID/yyyymmdd/region/s3/aws4_request, `x-amz-signature`
  the hex HMAC-SHA256 of the base64 policy under the key derived from the
  secret, that date, that region and "s3"), or Version 2 (`AWSAccessKeyId`,
  `signature` the base64 HMAC-SHA1 of the policy), else 403
  SignatureDoesNotMatch (400 InvalidArgument when the fields are missing or
  malformed);
- a well-formed policy, base64 JSON {"expiration": "…Z", "conditions": […]},
  else 400 InvalidPolicyDocument; expired, 403 AccessDenied "Invalid according
  to Policy: Policy expired.";
- every condition: {"field": "value"} and ["eq", "$field", "value"] exact,
  ["starts-with", "$field", "prefix"], the `bucket` condition against the
  bucket posted to, a field the form lacks being empty, else 403 AccessDenied
  "… Policy Condition failed: [the condition]";
- every form field but policy, x-amz-signature, file, AWSAccessKeyId,
  signature and x-ignore-* named by a condition, else 403 AccessDenied
  "… Extra input fields: <name>";
- ["content-length-range", min, max] on the file's size, inclusive, else 400
  EntityTooLarge (ProposedSize, MaxSizeAllowed) or EntityTooSmall
  (ProposedSize, MinSizeAllowed).

Field names compare case-insensitively, values exactly, as on AWS. The key
condition applies to the key as posted, before ${filename} is replaced.

moto keeps no secrets and accepts any access key, so a signature is verified
with the one secret every client of this emulator is given, "testing" (the
test harness's e2e/src/aws.rs and e2e/kind/run.sh give all of them access
key "testing" and secret "testing"): a policy signed with any other secret is
refused as AWS refuses one signed with a wrong key. The access key id and
the credential's region are not checked.

A POST without a `policy` field is moto's own, unchanged.
"""

import base64
import binascii
import hashlib
import hmac
import json
from datetime import datetime, timezone

from moto.core.utils import get_service_model
from moto.s3.exceptions import S3ClientError
from moto.s3.responses import S3Response

SECRET = "testing"

# Fields the policy need not name (x-ignore-* too).
UNSIGNED_FIELDS = {"policy", "x-amz-signature", "file", "awsaccesskeyid", "signature"}

# moto's S3 model lacks these errors; declared, they are answered with AWS's
# status and members like moto's other S3 errors.
_shapes = get_service_model("s3")._service_description["shapes"]
for _code, _bound in (("EntityTooLarge", "MaxSizeAllowed"), ("EntityTooSmall", "MinSizeAllowed")):
    _shapes[_code] = {
        "type": "structure",
        "members": {"ProposedSize": {"shape": "ContentLength"}, _bound: {"shape": "ContentLength"}},
        "error": {"httpStatusCode": 400},
        "exception": True,
    }
_shapes["InvalidPolicyDocument"] = {
    "type": "structure", "members": {}, "error": {"httpStatusCode": 400}, "exception": True,
}


def denied(detail):
    return S3ClientError("AccessDenied", f"Invalid according to Policy: {detail}")


def invalid_policy(detail):
    return S3ClientError("InvalidPolicyDocument", f"Invalid Policy: {detail}")


def invalid_argument(message, name, value=""):
    error = S3ClientError("InvalidArgument", message)
    error.argument_name, error.argument_value = name, value
    return error


def size_error(code, message, size, bound_name, bound):
    error = S3ClientError(code, message)
    error.ProposedSize = size
    setattr(error, bound_name, bound)
    return error


def hmac_sha256(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def check_signature(fields, policy):
    algorithm = fields.get("x-amz-algorithm")
    if algorithm is None and "awsaccesskeyid" in fields:
        expected = base64.b64encode(
            hmac.new(SECRET.encode(), policy.encode(), hashlib.sha1).digest()
        ).decode()
        given = fields.get("signature", "")
    elif algorithm == "AWS4-HMAC-SHA256":
        credential = fields.get("x-amz-credential", "")
        parts = credential.split("/")
        if len(parts) != 5 or parts[3] != "s3" or parts[4] != "aws4_request":
            raise invalid_argument(
                f"Invalid credential: {credential}", "x-amz-credential", credential
            )
        _, date, region, service, request_type = parts
        key = f"AWS4{SECRET}".encode()
        for scope in (date, region, service, request_type):
            key = hmac_sha256(key, scope)
        expected = hmac.new(key, policy.encode(), hashlib.sha256).hexdigest()
        given = fields.get("x-amz-signature", "")
    elif algorithm is None:
        raise invalid_argument(
            "Bucket POST must contain a field named 'AWSAccessKeyId'.  "
            "If it is specified, please check the order of the fields.",
            "AWSAccessKeyId",
        )
    else:
        raise invalid_argument(
            f"Unsupported algorithm: {algorithm}", "x-amz-algorithm", algorithm
        )
    if not hmac.compare_digest(expected, given):
        raise S3ClientError(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you "
            "provided. Check your key and signing method.",
        )


def decode(policy):
    try:
        document = json.loads(base64.b64decode(policy, validate=True))
    except (binascii.Error, ValueError):
        raise invalid_policy("Invalid JSON.")
    if not isinstance(document, dict):
        raise invalid_policy("Invalid JSON.")
    if "expiration" not in document:
        raise invalid_policy("Policy missing expiration.")
    if not isinstance(document.get("conditions"), list):
        raise invalid_policy("Policy missing conditions.")
    expiration = document["expiration"]
    try:
        # AWS takes UTC only: 2007-12-01T12:00:00.000Z.
        if not (isinstance(expiration, str) and expiration.endswith("Z")):
            raise ValueError
        expires = datetime.fromisoformat(expiration)
    except ValueError:
        raise invalid_policy(f"Invalid 'expiration' value: '{expiration}'")
    return expires, document["conditions"]


def as_tests(condition):
    """A condition as (operator, field, operand) triples; `field` without '$'."""
    if isinstance(condition, dict) and condition:
        return [("eq", name, value) for name, value in condition.items()]
    if isinstance(condition, list) and len(condition) == 3 and isinstance(condition[0], str):
        operator, first, second = condition[0].lower(), condition[1], condition[2]
        if operator == "content-length-range":
            return [(operator, first, second)]
        if operator in ("eq", "starts-with") and isinstance(first, str) and first.startswith("$"):
            return [(operator, first[1:], second)]
    raise invalid_policy(f"Invalid Condition: {json.dumps(condition)}")


def check_policy(fields, names, bucket_name, size, policy):
    expires, conditions = decode(policy)
    if datetime.now(timezone.utc) >= expires:
        raise denied("Policy expired.")
    named, length_range = set(), None
    for condition in conditions:
        for operator, field, operand in as_tests(condition):
            if operator == "content-length-range":
                try:
                    length_range = (int(field), int(operand))
                except (TypeError, ValueError):
                    raise invalid_policy(f"Invalid Condition: {json.dumps(condition)}")
                continue
            field = field.lower()
            named.add(field)
            value = bucket_name if field == "bucket" else fields.get(field, "")
            holds = value == operand if operator == "eq" else value.startswith(str(operand))
            if not holds:
                raise denied(f"Policy Condition failed: {json.dumps([operator, '$' + field, operand])}")
    for name in names:
        lower = name.lower()
        if lower not in UNSIGNED_FIELDS and not lower.startswith("x-ignore-") and lower not in named:
            raise denied(f"Extra input fields: {name}")
    if length_range is not None:
        low, high = length_range
        if size > high:
            raise size_error(
                "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size",
                size, "MaxSizeAllowed", high,
            )
        if size < low:
            raise size_error(
                "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size",
                size, "MinSizeAllowed", low,
            )


_bucket_response_post = S3Response._bucket_response_post


def bucket_response_post(self, request, bucket_name):
    # The form's fields (a file part without a file name among them), first
    # value of each, by lower-case name.
    names = list(self.form_data.keys()) + list(request.files.keys())
    fields = {}
    for name, value in self.form_data.items(multi=True):
        fields.setdefault(name.lower(), value)
    if "policy" not in fields:
        return _bucket_response_post(self, request, bucket_name)
    self.backend.get_bucket(bucket_name)  # NoSuchBucket comes first
    files = [name for name, _ in self.form_data.items(multi=True)]
    files += [name for name, _ in request.files.items(multi=True)]
    if sum(name.lower() == "file" for name in files) != 1:
        raise S3ClientError(
            "IncorrectNumberOfFilesInPostRequest",
            "POST requires exactly one file upload per request.",
        )
    body = self.body.encode() if isinstance(self.body, str) else self.body
    check_signature(fields, fields["policy"])
    check_policy(fields, names, bucket_name, len(body), fields["policy"])
    return _bucket_response_post(self, request, bucket_name)


S3Response._bucket_response_post = bucket_response_post
