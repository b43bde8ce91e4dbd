"""What the kind suite checks in the AWS emulator, through the AWS API (boto3,
configured by the standard AWS_* variables: endpoint, region, credentials,
AWS_CA_BUNDLE).

    check.py stored --bucket B --table T --api-sha256 X --stream-sha256 Y [--timeout S]
        waits until the image uploaded through the API and the one produced to
        Kafka are each a DynamoDB item (source api / stream) whose S3 object
        holds exactly those bytes, and their events have reached events/.
    check.py leftovers --owner NAMESPACE/NAME
        fails listing every resource still tagged imagepipeline.io/owner=OWNER
        (terminated instances and deleted peerings excepted, as on AWS).

Polling stops at the deadline; nothing sleeps a fixed time.
"""

import argparse
import gzip
import hashlib
import sys
import time

import boto3
from botocore.exceptions import ClientError

OWNER_TAG = "imagepipeline.io/owner"
PREFIX = "/imagepipeline/"


def client(service):
    return boto3.client(service)


def items_by_source(table):
    dynamodb = client("dynamodb")
    items = []
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        items.extend(page["Items"])
    found = {}
    for item in items:
        found.setdefault(item["source"]["S"], []).append(item)
    return found


def stored_problems(bucket, table, expected):
    s3 = client("s3")
    problems = []
    by_source = items_by_source(table)
    ids = []
    for source, sha256 in expected.items():
        matching = [i for i in by_source.get(source, []) if i["sha256"]["S"] == sha256]
        if not matching:
            problems.append(f"no {source} item with sha256 {sha256} in table {table}")
            continue
        item = matching[0]
        ids.append(item["id"]["S"])
        key = item["key"]["S"]
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as error:
            problems.append(f"{source} image s3://{bucket}/{key}: {error}")
            continue
        if hashlib.sha256(body).hexdigest() != sha256:
            problems.append(f"s3://{bucket}/{key} does not hold the {source} image's bytes")
        if not key.startswith("images/"):
            problems.append(f"{source} image stored at {key}, not under images/")
    events = b""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="events/"):
        for entry in page.get("Contents", []):
            data = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
            events += gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    for image_id in ids:
        if image_id.encode() not in events:
            problems.append(f"no event for image {image_id} under s3://{bucket}/events/")
    return problems


def stored(args):
    expected = {"api": args.api_sha256, "stream": args.stream_sha256}
    deadline = time.monotonic() + args.timeout
    while True:
        problems = stored_problems(args.bucket, args.table, expected)
        if not problems:
            print(f"stored: both images are in s3://{args.bucket}, table {args.table} and events/")
            return 0
        if time.monotonic() > deadline:
            print("not stored after %d s:\n  %s" % (args.timeout, "\n  ".join(problems)), file=sys.stderr)
            return 1
        time.sleep(2)


