"""moto server as the tests and the demo run it: over TLS, with S3 bucket
policies that deny on `aws:SecureTransport` as AWS does, Auto Scaling instance
refreshes, and RunInstances honouring ClientToken.

Every bucket the operator makes carries a policy denying any request made
without TLS. moto 5.2.5 ignores the `Bool` condition operator and never sets
`aws:SecureTransport`, so that policy would deny every object request, and it
treats a Deny whose condition does not hold as a denial too. The three
patches below make moto evaluate exactly this policy as AWS does.

The operator replaces an Auto Scaling group's instances with an instance
refresh when its launch template changes, and moto 5.2.5 has no
StartInstanceRefresh, DescribeInstanceRefreshes or CancelInstanceRefresh (an
unknown action is answered with HTTP 500). The patches after the bucket ones
add them: a refresh terminates the group's InService instances that are not
protected from scale in (with SkipMatching only those not launched from the
desired template version), launches replacements through moto's own group
logic and target group registration, applies a DesiredConfiguration to the
group, and is recorded at once as Successful, 100 percent, so a refresh is
never InProgress and InstanceRefreshInProgress is never answered in practice;
CancelInstanceRefresh therefore answers ActiveInstanceRefreshNotFound, as AWS
does when none runs. For the replacements to be told apart as on AWS, three
moto faults are fixed with them: the group launched instances from the
template's default version whatever version the group names (tags, block
devices and the aws:ec2launchtemplate:version tag came from the default);
the group's instances reported the template's default version instead of the
version they were launched from; and a launch template version made by
CreateLaunchTemplateVersion with UserData kept it as a plain string, so every
later launch from that version failed with HTTP 500.

RunInstances ignores ClientToken in moto 5.2.5 and starts new instances on
every retry. On AWS a repeated token returns the reservation it first made
(also once its instances are terminated), and the same token with other
parameters is refused with IdempotentParameterMismatch; a patch does the
same.

On AWS the primary network interface RunInstances makes for an instance is
deleted when the instance terminates, which frees its private address. moto
5.2.5 keeps it "in-use" forever, so a VPC that held an instance could never
be emptied and a fixed broker address never launched again; the last patch
marks the interfaces an instance made itself as deleted on termination.

AWS refuses to delete what something still stands on, and moto 5.2.5 deletes
it anyway, so a teardown in the wrong order passes here and never finishes on
AWS. The dependency patches refuse as AWS does: DeleteSubnet answers
DependencyViolation while a network interface is in the subnet or a Redshift
cluster's subnet group holds it; DeleteSecurityGroup while a network interface
or a Redshift cluster uses the group; DeleteVpc while a security group other
than the default one, or a VPC endpoint that is not deleted, is left in it
(moto checks only subnets and route tables); DeleteClusterSubnetGroup answers InvalidClusterSubnetGroupStateFault
while a cluster is in the group. moto removes a Redshift cluster at
DeleteCluster, so every cluster it still lists is live. moto's DeleteCluster
already takes the final snapshot, with the cluster's tags, but drops
FinalClusterSnapshotRetentionPeriod; the snapshot now reports it as
ManualSnapshotRetentionPeriod (-1, kept until deleted, when not given).
Auto Scaling names a scaling policy within its group; moto 5.2.5 keyed
policies by name alone, so two pipelines' groups replaced each other's
policy. A patch keys them by group and name, and deletes a group's policies
with the group, as AWS does.

The Redshift Data API is made to run statements as AWS does (see
redshift_data.py, imported below).

An S3 POST object upload (a browser-based upload, as a presigned POST makes
it) is held to its policy as AWS holds it: moto 5.2.5 stores whatever such a
POST names, at any size, under an expired, forged or unsigned policy. The
signature (verified with the emulator's one secret, "testing"), the
expiration, every condition, the fields no condition names and the
content-length-range are checked, and a breach answered with AWS's error (see
post_policy.py, imported below). A POST without a policy is moto's own.

A PutObject or UploadPart whose x-amz-checksum-* header does not match the
bytes received is refused with BadDigest, and the checksum is kept with the
object, as on AWS (see checksums.py, imported below).

Glue tags a database by its ARN, and on AWS the tags go with the database:
one made again under the same name starts with only the tags it is made
with. moto 5.2.5 keeps the tags of a deleted database and gives them to the
next database of that name, owner tag included; a patch drops them at
DeleteDatabase.

moto 5.2.5 refuses a region's 51st Firehose stream: 50 was AWS's default
quota once, and the Firehose developer guide now gives 5,000 streams per
Region in us-east-1, us-east-2, us-west-2, eu-west-1 and ap-northeast-1,
2,000, 500 or 100 in the others. A patch applies those quotas (100 for a
region the guide does not name), answering LimitExceededException past them
as AWS does: one operator with 100 pipelines in eu-west-1 needs 100 streams.
ListDeliveryStreams without a Limit then answers 10 names a page, as AWS
does.

DescribeLaunchTemplates and DescribeLaunchTemplateVersions answer at most
MaxResults (15 when not given) and moto 5.2.5 drops the rest without a
NextToken, so a client that reads every page still saw 15 of a region's
templates: at 100 pipelines the operator read 88 templates one by one that
it should have found in the region's list. AWS answers the rest on the next
pages; a patch gives the NextToken and the pages after it.

EC2's request throttling, a token bucket per action as AWS has, is applied
once asked (see ec2_limits.py, imported below).

Everything else is moto unchanged. Run as
`python server.py [moto_server arguments]`.
"""

