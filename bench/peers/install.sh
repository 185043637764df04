#!/bin/sh
# Install the peers bench/race.py and bench/engines.py run, each in its own venv under
# $PEERS (default ~/.cache/lite2pg-peers), from PyPI and Debian only; never into lite2pg's
# own environment (they are not lite2pg dependencies). Run from anywhere:
#   bench/peers/install.sh
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PEERS=${PEERS:-$HOME/.cache/lite2pg-peers}
PY=${PYTHON:-python3.11}
mkdir -p "$PEERS"
command -v pgloader >/dev/null || { apt-get update -qq && apt-get install -y -qq pgloader; }
for peer in duck dlt; do
  [ -x "$PEERS/$peer/bin/python" ] || "$PY" -m venv "$PEERS/$peer"
  "$PEERS/$peer/bin/pip" install -q -r "$HERE/requirements-$peer.txt"
done
echo "peers installed under $PEERS"
