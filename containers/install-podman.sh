#!/usr/bin/env bash
# Podman and its helpers from Debian, and the engine settings these machines need
# (FIELD-NOTES §11). Idempotent: installs only what is missing, writes containers.conf once.
#   bash containers/install-podman.sh        (make podman)
set -euo pipefail

packages=(podman buildah fuse-overlayfs slirp4netns uidmap runc debootstrap catatonit)  # catatonit: the pause process of pods
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# runc, not crun (crun fails on the hybrid cgroup here); ulimits the sandbox allows (podman's
# defaults exceed them).
conf=/etc/containers/containers.conf
if ! grep -q '^runtime = "runc"' "$conf" 2>/dev/null; then
  mkdir -p /etc/containers
  cat > "$conf" <<'CONF'
# Written by arcscan's containers/install-podman.sh
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
CONF
fi
podman --version