from flask import has_request_context, request
from moto import backends as moto_backends
from moto.autoscaling.exceptions import AutoscalingClientError, ValidationError
from moto.autoscaling.models import (
    ASG_NAME_TAG,
    AutoScalingBackend,
    FakeAutoScalingGroup,
    InstanceState,
)
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import ActionResult, EmptyResult
from moto.core.utils import utcnow
from moto.ec2.exceptions import DependencyViolationError, EC2ClientError
from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.models.instances import Instance
from moto.ec2.models.launch_templates import LaunchTemplate
from moto.ec2.models.security_groups import SecurityGroupBackend
from moto.ec2.models.subnets import SubnetBackend
from moto.ec2.models.vpcs import VPCBackend
from moto.ec2.responses.instances import InstanceResponse
from moto.ec2.responses.launch_templates import LaunchTemplates as LaunchTemplateResponse
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix, parse_user_data
from moto.firehose.exceptions import LimitExceededException
from moto.firehose.models import DeliveryStream, FirehoseBackend
from moto.glue.models import GlueBackend
from moto.iam import policy_conditions
from moto.iam.access_control import IAMPolicy, IAMPolicyStatement, PermissionResult
from moto.moto_api._internal import mock_random as random
from moto.redshift.exceptions import RedshiftClientError
from moto.redshift.models import RedshiftBackend, redshift_backends
from moto.redshift.responses import RedshiftResponse
from moto.s3.models import FakeBucket
from moto.server import main
from moto.utilities.utils import get_partition
from werkzeug.serving import WSGIRequestHandler

import checksums  # noqa: F401  (patches moto's S3 object checksums on import)
import ec2_limits  # noqa: F401  (EC2's request throttling, once asked)
import post_policy  # noqa: F401  (patches moto's S3 POST object uploads on import)
import redshift_data  # noqa: F401  (patches moto's Redshift Data API on import)


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

LAUNCH_TEMPLATE_ID_TAG = "aws:ec2launchtemplate:id"
LAUNCH_TEMPLATE_VERSION_TAG = "aws:ec2launchtemplate:version"
ACTIVE_REFRESH_STATES = ("Pending", "InProgress", "Cancelling", "RollbackInProgress")
REFRESH_PREFERENCE_DEFAULTS = {
    "MinHealthyPercentage": 90,
    "SkipMatching": False,
    "AutoRollback": False,
    "ScaleInProtectedInstances": "Ignore",
    "StandbyInstances": "Ignore",
}


