# Creates the virtual environment ($VENV, default .venv) with the project and its test tools
# installed from the hash-pinned requirements-dev.lock (scripts/lock makes it), once per change of
# pyproject.toml or the lock. $PYTHON picks the interpreter (default 3.11).
PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-.venv}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
stamp=$VENV/.installed-$(cat pyproject.toml requirements-dev.lock | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  # Every dependency at its locked version and hash; then the project itself, without resolving.
  "$VENV/bin/python" -m pip install --quiet --require-hashes -r requirements-dev.lock
  "$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e .
  rm -f "$VENV"/.installed-* && touch "$stamp"
fi
# promtool, for the alert-rule tests: taken from Debian's prometheus package and unpacked into the
# venv (nothing is installed system-wide and no Prometheus server is started). Needs apt.
if ! command -v promtool >/dev/null && [ ! -x "$VENV/bin/promtool" ] && command -v apt-get >/dev/null; then
  promtool_deb=$(mktemp -d)
  if (cd "$promtool_deb" && { apt-get download prometheus >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get download prometheus >/dev/null 2>&1; }; } \
      && dpkg-deb -x prometheus_*.deb unpacked); then
    cp "$promtool_deb/unpacked/usr/bin/promtool" "$VENV/bin/promtool"
  else
    echo "could not fetch promtool from apt (Debian's prometheus package); the alert tests need it" >&2
  fi
  rm -rf "$promtool_deb"
fi
