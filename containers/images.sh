#!/usr/bin/env bash
# Build arcscan's images with podman, one at a time (they are heavy; the machine is shared):
# the local Debian base first (containers/make-base.sh, once), then each target of
# containers/Dockerfile, tagged as the manifests name them (arcscan/<target>:$TAG, stored as
# localhost/arcscan/<target>:$TAG). The build context is the committed tree (git archive of
# $REVISION, default HEAD, plus the DVC-tracked imager calibrations data/real/cal: the image holds
# exactly the commit its revision label names, not uncommitted edits); CONTEXT=. builds the
# working tree instead. Prints and records each build's
# time and the image size in reports/images_build.json.
#   bash containers/images.sh [TARGET...]      (make images; default: mlflow serving training)
# --format docker keeps the HEALTHCHECKs (the OCI format has none).
# Elsewhere, with Docker and the public base: docker build -f containers/Dockerfile --target T .
set -euo pipefail
cd "$(dirname "$0")/.."

base=${BASE_IMAGE:-localhost/debian-python:3.11-bookworm}
tag=${TAG:-0.1.0}
ca=${HOST_CA:-/etc/ssl/certs/ca-certificates.crt}
targets=("$@")
((${#targets[@]})) || targets=(mlflow serving training)

bash containers/make-base.sh "$base"
if [ -n "${CONTEXT:-}" ]; then
  context=$CONTEXT
  commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
else
  commit=$(git rev-parse "${REVISION:-HEAD}")
  context=$(mktemp -d /var/tmp/arcscan-context.XXXXXX)
  trap 'rm -rf "$context"' EXIT
  git -c tar.umask=0022 archive "$commit" | tar -x -C "$context"
  # buildah's layer cache keys a COPY on the files' mtimes too: one fixed time, so that a layer
  # (above all the 5 GB dependency layer) is rebuilt only when the content of its files changes.
  # the imager calibrations (DVC-tracked, not in git; `make data` fetches them) join the context
  [ -d data/real/cal ] || { echo "data/real/cal is missing: run make data first" >&2; exit 1; }
  mkdir -p "$context/data/real" && cp -R data/real/cal "$context/data/real/cal"
  find "$context" -exec touch -h -d "@${SOURCE_DATE_EPOCH:-0}" {} +
fi
mkdir -p reports
records=()
for target in "${targets[@]}"; do
  start=$(date +%s)
  podman build --format docker --file "$context/containers/Dockerfile" --target "$target" \
    --build-arg BASE="$base" --build-arg GIT_COMMIT="$commit" \
    --secret id=hostca,src="$ca" \
    --tag "arcscan/$target:$tag" "$context"
  seconds=$(($(date +%s) - start))
  size=$(podman image inspect --format '{{.Size}}' "arcscan/$target:$tag")
  printf 'built arcscan/%s:%s in %s s, %s MB\n' "$target" "$tag" "$seconds" "$((size / 1000000))"
  records+=("{\"image\": \"arcscan/$target:$tag\", \"build_seconds\": $seconds, \"size_bytes\": $size}")
done
load=$(cut -d' ' -f1-3 /proc/loadavg)
printf '{"date": "%s", "commit": "%s", "context": "%s", "base": "%s", "load_average_after": "%s", "builds": [%s]}\n' \
  "$(date -u +%FT%TZ)" "$commit" "${CONTEXT:-git archive}" "$base" "$load" "$(IFS=,; echo "${records[*]}")" > reports/images_build.json
