#!/bin/sh
# Set up gitd on a fresh Debian machine with Python 3.11, then serve or test.
#
#   sh scripts/bootstrap.sh serve [gitd serve options]   # set up, then run the daemon
#   sh scripts/bootstrap.sh test  [pytest options]       # set up, then run every test
#
# As root it installs the Debian packages the daemon and the tests drive (git,
# git-lfs, OpenSSH, nginx + fcgiwrap + socat for the benchmark peers, chromium for the web UI's
# browser tests); otherwise those must
# already be there. It creates .venv and installs gitd into it (editable), with the
# pinned test clients for `test`.
set -eu
cd "$(dirname "$0")/.."
mode="${1:-serve}"
[ $# -gt 0 ] && shift

APT_RUNTIME="git git-lfs python3 python3-venv python3-dev"
APT_TEST="openssh-client openssh-server nginx fcgiwrap socat curl procps strace chromium"

need_apt=""
for pkg in $APT_RUNTIME $( [ "$mode" = test ] && echo $APT_TEST ); do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt="$need_apt $pkg"
done
if [ -n "$need_apt" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "bootstrap: installing Debian packages:$need_apt" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need_apt >/dev/null
    else
        echo "bootstrap: missing Debian packages:$need_apt (run as root to install them)" >&2
    fi
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
extras=""
[ "$mode" = test ] && extras="[test]"
stamp=".venv/.installed$extras"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".$extras"
    touch "$stamp"
fi

case "$mode" in
    serve)
        exec .venv/bin/gitd --data "${GITD_DATA:-./data}" serve "$@" ;;
    test)
        exec .venv/bin/python -m pytest "$@" ;;
    setup)
        echo "bootstrap: ready (.venv)" ;;
    *)
        echo "usage: sh scripts/bootstrap.sh serve|test|setup [args]" >&2; exit 2 ;;
esac