def replace_autoscaling_group_instances(self, count_needed, propagated_tags):
    # moto's own, except that instances are launched from the version the
    # group names rather than from the template's default version.
    propagated_tags[ASG_NAME_TAG] = self.name
    propagated_tags.update(self.instance_tags)
    subnet_id = self.vpc_zone_identifier.split(",")[0] if self.vpc_zone_identifier else None
    associate_public_ip = (
        self.launch_config.associate_public_ip_address if self.launch_config else None
    )
    launch_template = None
    if self.ec2_launch_template:
        launch_template = {
            "LaunchTemplateId": self.ec2_launch_template.id,
            "Version": self.launch_template_version,
        }
    reservation = self.autoscaling_backend.ec2_backend.run_instances(
        self.image_id,
        count_needed,
        self.user_data,
        self.security_groups,
        instance_type=self.instance_type,
        tags={"instance": propagated_tags},
        placement=random.choice(self.availability_zones),
        launch_config=self.launch_config,
        launch_template=launch_template,
        is_instance_type_default=False,
        associate_public_ip=associate_public_ip,
        subnet_id=subnet_id,
    )
    for instance in reservation.instances:
        instance.autoscaling_group = self
        self.instance_states.append(
            InstanceState(
                instance, protected_from_scale_in=self.new_instances_protected_from_scale_in
            )
        )


FakeAutoScalingGroup.replace_autoscaling_group_instances = replace_autoscaling_group_instances


def launched_from(instance):
    """The launch template id and version an instance was launched from."""
    tags = instance.ec2_backend.tags.get(instance.id, {})
    return tags.get(LAUNCH_TEMPLATE_ID_TAG), tags.get(LAUNCH_TEMPLATE_VERSION_TAG)


_instance_state_launch_template = InstanceState.launch_template.fget


def instance_state_launch_template(self):
    spec = _instance_state_launch_template(self)
    template_id, version = launched_from(self.instance)
    if spec is None or template_id is None or version is None:
        return spec
    try:
        template = self.instance.ec2_backend.get_launch_template(template_id)
    except EC2ClientError:
        return spec
    return {"LaunchTemplateId": template.id, "LaunchTemplateName": template.name, "Version": version}


InstanceState.launch_template = property(instance_state_launch_template)

_launch_template_create_version = LaunchTemplate.create_version


def launch_template_create_version(self, data, description):
    if isinstance(data.get("UserData"), str):
        data = {**data, "UserData": parse_user_data(data["UserData"])}
    return _launch_template_create_version(self, data, description)


LaunchTemplate.create_version = launch_template_create_version


def start_instance_refresh(self, name, strategy, desired_configuration, preferences):
    group = self.autoscaling_groups.get(name)
    if group is None:
        raise ValidationError(f"AutoScalingGroup name not found - AutoScalingGroup {name} not found")
    refreshes = self.__dict__.setdefault("instance_refreshes", [])
    if any(r["AutoScalingGroupName"] == name and r["Status"] in ACTIVE_REFRESH_STATES for r in refreshes):
        raise AutoscalingClientError(
            "InstanceRefreshInProgress",
            "An Instance Refresh is already in progress and blocks the execution of this Instance Refresh.",
        )
    preferences = {**REFRESH_PREFERENCE_DEFAULTS, **(preferences or {})}
    start = utcnow()
    if desired_configuration:
        group._set_launch_configuration(
            None,
            desired_configuration.get("LaunchTemplate") or {},
            desired_configuration.get("MixedInstancesPolicy"),
        )
        if desired_configuration.get("MixedInstancesPolicy"):
            group.mixed_instances_policy = desired_configuration["MixedInstancesPolicy"]

    def matches(state):
        if group.ec2_launch_template is None:
            return False
        desired = group.ec2_launch_template.get_version(group.launch_template_version)
        return launched_from(state.instance) == (group.ec2_launch_template.id, str(desired.number))

    replaced = [
        state
        for state in group.instance_states
        if state.lifecycle_state == "InService"
        and not state.protected_from_scale_in
        and not (preferences["SkipMatching"] and matches(state))
    ]
    replaced_ids = [state.instance.id for state in replaced]
    if replaced_ids:
        group.instance_states = [s for s in group.instance_states if s not in replaced]
        self.ec2_backend.terminate_instances(replaced_ids)
        self.elbv2_backend.notify_terminate_instances(replaced_ids)
        group.replace_autoscaling_group_instances(len(replaced), group.get_propagated_tags())
        self.update_attached_elbs(name)
        self.update_attached_target_groups(name)
    refresh = {
        "InstanceRefreshId": str(random.uuid4()),
        "AutoScalingGroupName": name,
        "Strategy": strategy or "Rolling",
        "Status": "Successful",
        "StatusReason": "",
        "StartTime": start,
        "EndTime": utcnow(),
        "PercentageComplete": 100,
        "InstancesToUpdate": 0,
        "Preferences": preferences,
    }
    if desired_configuration:
        refresh["DesiredConfiguration"] = desired_configuration
    refreshes.append(refresh)
    return refresh["InstanceRefreshId"]


