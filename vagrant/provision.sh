#!/usr/bin/env bash
# Provisions the Vagrant VM (runs as root). Debian bookworm ships Node 18 and the
# project needs Node 20, so Node comes from NodeSource's apt repository; everything
# else comes from scripts/setup. Then the whole test suite and the demo.
set -euo pipefail
cd /qubes-fakeip

if ! command -v node >/dev/null 2>&1 || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends ca-certificates curl gnupg >/dev/null
  install -d -m 0755 /etc/apt/keyrings
  curl -fsSL https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key | gpg --dearmor -o /etc/apt/keyrings/nodesource.gpg
  echo "deb [signed-by=/etc/apt/keyrings/nodesource.gpg] https://deb.nodesource.com/node_20.x nodistro main" > /etc/apt/sources.list.d/nodesource.list
  apt-get update -qq
  apt-get install -y -qq nodejs >/dev/null
fi

# System packages, npm ci and the build (idempotent).
bash scripts/setup
./scripts/test
./scripts/demo