def leftovers(args):
    owner = args.owner
    found = []

    def owned(tags):
        return any(t["Key"] == OWNER_TAG and t.get("Value") == owner for t in tags or [])

    s3 = client("s3")
    for bucket in s3.list_buckets().get("Buckets", []):
        try:
            tags = s3.get_bucket_tagging(Bucket=bucket["Name"])["TagSet"]
        except ClientError:
            continue
        if owned(tags):
            found.append(f"bucket {bucket['Name']}")
    dynamodb = client("dynamodb")
    for name in dynamodb.list_tables()["TableNames"]:
        arn = dynamodb.describe_table(TableName=name)["Table"]["TableArn"]
        if owned(dynamodb.list_tags_of_resource(ResourceArn=arn).get("Tags")):
            found.append(f"table {name}")
    firehose = client("firehose")
    for name in firehose.list_delivery_streams()["DeliveryStreamNames"]:
        if owned(firehose.list_tags_for_delivery_stream(DeliveryStreamName=name)["Tags"]):
            found.append(f"delivery stream {name}")
    iam = client("iam")
    for role in iam.list_roles(PathPrefix=PREFIX)["Roles"]:
        if owned(iam.list_role_tags(RoleName=role["RoleName"])["Tags"]):
            found.append(f"role {role['RoleName']}")
    for profile in iam.list_instance_profiles(PathPrefix=PREFIX)["InstanceProfiles"]:
        if owned(profile.get("Tags")):
            found.append(f"instance profile {profile['InstanceProfileName']}")
    redshift = client("redshift")
    for cluster in redshift.describe_clusters()["Clusters"]:
        if owned(cluster.get("Tags")):
            found.append(f"cluster {cluster['ClusterIdentifier']}")
    for group in redshift.describe_cluster_subnet_groups()["ClusterSubnetGroups"]:
        if owned(group.get("Tags")):
            found.append(f"subnet group {group['ClusterSubnetGroupName']}")

    ec2 = client("ec2")
    owner_filter = [{"Name": f"tag:{OWNER_TAG}", "Values": [owner]}]
    listings = [
        ("vpc", "describe_vpcs", "Vpcs", "VpcId"),
        ("subnet", "describe_subnets", "Subnets", "SubnetId"),
        ("security group", "describe_security_groups", "SecurityGroups", "GroupId"),
        ("internet gateway", "describe_internet_gateways", "InternetGateways", "InternetGatewayId"),
        ("route table", "describe_route_tables", "RouteTables", "RouteTableId"),
        ("launch template", "describe_launch_templates", "LaunchTemplates", "LaunchTemplateId"),
        ("volume", "describe_volumes", "Volumes", "VolumeId"),
    ]
    for kind, call, field, id_field in listings:
        for resource in getattr(ec2, call)(Filters=owner_filter)[field]:
            found.append(f"{kind} {resource[id_field]}")
    for peering in ec2.describe_vpc_peering_connections(Filters=owner_filter)["VpcPeeringConnections"]:
        if peering["Status"]["Code"] != "deleted":
            found.append(f"peering {peering['VpcPeeringConnectionId']}")
    for reservation in ec2.describe_instances(Filters=owner_filter)["Reservations"]:
        for instance in reservation["Instances"]:
            if instance["State"]["Name"] != "terminated":
                found.append(f"instance {instance['InstanceId']}")

    autoscaling = client("autoscaling")
    for group in autoscaling.describe_auto_scaling_groups()["AutoScalingGroups"]:
        if owned(group.get("Tags")):
            found.append(f"auto scaling group {group['AutoScalingGroupName']}")
    elbv2 = client("elbv2")

    def elb_owned(arn):
        return owned(elbv2.describe_tags(ResourceArns=[arn])["TagDescriptions"][0]["Tags"])

    for lb in elbv2.describe_load_balancers()["LoadBalancers"]:
        if elb_owned(lb["LoadBalancerArn"]):
            found.append(f"load balancer {lb['LoadBalancerName']}")
    for group in elbv2.describe_target_groups()["TargetGroups"]:
        if elb_owned(group["TargetGroupArn"]):
            found.append(f"target group {group['TargetGroupName']}")
    glue = client("glue")
    for database in glue.get_databases()["DatabaseList"]:
        arn = f"arn:aws:glue:{glue.meta.region_name}:{database['CatalogId']}:database/{database['Name']}"
        if owned([{"Key": k, "Value": v} for k, v in glue.get_tags(ResourceArn=arn)["Tags"].items()]):
            found.append(f"glue database {database['Name']}")
            for table in glue.get_tables(DatabaseName=database["Name"])["TableList"]:
                found.append(f"glue table {database['Name']}.{table['Name']}")
    ssm = client("ssm")
    name_filter = [{"Key": "Name", "Option": "BeginsWith", "Values": [PREFIX]}]
    for parameter in ssm.describe_parameters(ParameterFilters=name_filter)["Parameters"]:
        tags = ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=parameter["Name"])
        if owned(tags["TagList"]):
            found.append(f"parameter {parameter['Name']}")

    if found:
        print(f"left in the emulator, tagged {OWNER_TAG}={owner}:", file=sys.stderr)
        for resource in sorted(found):
            print(f"  {resource}", file=sys.stderr)
        return 1
    print(f"leftovers: nothing tagged {OWNER_TAG}={owner} is left")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    stored_args = commands.add_parser("stored")
    stored_args.add_argument("--bucket", required=True)
    stored_args.add_argument("--table", required=True)
    stored_args.add_argument("--api-sha256", required=True)
    stored_args.add_argument("--stream-sha256", required=True)
    stored_args.add_argument("--timeout", type=int, default=180)
    leftovers_args = commands.add_parser("leftovers")
    leftovers_args.add_argument("--owner", required=True)
    args = parser.parse_args()
    return stored(args) if args.command == "stored" else leftovers(args)


if __name__ == "__main__":
    sys.exit(main())
