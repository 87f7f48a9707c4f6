# shellcheck shell=bash
# Starts Debian's PostgreSQL 15 on 127.0.0.1:5432 and prepares the database
# and roles that the Postgres source tests (internal/infra/pgsource) use.
# .ci/run sources it before `go test`; locally, as root:
#
#   source .ci/postgres-setup.sh && go test ./internal/infra/pgsource/
#
# It is idempotent: a running cluster, and existing roles and database, are
# reused (the passwords are set again). It exports:
#
#   NEXUS_TEST_POSTGRES_DSN         nexus_admin, a superuser, for fixtures
#   NEXUS_TEST_POSTGRES_RO_DSN      nexus_ro: CONNECT, USAGE on public, SELECT
#   NEXUS_TEST_POSTGRES_WRITER_DSN  nexus_writer: also INSERT on one table
#
# The passwords are fixed test values for a cluster that listens on the
# loopback only; they guard nothing else.

pg_setup_main() {
  local version=15 cluster=main port=5432
  local admin_pw=nexus_admin_test ro_pw=nexus_ro_test writer_pw=nexus_writer_test

  if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ ! -x "/usr/lib/postgresql/$version/bin/postgres" ]; then
    echo "postgres-setup: installing postgresql-$version"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q && apt-get install -y -q "postgresql-$version" postgresql-contrib || return 1
  fi
  if ! pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1 == v && $2 == c { found = 1 } END { exit !found }'; then
    pg_createcluster "$version" "$cluster" || return 1
  fi
  if ! pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1 == v && $2 == c && $4 == "online" { found = 1 } END { exit !found }'; then
    # Tolerate a cluster that came up in between.
    pg_ctlcluster "$version" "$cluster" start || true
  fi
  local i
  for i in $(seq 1 60); do
    pg_isready -q -h 127.0.0.1 -p "$port" && break
    sleep 0.5
  done
  if ! pg_isready -q -h 127.0.0.1 -p "$port"; then
    echo "postgres-setup: PostgreSQL $version/$cluster does not answer on 127.0.0.1:$port" >&2
    return 1
  fi

  run_sql() { # database; the SQL is read from stdin
    (cd / && su postgres -c "psql -X -q -v ON_ERROR_STOP=1 -d '$1'") >/dev/null
  }
  run_sql postgres <<SQL || return 1
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'nexus_admin') THEN
    CREATE ROLE nexus_admin LOGIN SUPERUSER;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'nexus_ro') THEN
    CREATE ROLE nexus_ro LOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'nexus_writer') THEN
    CREATE ROLE nexus_writer LOGIN;
  END IF;
END
\$\$;
ALTER ROLE nexus_admin LOGIN SUPERUSER PASSWORD '$admin_pw';
ALTER ROLE nexus_ro LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '$ro_pw';
ALTER ROLE nexus_writer LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '$writer_pw';
SQL
  local exists
  exists=$(cd / && su postgres -c "psql -X -tA -d postgres -c \"SELECT 1 FROM pg_database WHERE datname = 'nexus_test'\"") || return 1
  if [ "$exists" != 1 ]; then
    run_sql postgres <<<"CREATE DATABASE nexus_test OWNER nexus_admin;" || return 1
  fi
  run_sql nexus_test <<'SQL' || return 1
SET client_min_messages = warning;
REVOKE ALL ON DATABASE nexus_test FROM PUBLIC;
GRANT CONNECT ON DATABASE nexus_test TO nexus_ro, nexus_writer;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO nexus_ro, nexus_writer;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO nexus_ro;
ALTER DEFAULT PRIVILEGES FOR ROLE nexus_admin IN SCHEMA public GRANT SELECT ON TABLES TO nexus_ro;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT SELECT ON TABLES TO nexus_ro;
CREATE TABLE IF NOT EXISTS public.nexus_writer_target (id bigint, note text);
ALTER TABLE public.nexus_writer_target OWNER TO nexus_admin;
GRANT SELECT ON public.nexus_writer_target TO nexus_ro;
GRANT SELECT, INSERT ON public.nexus_writer_target TO nexus_writer;
SQL

  export NEXUS_TEST_POSTGRES_DSN="postgres://nexus_admin:$admin_pw@127.0.0.1:$port/nexus_test?sslmode=disable"
  export NEXUS_TEST_POSTGRES_RO_DSN="postgres://nexus_ro:$ro_pw@127.0.0.1:$port/nexus_test?sslmode=disable"
  export NEXUS_TEST_POSTGRES_WRITER_DSN="postgres://nexus_writer:$writer_pw@127.0.0.1:$port/nexus_test?sslmode=disable"
  echo "postgres-setup: PostgreSQL $version/$cluster ready on 127.0.0.1:$port, database nexus_test"
}

pg_setup_main
