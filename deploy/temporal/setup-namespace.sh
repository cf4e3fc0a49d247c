#!/bin/bash
# The namespace and its search attributes, run by docker-compose.yml's one-shot
# `temporal-namespace` job in the temporalio/admin-tools image once the server is healthy:
# registers TEMPORAL_NAMESPACE (closed workflows kept TEMPORAL_NAMESPACE_RETENTION) if it does not
# exist, then the custom search attributes with scripts/register-search-attributes (their one
# list; mounted at $REGISTER_SEARCH_ATTRIBUTES). Idempotent.
set -euo pipefail
address=${TEMPORAL_ADDRESS:?}
namespace=${TEMPORAL_NAMESPACE:?}
register=${REGISTER_SEARCH_ATTRIBUTES:-/opt/payments/register-search-attributes}

if temporal operator namespace describe --address "$address" --namespace "$namespace" >/dev/null 2>&1; then
  echo "namespace $namespace: already registered"
else
  temporal operator namespace create --address "$address" --namespace "$namespace" \
    --retention "${TEMPORAL_NAMESPACE_RETENTION:-720h}"
  echo "namespace $namespace: registered"
fi
exec bash "$register" --address "$address" --namespace "$namespace" --wait 60
