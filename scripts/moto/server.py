"""moto server as the tests and the demo run it: over TLS, with S3 bucket
policies that deny on `aws:SecureTransport` as AWS does.

Every bucket the operator makes carries a policy denying any request made
without TLS. moto 5.2.5 ignores the `Bool` condition operator and never sets
`aws:SecureTransport`, so that policy would deny every object request, and it
treats a Deny whose condition does not hold as a denial too. The three
patches below make moto evaluate exactly this policy as AWS does; everything
else is moto unchanged. Run as `python server.py [moto_server arguments]`.
"""

from flask import has_request_context, request
from moto.iam import policy_conditions
from moto.iam.access_control import IAMPolicy, IAMPolicyStatement, PermissionResult
from moto.s3.models import FakeBucket
from moto.server import main


def bool_operation(expected, actual):
    expected_values = expected if isinstance(expected, list) else [expected]
    return str(actual).lower() in [str(value).lower() for value in expected_values]


policy_conditions.CONDITION_OPERATIONS.setdefault("Bool", bool_operation)

_statement_is_action_permitted = IAMPolicyStatement.is_action_permitted


def statement_is_action_permitted(
    self, action, resource="*", principal=None, incoming_condition_values=None
):
    # On AWS a Deny applies only when its condition holds.
    if self._statement.get("Effect") == "Deny" and not self._check_conditions(
        incoming_condition_values
    ):
        return PermissionResult.NEUTRAL
    return _statement_is_action_permitted(
        self, action, resource, principal, incoming_condition_values
    )


IAMPolicyStatement.is_action_permitted = statement_is_action_permitted


def bucket_get_permission(self, action, resource):
    if self.policy is None:
        return PermissionResult.NEUTRAL
    secure = has_request_context() and request.is_secure
    return IAMPolicy(self.policy.decode()).is_action_permitted(
        action,
        resource,
        incoming_condition_values={"aws:SecureTransport": "true" if secure else "false"},
    )


FakeBucket.get_permission = bucket_get_permission

if __name__ == "__main__":
    main()
