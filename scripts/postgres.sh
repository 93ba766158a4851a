#!/usr/bin/env bash
# Start the local PostgreSQL the test suite uses (installing it if absent, when root),
# create its role and database, and print the SQLAlchemy URL on stdout.
set -euo pipefail

ROLE=tuneloop
DB=tuneloop_test
URL="postgresql+psycopg://${ROLE}:${ROLE}@127.0.0.1:5432/${DB}"
say() { echo "postgres.sh: $*" >&2; }

# Only the URL goes to stdout: the caller captures it. Everything the tools below print
# (pg_ctlcluster says "Removed stale pid file." after an unclean stop) goes to stderr.
exec 3>&1 1>&2

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -n -u postgres "$@"; fi
}

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then say "PostgreSQL is not installed and this is not root"; exit 1; fi
  say "installing PostgreSQL from Debian packages"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

version=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main"' | grep -q .; then
  say "creating cluster $version/main"
  pg_createcluster "$version" main >/dev/null
fi
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" && $4 == "online"' | grep -q .; then
  say "starting cluster $version/main"
  pg_ctlcluster "$version" main start 3>&-  # the server must not hold the URL pipe open
fi
for _ in $(seq 1 60); do
  pg_isready -q -h 127.0.0.1 -p 5432 && break
  sleep 0.5
done
pg_isready -q -h 127.0.0.1 -p 5432 || { say "PostgreSQL did not become ready"; exit 1; }

if ! as_postgres psql -tAc "SELECT 1 FROM pg_roles WHERE rolname='${ROLE}'" | grep -q 1; then
  as_postgres psql -qc "CREATE ROLE ${ROLE} LOGIN PASSWORD '${ROLE}' CREATEDB" >/dev/null
fi
if ! as_postgres psql -tAc "SELECT 1 FROM pg_database WHERE datname='${DB}'" | grep -q 1; then
  as_postgres createdb -O "${ROLE}" "${DB}"
fi
echo "$URL" >&3
