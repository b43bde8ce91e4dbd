"""The Redshift Data API as AWS runs it, for what the operator relies on.

moto 5.2.5 accepts a statement for any cluster, paused or missing, and its
statements stay STARTED forever, so nothing that waits for one ever finishes
and no statement can fail. On AWS:

- a statement runs only on a cluster that exists and is available: others
  are refused with ValidationException;
- a statement finishes (status FINISHED) once Redshift has run it; here a
  statement runs for 0.05 seconds;
- a statement Redshift cannot run ends FAILED with Redshift's error in
  DescribeStatement's Error. Two failures the operator meets are emulated:
  CREATE EXTERNAL SCHEMA … FROM DATA CATALOG DATABASE 'x' (without CREATE
  EXTERNAL DATABASE) when the Glue database x does not exist, and an
  IAM_ROLE the cluster has not been given;
- a SELECT has a result set (HasResultSet), other statements do not.

Statement texts are not otherwise evaluated: there is no warehouse engine.
"""

import re
import time

from moto.glue.models import glue_backends
from moto.redshift.models import redshift_backends
from moto.redshiftdata.exceptions import ValidationException
from moto.redshiftdata.models import RedshiftDataAPIServiceBackend, Statement

RUNS_FOR_SECONDS = 0.05

EXTERNAL_SCHEMA = re.compile(
    r"^\s*CREATE\s+EXTERNAL\s+SCHEMA\s.*?\bFROM\s+DATA\s+CATALOG\s+DATABASE\s+'([^']+)'"
    r"(?:.*?\bIAM_ROLE\s+'([^']+)')?",
    re.IGNORECASE | re.DOTALL,
)
CREATES_DATABASE = re.compile(r"\bCREATE\s+EXTERNAL\s+DATABASE\b", re.IGNORECASE)
HAS_ROWS = re.compile(r"^\s*(SELECT|WITH|SHOW)\b", re.IGNORECASE)


def failure(backend, cluster, sql):
    """The error Redshift answers `sql` with, or None when it runs."""
    match = EXTERNAL_SCHEMA.match(sql)
    if not match:
        return None
    database, role = match.group(1), match.group(2)
    if role and role not in cluster.iam_roles_arn:
        return (
            f"ERROR: User arn:aws:redshift:{backend.region_name}:{backend.account_id}:dbuser:"
            f"{cluster.cluster_identifier}/admin is not authorized to assume IAM Role {role}"
        )
    glue = glue_backends[backend.account_id][backend.region_name]
    if database not in glue.databases and not CREATES_DATABASE.search(sql):
        return f"ERROR: External database \"{database}\" does not exist in the AWS Glue Data Catalog."
    return None


_execute_statement = RedshiftDataAPIServiceBackend.execute_statement


def execute_statement(self, cluster_identifier, database, db_user, parameters, secret_arn, sql):
    clusters = redshift_backends[self.account_id][self.region_name].clusters
    cluster = clusters.get(cluster_identifier)
    if cluster is None:
        raise ValidationException("Redshift endpoint doesn't exist in this region.")
    if cluster.status != "available":
        raise ValidationException(f"Cluster {cluster_identifier} is {cluster.status}.")
    statement = _execute_statement(self, cluster_identifier, database, db_user, parameters, secret_arn, sql)
    statement.started = time.monotonic()
    statement.error = failure(self, cluster, sql)
    statement.has_result_set = bool(HAS_ROWS.match(sql)) and statement.error is None
    return statement


_statement_iter = Statement.__iter__


def statement_iter(self):
    started = getattr(self, "started", None)
    if self.status == "STARTED" and started is not None:
        if time.monotonic() - started >= RUNS_FOR_SECONDS:
            self.status = "FAILED" if self.error else "FINISHED"
            self.updated_at = time.time()
    for key, value in _statement_iter(self):
        yield key, value
    if self.status == "FAILED":
        yield "Error", self.error


RedshiftDataAPIServiceBackend.execute_statement = execute_statement
Statement.__iter__ = statement_iter
