#!/bin/sh
# pip install into /app/.venv; offline from the /wheels mount when the build was given a wheelhouse.
# The Dockerfile bind-mounts the `wheels` stage at /wheels: empty by default (pip uses its index),
# or the directory passed with `--build-context wheels=DIR` (then no network is needed).
set -eu
if ls /wheels/*.whl >/dev/null 2>&1; then
    set -- --no-index --find-links /wheels "$@"
fi
exec /app/.venv/bin/python -m pip install --quiet "$@"
