#!/usr/bin/env bash
# Installs what the test suite needs when it is missing, so `make test` works on a fresh machine.
# A tool that cannot be installed fails the run: tests never skip because a tool is absent.
set -euo pipefail

STATICCHECK_VERSION=v0.8.2

if ! command -v sipp >/dev/null 2>&1; then
  echo "ensure-tools: sipp missing, installing Debian sip-tester" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-tools: sipp is needed and installing it needs root (apt-get install sip-tester)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sip-tester >/dev/null
fi
command -v sipp >/dev/null

# Kamailio: the MSRP relay (its msrp module is in the base package) of the gateway's relay interop tests.
if ! command -v kamailio >/dev/null 2>&1; then
  echo "ensure-tools: kamailio missing, installing Debian kamailio" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-tools: kamailio is needed and installing it needs root (apt-get install kamailio)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kamailio >/dev/null
fi
command -v kamailio >/dev/null

gobin="$(go env GOPATH)/bin"
if ! "$gobin/staticcheck" -version 2>/dev/null | grep -q "${STATICCHECK_VERSION#v}"; then
  echo "ensure-tools: installing staticcheck $STATICCHECK_VERSION" >&2
  go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
fi