def describe_instance_refreshes(self, name, refresh_ids):
    refreshes = [
        r
        for r in self.__dict__.get("instance_refreshes", [])
        if r["AutoScalingGroupName"] == name
        and (not refresh_ids or r["InstanceRefreshId"] in refresh_ids)
    ]
    return list(reversed(refreshes))


def cancel_instance_refresh(self, name):
    if name not in self.autoscaling_groups:
        raise ValidationError(f"AutoScalingGroup name not found - AutoScalingGroup {name} not found")
    for refresh in self.__dict__.get("instance_refreshes", []):
        if refresh["AutoScalingGroupName"] == name and refresh["Status"] in ACTIVE_REFRESH_STATES:
            refresh["Status"] = "Cancelled"
            return refresh["InstanceRefreshId"]
    raise AutoscalingClientError(
        "ActiveInstanceRefreshNotFound",
        f"No in progress or pending Instance Refresh found for Auto Scaling group {name}",
    )


AutoScalingBackend.start_instance_refresh = start_instance_refresh
AutoScalingBackend.describe_instance_refreshes = describe_instance_refreshes
AutoScalingBackend.cancel_instance_refresh = cancel_instance_refresh


def response_start_instance_refresh(self):
    refresh_id = self.autoscaling_backend.start_instance_refresh(
        name=self._get_param("AutoScalingGroupName"),
        strategy=self._get_param("Strategy"),
        desired_configuration=self._get_param("DesiredConfiguration"),
        preferences=self._get_param("Preferences"),
    )
    return ActionResult({"InstanceRefreshId": refresh_id})


def response_describe_instance_refreshes(self):
    refreshes = self.autoscaling_backend.describe_instance_refreshes(
        name=self._get_param("AutoScalingGroupName"),
        refresh_ids=self._get_param("InstanceRefreshIds", []),
    )
    return ActionResult({"InstanceRefreshes": refreshes})


def response_cancel_instance_refresh(self):
    refresh_id = self.autoscaling_backend.cancel_instance_refresh(
        name=self._get_param("AutoScalingGroupName")
    )
    return ActionResult({"InstanceRefreshId": refresh_id})


AutoScalingResponse.start_instance_refresh = response_start_instance_refresh
AutoScalingResponse.describe_instance_refreshes = response_describe_instance_refreshes
AutoScalingResponse.cancel_instance_refresh = response_cancel_instance_refresh

_run_instances = InstanceResponse.run_instances


