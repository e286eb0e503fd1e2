#!/bin/sh
# Start PostgreSQL as the official image's contract describes, for a non-root user:
#   PGDATA                  data directory (created and initialised when empty)
#   POSTGRES_USER           superuser created by initdb (default postgres)
#   POSTGRES_DB             database created on first start (default: the user's name)
#   POSTGRES_PASSWORD_FILE  file holding the password (or POSTGRES_PASSWORD)
# Every TCP client authenticates with scram-sha-256; there is no trust access.
set -eu

fail() {
    echo "postgresql: $*" >&2
    exit 1
}

: "${PGDATA:?set PGDATA to the data directory}"
user="${POSTGRES_USER:-postgres}"
database="${POSTGRES_DB:-$user}"
# Names go into SQL unquoted by the shell: accept plain identifiers only.
for name in "$user" "$database"; do
    case "$name" in
        "" | [!a-zA-Z_]* | *[!a-zA-Z0-9_]*)
            fail "'$name' is not a plain identifier (letters, digits, _); fix POSTGRES_USER/POSTGRES_DB" ;;
    esac
done

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
        [ -s "$POSTGRES_PASSWORD_FILE" ] || fail "POSTGRES_PASSWORD_FILE=$POSTGRES_PASSWORD_FILE is missing or empty"
        password_file="$POSTGRES_PASSWORD_FILE"
    elif [ -n "${POSTGRES_PASSWORD:-}" ]; then
        password_file="$(mktemp)"
        printf '%s' "$POSTGRES_PASSWORD" > "$password_file"
    else
        fail "no password: set POSTGRES_PASSWORD_FILE (or POSTGRES_PASSWORD)"
    fi
    mkdir -p "$PGDATA"
    chmod 700 "$PGDATA"
    echo "postgresql: initialising $PGDATA (superuser $user, database $database)"
    initdb --pgdata="$PGDATA" --username="$user" --pwfile="$password_file" \
        --auth-local=scram-sha-256 --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    [ "$password_file" = "${POSTGRES_PASSWORD_FILE:-}" ] || rm -f "$password_file"
    # Clients come from other pods: password authentication from any address.
    printf 'host all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
    if [ "$database" != postgres ]; then
        echo "CREATE DATABASE \"$database\" OWNER \"$user\";" \
            | postgres --single -D "$PGDATA" postgres >/dev/null
    fi
fi

# The JIT compiler is left out of the image (it pulls in LLVM), so it stays off.
exec postgres -D "$PGDATA" -c listen_addresses='*' -c jit=off "$@"
