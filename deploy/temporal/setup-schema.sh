#!/bin/bash
# Temporal's schemas in PostgreSQL, run by docker-compose.yml's one-shot `temporal-schema` job in
# the temporalio/admin-tools image before the server starts: creates the default and the
# visibility database if missing and applies every schema version this admin-tools release
# ships (temporal-sql-tool, as Temporal's own compose files and Helm chart do). Idempotent: a
# database already up to date is left as it is. Upgrading Temporal = running this with the new
# release's admin-tools first, then starting the new server (docs/deployment.md).
#
# Connection from the environment, read by temporal-sql-tool itself: SQL_PLUGIN, SQL_HOST,
# SQL_PORT, SQL_USER, SQL_PASSWORD; database names DBNAME / VISIBILITY_DBNAME as the server reads.
set -euo pipefail
: "${SQL_PLUGIN:?}" "${SQL_HOST:?}" "${SQL_USER:?}"
schemas=/etc/temporal/schema/postgresql/v12

for store in "${DBNAME:-temporal}=temporal" "${VISIBILITY_DBNAME:-temporal_visibility}=visibility"; do
  database=${store%%=*}
  schema=${store#*=}
  temporal-sql-tool --database "$database" create-database
  temporal-sql-tool --database "$database" setup-schema --version 0.0
  temporal-sql-tool --database "$database" update-schema --schema-dir "$schemas/$schema/versioned"
  echo "$database: schema $schema up to date"
done