def run_instances(self):
    token = self._get_param("ClientToken")
    request_params = dict(self.querystring)
    if token and not self._get_bool_param("DryRun", False):
        for reservation in self.ec2_backend.reservations.values():
            if any(instance.client_token == token for instance in reservation.instances):
                if getattr(reservation, "request_params", request_params) != request_params:
                    raise EC2ClientError(
                        "IdempotentParameterMismatch",
                        f"The client token {token} was already used with other parameters.",
                    )
                return ActionResult(reservation)
    result = _run_instances(self)
    if token:
        result.result.request_params = request_params
    return result


InstanceResponse.run_instances = run_instances

_prep_nics = Instance.prep_nics


def prep_nics(self, nic_spec, *args, **kwargs):
    _prep_nics(self, nic_spec, *args, **kwargs)
    attached = {spec.get("NetworkInterfaceId") for spec in nic_spec}
    explicit = any("DeleteOnTermination" in spec for spec in nic_spec)
    for eni in self.nics.values():
        if eni.id not in attached and not explicit:
            eni.delete_on_termination = True


Instance.prep_nics = prep_nics


def redshift_of(ec2_backend):
    """The Redshift backend of the same account and region."""
    return redshift_backends[ec2_backend.account_id][ec2_backend.region_name]


def clusters_in_subnet(ec2_backend, subnet_id):
    redshift = redshift_of(ec2_backend)
    for cluster in redshift.clusters.values():
        group = redshift.subnet_groups.get(cluster.cluster_subnet_group_name)
        if group is not None and subnet_id in group.subnet_ids:
            yield cluster


def group_ids(eni):
    return {getattr(group, "id", group) for group in eni.group_set}


_delete_subnet = SubnetBackend.delete_subnet


def delete_subnet(self, subnet_id):
    in_use = any(eni.subnet.id == subnet_id for eni in self.enis.values())
    if in_use or any(clusters_in_subnet(self, subnet_id)):
        raise DependencyViolationError(
            f"The subnet '{subnet_id}' has dependencies and cannot be deleted."
        )
    return _delete_subnet(self, subnet_id)


SubnetBackend.delete_subnet = delete_subnet

_delete_security_group = SecurityGroupBackend.delete_security_group


def delete_security_group(self, name=None, group_id=None):
    group = self.get_security_group_by_name_or_id(group_id or name)
    if group is not None:
        in_use = any(group.id in group_ids(eni) for eni in self.enis.values())
        clusters = redshift_of(self).clusters.values()
        if in_use or any(group.id in (c.vpc_security_group_ids or []) for c in clusters):
            raise DependencyViolationError(f"resource {group.id} has a dependent object")
    return _delete_security_group(self, name=name, group_id=group_id)


SecurityGroupBackend.delete_security_group = delete_security_group

_delete_vpc = VPCBackend.delete_vpc


def delete_vpc(self, vpc_id):
    if any(group.name != "default" for group in self.groups.get(vpc_id, {}).values()):
        raise DependencyViolationError(
            f"The vpc '{vpc_id}' has dependencies and cannot be deleted."
        )
    if any(
        endpoint.vpc_id == vpc_id and endpoint.state != "deleted"
        for endpoint in self.vpc_end_points.values()
    ):
        raise DependencyViolationError(
            f"The vpc '{vpc_id}' has dependencies and cannot be deleted."
        )
    return _delete_vpc(self, vpc_id)


VPCBackend.delete_vpc = delete_vpc

_delete_cluster_subnet_group = RedshiftBackend.delete_cluster_subnet_group


def delete_cluster_subnet_group(self, subnet_identifier):
    for cluster in self.clusters.values():
        if cluster.cluster_subnet_group_name == subnet_identifier:
            raise RedshiftClientError(
                "InvalidClusterSubnetGroupStateFault",
                f"The cluster subnet group {subnet_identifier} cannot be deleted because "
                f"it is in use by cluster {cluster.cluster_identifier}.",
            )
    return _delete_cluster_subnet_group(self, subnet_identifier)


RedshiftBackend.delete_cluster_subnet_group = delete_cluster_subnet_group

_response_delete_cluster = RedshiftResponse.delete_cluster


