# Shared set-up steps for scripts/*: sourced, not run. Each step installs what is missing and says what it does.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv"

say() { printf '==> %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        say "need root for: $*"; return 1
    fi
}

APT_UPDATED=""
apt_install() {
    if [ -z "$APT_UPDATED" ]; then
        say "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
        APT_UPDATED=1
    fi
    say "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

# ensure_venv EXTRAS: a virtual environment in .venv with the package installed editable with those extras
# (comma-separated). Installs again only when pyproject.toml changed or an extra is missing.
ensure_venv() {
    local extras="$1" python="${PYTHON:-python3}" stamp digest installed="" extra missing=""
    command -v "$python" >/dev/null || { say "python3 is required (3.11 or newer)"; return 1; }
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { say "python 3.11 or newer is required"; return 1; }
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating the virtual environment in .venv"
        "$python" -m venv "$VENV"
    fi
    stamp="$VENV/.token-broker-installed"
    digest="$(sha256sum < "$ROOT/pyproject.toml" | cut -c1-16)"
    if [ -f "$stamp" ] && [ "$(head -n1 "$stamp")" = "$digest" ]; then
        installed="$(tail -n1 "$stamp")"
    fi
    for extra in ${extras//,/ }; do
        case ",$installed," in *",$extra,"*) ;; *) missing=1 ;; esac
    done
    if [ -n "$missing" ] || [ ! -f "$stamp" ]; then
        [ -n "$installed" ] && extras="$installed,$extras"
        say "installing token-broker[$extras] and its dependencies into .venv"
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[$extras]"
        printf '%s\n%s\n' "$digest" "$extras" > "$stamp"
    fi
}

# ensure_chromium: prints the path of Debian's Chromium, installing it with apt-get when missing. The dashboard's
# browser tests drive it through Playwright (whose own browser download is not used). TOKEN_BROKER_CHROMIUM, when set
# to an executable, wins.
ensure_chromium() {
    if [ -n "${TOKEN_BROKER_CHROMIUM:-}" ] && [ -x "$TOKEN_BROKER_CHROMIUM" ]; then
        echo "$TOKEN_BROKER_CHROMIUM"; return 0
    fi
    if [ ! -x /usr/bin/chromium ]; then
        apt_install chromium >&2
    fi
    [ -x /usr/bin/chromium ] || { say "Chromium is missing and apt-get could not install it"; return 1; }
    echo /usr/bin/chromium
}

# ensure_node_packages: the connectors' Node packages (zapier-platform-core, n8n-workflow, @n8n/client-oauth2...),
# installed with `npm ci` from their lock files when missing or when a lock file changed. Node and npm come from
# apt-get when the machine has none.
ensure_node_packages() {
    local dir stamp
    command -v npm >/dev/null || apt_install nodejs npm >&2
    for dir in "$ROOT"/connectors/*/; do
        [ -f "$dir/package-lock.json" ] || continue
        stamp="$dir/node_modules/.token-broker-lock"
        if [ ! -f "$stamp" ] || ! cmp -s "$dir/package-lock.json" "$stamp"; then
            say "npm ci in ${dir#"$ROOT"/}"
            # --ignore-scripts: n8n-workflow's optional native modules do not build on Node 20 and are not needed
            (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) >&2
            cp "$dir/package-lock.json" "$stamp"
        fi
    done
}

postgres_bin() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
    done
    return 1
}

# start_postgres DIR: a throwaway PostgreSQL server with its data and socket in DIR, on a free loopback port.
# Prints the SQLAlchemy URL of a fresh database. Stop it with stop_postgres DIR.
start_postgres() {
    local dir="$1" bin port run=()
    bin="$(postgres_bin)" || { apt_install postgresql >&2; bin="$(postgres_bin)"; } || return 1
    port="$(free_port)"
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || as_root useradd --system --no-create-home postgres
        chown postgres "$dir"
        run=(runuser -u postgres --)
    fi
    "${run[@]}" "$bin/initdb" -D "$dir/data" -U tb -A trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; return 1; }
    "${run[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o \
        "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        >/dev/null || { cat "$dir/server.log" >&2; return 1; }
    "${run[@]}" "$bin/createdb" -h 127.0.0.1 -p "$port" -U tb token_broker_test
    echo "postgresql+psycopg://tb@127.0.0.1:$port/token_broker_test"
}

stop_postgres() {
    local dir="$1" bin run=()
    [ -d "$dir/data" ] || return 0
    bin="$(postgres_bin)" || return 0
    [ "$(id -u)" -eq 0 ] && run=(runuser -u postgres --)
    "${run[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
}

# start_redis DIR: a throwaway Redis server (installed with apt-get when missing) as a daemon on a free loopback
# port, its pid, log and socket files in DIR and no persistence. Prints its URL. Stop it with stop_redis DIR.
start_redis() {
    local dir="$1" port tries=0
    command -v redis-server >/dev/null || apt_install redis-server >&2
    command -v redis-server >/dev/null || { say "redis-server is missing and apt-get could not install it"; return 1; }
    port="$(free_port)"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --dir "$dir" --pidfile "$dir/redis.pid" \
        --logfile "$dir/redis.log" --save "" --appendonly no >/dev/null || { cat "$dir/redis.log" >&2; return 1; }
    until "$VENV/bin/python" -c 'import socket, sys; s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)
s.sendall(b"PING\r\n"); sys.exit(s.recv(16) != b"+PONG\r\n")' "$port" 2>/dev/null; do
        tries=$((tries + 1))
        [ "$tries" -lt 100 ] || { say "Redis did not start"; cat "$dir/redis.log" >&2; return 1; }
        sleep 0.1
    done
    echo "redis://127.0.0.1:$port/0"
}

stop_redis() {
    local dir="$1" pid tries=0
    [ -f "$dir/redis.pid" ] || return 0
    pid="$(cat "$dir/redis.pid")"
    kill "$pid" 2>/dev/null || return 0
    while kill -0 "$pid" 2>/dev/null && [ "$tries" -lt 100 ]; do sleep 0.1; tries=$((tries + 1)); done
}

free_port() {
    "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
