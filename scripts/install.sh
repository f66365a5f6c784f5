#!/usr/bin/env bash
# Install what dockbed needs on this machine: Debian packages and the venv.
#
# Safe to run again: apt-get runs only when a package is missing (its update
# is the slow part), and pip only when the venv is missing or pyproject.toml
# changed since the last install. Run as root (apt-get needs it).
set -euo pipefail
cd "$(dirname "$0")/.."

# docker.io: the engine; rabbitmq-server: the broker; mmdebstrap: the lab
# image; iproute2 and iputils-ping: the lab cable and its checks;
# openssh-client: ssh into containers (and ssh-keygen); chromium: browser
# tests; python3-venv: the venv below; make: the Makefile.
APT_PACKAGES=(
    docker.io
    rabbitmq-server
    mmdebstrap
    iproute2
    iputils-ping
    openssh-client
    chromium
    make
    python3-venv
)

missing=()
for package in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null \
        | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if ((${#missing[@]})); then
    echo "install.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y "${missing[@]}"
fi

# The digest of pyproject.toml at the last successful install, so a changed
# dependency list reinstalls and an unchanged one costs nothing.
stamp=.venv/.dockbed-pyproject.sha256
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ ! -x .venv/bin/python ]]; then
    echo "install.sh: creating .venv"
    python3 -m venv .venv
fi
if [[ ! -f $stamp || $(cat "$stamp") != "$wanted" ]]; then
    echo "install.sh: pip install -e '.[dev]'"
    .venv/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
    echo "$wanted" > "$stamp"
fi