def response_delete_cluster(self):
    result = _response_delete_cluster(self)
    snapshot = self.redshift_backend.snapshots.get(
        self._get_param("FinalClusterSnapshotIdentifier") or ""
    )
    if snapshot is not None and self._get_bool_param("SkipFinalClusterSnapshot") is False:
        snapshot.manual_snapshot_retention_period = self._get_int_param(
            "FinalClusterSnapshotRetentionPeriod", -1
        )
    return result


RedshiftResponse.delete_cluster = response_delete_cluster

# Scaling policies: AWS names a policy within its Auto Scaling group and
# deletes a group's policies with it. moto 5.2.5 keys them by name alone, so
# two groups' policies of one name replace each other (DescribePolicies of
# one group then finds none), and a deleted group's policies linger.
_put_scaling_policy = AutoScalingBackend.put_scaling_policy


def put_scaling_policy(self, name, *args, **kwargs):
    policy = _put_scaling_policy(self, name, *args, **kwargs)
    self.policies.pop(name, None)
    self.policies[(policy.auto_scaling_group_name, name)] = policy
    return policy


def delete_policy(self, name, group_name=None):
    for key, policy in list(self.policies.items()):
        if policy.name == name and group_name in (None, policy.auto_scaling_group_name):
            del self.policies[key]


def execute_policy(self, name, group_name=None):
    for policy in list(self.policies.values()):
        if policy.name == name and group_name in (None, policy.auto_scaling_group_name):
            policy.execute()


_delete_auto_scaling_group = AutoScalingBackend.delete_auto_scaling_group


def delete_auto_scaling_group(self, group_name):
    _delete_auto_scaling_group(self, group_name)
    for key, policy in list(self.policies.items()):
        if policy.auto_scaling_group_name == group_name:
            del self.policies[key]


def response_delete_policy(self):
    self.autoscaling_backend.delete_policy(
        self._get_param("PolicyName"), self._get_param("AutoScalingGroupName")
    )
    return EmptyResult()


def response_execute_policy(self):
    self.autoscaling_backend.execute_policy(
        self._get_param("PolicyName"), self._get_param("AutoScalingGroupName")
    )
    return EmptyResult()


AutoScalingBackend.put_scaling_policy = put_scaling_policy
AutoScalingBackend.delete_policy = delete_policy
AutoScalingBackend.execute_policy = execute_policy
AutoScalingBackend.delete_auto_scaling_group = delete_auto_scaling_group
AutoScalingResponse.delete_policy = response_delete_policy
AutoScalingResponse.execute_policy = response_execute_policy

_delete_database = GlueBackend.delete_database


def delete_database(self, database_name):
    _delete_database(self, database_name)
    partition = get_partition(self.region_name)
    arn = f"arn:{partition}:glue:{self.region_name}:{self.account_id}:database/{database_name}"
    self.tagger.delete_all_tags_for_resource(arn)


GlueBackend.delete_database = delete_database

def tagged_resource_tags(self):
    """The resource's tags, as `describe_tags(resource-id=<id>)` gives them,
    looked up by id instead of matching every tag of the region against the
    id: moto 5.2.5 does the latter for each resource a describe filters or
    answers, so a describe of N tagged resources costs N times all tags, and
    100 pipelines' VPCs, subnets and groups made the emulator spend a third of
    its time there."""
    if not self.id:
        return []
    resource_type = EC2_PREFIX_TO_RESOURCE.get(get_prefix(self.id), "")
    return [
        {"resource_id": self.id, "key": key, "value": value, "resource_type": resource_type}
        for key, value in self.ec2_backend.tags.get(self.id, {}).items()
    ]


TaggedEC2Resource.get_tags = tagged_resource_tags

# The names of moto's service packages, read from its folder once. moto 5.2.5
# lists the folder (and stats each entry) for every request it routes, an
# eighth of its time under load.
MOTO_MODULES = tuple(moto_backends.list_of_moto_modules())
moto_backends.list_of_moto_modules = lambda: MOTO_MODULES

