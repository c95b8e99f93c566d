#!/usr/bin/env bash
# Create the virtual environment $1 with a Python >= 3.12 found on this machine
# (PATH, then pyenv-installed versions), or stop with a clear message.
set -euo pipefail
venv="${1:-.venv}"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
  exit 0
fi
ok() { "$1" -c 'import sys, venv; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; }
candidates=()
for name in python3.14 python3.13 python3.12 python3; do
  p=$(command -v "$name" 2>/dev/null || true)
  [ -n "$p" ] && candidates+=("$p")
done
roots=("${PYENV_ROOT:-$HOME/.pyenv}" /root/.pyenv /opt/pyenv /usr/local/pyenv)
for root in "${roots[@]}"; do
  for p in "$root"/versions/3.1[2-9]*/bin/python3; do
    [ -x "$p" ] && candidates+=("$p")
  done
done
for p in /usr/local/bin/python3.1[2-9] /usr/bin/python3.1[2-9]; do
  [ -x "$p" ] && candidates+=("$p")
done
for p in "${candidates[@]}"; do
  if ok "$p"; then
    echo "Using $p ($("$p" --version 2>&1)) for $venv"
    rm -rf "$venv"
    "$p" -m venv "$venv"
    exit 0
  fi
done
cat >&2 <<MSG
bayes_nlme needs Python >= 3.12 (PyMC >= 6.4 and ArviZ >= 1.3 require it), and none was found
on PATH or under pyenv (${roots[*]}).
Install one, e.g. 'pyenv install 3.12', or put python3.12 on PATH, then run make again.
MSG
exit 1
