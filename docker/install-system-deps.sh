#!/usr/bin/env bash
# Installs the Debian packages the local stack needs, only when they are missing.
set -euo pipefail

need=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
command -v runuser >/dev/null 2>&1 || need+=(util-linux)
# The compose file is validated by a test; where the docker client has no compose plugin,
# Debian's docker-compose (v1) validates it (neither needs an engine).
docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "error: missing Debian packages: ${need[*]} (run as root, or apt-get install them)" >&2
  exit 1
fi
echo "installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || { echo "error: apt-get update failed (no access to Debian's mirrors?)" >&2; exit 1; }
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
  || { echo "error: apt-get install ${need[*]} failed" >&2; exit 1; }
# Debian starts a default cluster on 5432; the local stack runs its own, so stop that one.
if [ -d /etc/postgresql/15/main ] && command -v pg_ctlcluster >/dev/null; then
  pg_ctlcluster 15 main stop >/dev/null 2>&1 || true
fi
