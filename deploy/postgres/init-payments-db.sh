#!/bin/bash
# Run once by the postgres image on an empty data volume: the service's own role and database,
# separate from Temporal's (`temporal`, `temporal_visibility`, created by the temporal-schema job).
set -euo pipefail
: "${PAYMENTS_DB_PASSWORD:?PAYMENTS_DB_PASSWORD must be set}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  --set=password="$PAYMENTS_DB_PASSWORD" <<'SQL'
CREATE ROLE payments LOGIN PASSWORD :'password';
CREATE DATABASE payments OWNER payments;
SQL
