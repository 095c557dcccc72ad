#!/usr/bin/env bash
# The local base image for machines that cannot pull one: Debian bookworm with Python 3.11,
# made with debootstrap and imported into podman (FIELD-NOTES §11). It plays the part of
# python:3.11-slim-bookworm (Python, venv, CA certificates; nothing else), so that
# containers/Dockerfile builds the same way on both. Idempotent: nothing happens when the image
# exists.
#   bash containers/make-base.sh [IMAGE]       (make base-image; IMAGE defaults to $BASE_IMAGE)
set -euo pipefail

image=${1:-${BASE_IMAGE:-localhost/debian-python:3.11-bookworm}}
if podman image exists "$image"; then
  echo "$image exists"
  exit 0
fi

sources=/etc/apt/sources.list.d/debian.sources
mirror=$(awk '/^URIs:/ {print $2; exit}' "$sources")
rootfs=$(mktemp -d /var/tmp/arcscan-base.XXXXXX)
cleanup() {
  for m in dev sys proc; do mountpoint -q "$rootfs/$m" && umount -l "$rootfs/$m"; done
  rm -rf "$rootfs"
}
trap cleanup EXIT

debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" "$mirror"
# Point releases and security fixes: the host's suites (bookworm, -updates, -security), then
# upgrade with /proc, /sys and /dev mounted (maintainer scripts need them).
rm -f "$rootfs/etc/apt/sources.list"
cp "$sources" "$rootfs/etc/apt/sources.list.d/debian.sources"
for m in proc sys dev; do mount --bind "/$m" "$rootfs/$m"; done
chroot "$rootfs" /bin/sh -ec 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -qq && apt-get clean'
for m in dev sys proc; do umount -l "$rootfs/$m"; done
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/*.log

tar -C "$rootfs" --numeric-owner -c . | podman import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  - "$image"
podman run --rm "$image" python3 --version
