"""EC2's request throttling, as AWS applies it, on demand.

AWS throttles EC2 API requests per account and Region with a token bucket for
each API action ("Request throttling for the Amazon EC2 API", the table
"Request token bucket sizes and refill rates"): a request takes a token from
its action's bucket, or is refused with HTTP 503 and RequestLimitExceeded.
Non-mutating actions (Describe*, List*, Search*, Get*) have buckets of 100
refilled at 20 a second; a few of them asked without a filter or pagination
draw from a smaller bucket (50, 10 a second); mutating actions have 50 at 5 a
second; and some actions have buckets of their own, down to 4 at 0.3 a second
for CreateVpcEndpoint. moto 5.2.5 answers every request at any rate, so a
client that would be throttled on AWS passes here.

`POST /moto-api/ec2-request-limits` turns the buckets on, full, until the next
`/moto-api/reset`; `GET` answers whether they are on and how many requests
each action had refused. Off by default: tests and tools that call EC2 with
plain SDK clients are not held to them, the operator's scale test is.
"""

import json
import threading
import time
import uuid

from moto.ec2.responses import EC2Response
from moto.moto_api._internal import urls as moto_api_urls
from moto.moto_api._internal.models import moto_api_backend

NON_MUTATING_PREFIXES = ("Describe", "List", "Search", "Get")
NON_MUTATING = (100, 20.0)
UNFILTERED_NON_MUTATING = (50, 10.0)
MUTATING = (50, 5.0)
# Asked without a filter or pagination, these draw from the smaller bucket.
UNFILTERED_ACTIONS = {
    "DescribeInstances",
    "DescribeInstanceStatus",
    "DescribeNetworkInterfaces",
    "DescribeSecurityGroups",
    "DescribeSnapshots",
    "DescribeSpotInstanceRequests",
    "DescribeVolumes",
}
# Resource-intensive actions have buckets of their own, sized as mutating ones.
# Uncategorized actions that a pipeline's resources can meet, with AWS's sizes.
OWN_BUCKETS = {
    "AssignPrivateIpAddresses": (100, 5.0),
    "AssociateIamInstanceProfile": (100, 5.0),
    "CopyImage": (100, 1.0),
    "CreateLaunchTemplateVersion": (100, 5.0),
    "CreateNatGateway": (10, 1.0),
    "CreateNetworkInterface": (100, 5.0),
    "CreateSnapshot": (100, 5.0),
    "CreateTags": (100, 10.0),
    "CreateVolume": (100, 5.0),
    "CreateVpcEndpoint": (4, 0.3),
    "DeleteNatGateway": (10, 1.0),
    "DeleteNetworkInterface": (100, 5.0),
    "DeleteSnapshot": (100, 5.0),
    "DeleteTags": (100, 10.0),
    "DeleteVolume": (100, 5.0),
    "DeleteVpcEndpoints": (4, 0.3),
    "DeregisterImage": (100, 5.0),
    "DescribeSecurityGroupReferences": (20, 5.0),
    "DescribeStaleSecurityGroups": (20, 5.0),
    "DisassociateIamInstanceProfile": (100, 5.0),
    "ModifyImageAttribute": (100, 5.0),
    "ModifyInstanceMetadataOptions": (100, 5.0),
    "ModifyLaunchTemplate": (100, 5.0),
    "ModifyNetworkInterfaceAttribute": (100, 5.0),
}


def bucket_of(action, params):
    """The bucket an EC2 request draws from: its name and (size, refill/s)."""
    if action in OWN_BUCKETS:
        return action, OWN_BUCKETS[action]
    if not action.startswith(NON_MUTATING_PREFIXES):
        return action, MUTATING
    narrowed = any(
        key.startswith("Filter.") or key in ("MaxResults", "NextToken") for key in params
    )
    if action in UNFILTERED_ACTIONS and not narrowed:
        return action + " (unfiltered)", UNFILTERED_NON_MUTATING
    return action, NON_MUTATING


class Limits:
    def __init__(self):
        self.lock = threading.Lock()
        self.on = False
        self.buckets = {}
        self.refused = {}

    def reset(self, on):
        with self.lock:
            self.on = on
            self.buckets = {}
            self.refused = {}

    def take(self, action, params):
        """Whether the request may go on; counts it as refused if not."""
        with self.lock:
            if not self.on:
                return True
            name, (size, rate) = bucket_of(action, params)
            now = time.monotonic()
            tokens, then = self.buckets.get(name, (float(size), now))
            tokens = min(float(size), tokens + (now - then) * rate)
            if tokens >= 1.0:
                self.buckets[name] = (tokens - 1.0, now)
                return True
            self.buckets[name] = (tokens, now)
            self.refused[action] = self.refused.get(action, 0) + 1
            return False

    def report(self):
        with self.lock:
            return {"enabled": self.on, "refused": dict(self.refused)}


LIMITS = Limits()

REFUSAL = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<Response><Errors><Error><Code>RequestLimitExceeded</Code>"
    "<Message>Request limit exceeded.</Message></Error></Errors>"
    "<RequestID>{}</RequestID></Response>"
)


def limited(call_action):
    def respond(self):
        if not LIMITS.take(self._get_action(), self.querystring):
            return 503, {}, REFUSAL.format(uuid.uuid4())
        return call_action(self)

    return respond


EC2Response.call_action = limited(EC2Response.call_action)


def request_limits(request, full_url, headers):
    if request.method == "POST":
        LIMITS.reset(on=True)
    return 200, {"Content-Type": "application/json"}, json.dumps(LIMITS.report())


moto_api_urls.url_paths["{0}/moto-api/ec2-request-limits"] = request_limits


def reset_with_limits(reset):
    def everything():
        LIMITS.reset(on=False)
        return reset()

    return everything


moto_api_backend.reset = reset_with_limits(moto_api_backend.reset)