# Every answer without Nagle's delay. werkzeug writes a response's headers
# and its body in separate sends; with Nagle's algorithm the body waits for
# the client to acknowledge the headers, which costs about 10 ms a call on
# loopback (17 ms instead of 7 ms for a DescribeVpcs, with the same CPU).
# AWS answers without such a stall, and a pipeline's first apply makes a few
# hundred calls one after another.
WSGIRequestHandler.disable_nagle_algorithm = True

# Firehose streams an account may have in a region by default, from the
# Firehose developer guide's quota page; a region it does not name gets the
# lowest tier.
FIREHOSE_STREAMS_QUOTA = {
    **dict.fromkeys(
        ["us-east-1", "us-east-2", "us-west-2", "eu-west-1", "ap-northeast-1"], 5000
    ),
    **dict.fromkeys(
        ["eu-central-1", "eu-west-2", "ap-southeast-1", "ap-southeast-2",
         "ap-northeast-2", "ap-south-1", "us-gov-west-1", "ca-central-1"],
        2000,
    ),
    **dict.fromkeys(
        ["eu-west-3", "eu-south-1", "eu-north-1", "ap-east-1", "ap-northeast-3",
         "sa-east-1", "cn-northwest-1", "cn-north-1", "me-south-1",
         "us-gov-east-1", "af-south-1"],
        500,
    ),
}
FIREHOSE_STREAMS_QUOTA_ELSEWHERE = 100
create_delivery_stream_with_moto_quota = FirehoseBackend.create_delivery_stream


def create_delivery_stream(self, region, delivery_stream_name, *args, **kwargs):
    quota = FIREHOSE_STREAMS_QUOTA.get(region, FIREHOSE_STREAMS_QUOTA_ELSEWHERE)
    if delivery_stream_name not in self.delivery_streams and len(self.delivery_streams) >= quota:
        raise LimitExceededException(
            f"You have already consumed your Firehose quota of {quota} streams in {region}."
        )
    return create_delivery_stream_with_moto_quota(
        self, region, delivery_stream_name, *args, **kwargs
    )


FirehoseBackend.create_delivery_stream = create_delivery_stream
# moto's own check reads this; the quota above is the one that holds.
DeliveryStream.MAX_STREAMS_PER_REGION = max(FIREHOSE_STREAMS_QUOTA.values())
list_delivery_streams_unlimited = FirehoseBackend.list_delivery_streams


def list_delivery_streams(self, limit, delivery_stream_type, exclusive_start):
    """ListDeliveryStreams without a Limit answers 10 names, as AWS does
    (moto answered up to its quota), with HasMoreDeliveryStreams past them."""
    return list_delivery_streams_unlimited(
        self, limit or 10, delivery_stream_type, exclusive_start
    )


FirehoseBackend.list_delivery_streams = list_delivery_streams



def paged(describe, items_key):
    """`describe` answering page by page: at most MaxResults items (moto's
    default of 15 when not given) from the NextToken on, and a NextToken
    while more are left, instead of the first page alone."""

    def respond(self):
        page = self._get_int_param("MaxResults", 15)
        start = int(self._get_param("NextToken") or 0)
        ask = self._get_int_param
        # moto's own truncation reads MaxResults: let it answer everything.
        self._get_int_param = lambda name, if_none=None: (
            1_000_000 if name == "MaxResults" else ask(name, if_none)
        )
        try:
            answer = describe(self)
        finally:
            del self._get_int_param
        items = answer.result[items_key]
        answer.result[items_key] = items[start : start + page]
        if start + page < len(items):
            answer.result["NextToken"] = str(start + page)
        return answer

    return respond


LaunchTemplateResponse.describe_launch_templates = paged(
    LaunchTemplateResponse.describe_launch_templates, "LaunchTemplates"
)
LaunchTemplateResponse.describe_launch_template_versions = paged(
    LaunchTemplateResponse.describe_launch_template_versions, "LaunchTemplateVersions"
)

if __name__ == "__main__":
    main()
