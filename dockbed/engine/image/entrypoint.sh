#!/bin/sh
# dockbed lab container entrypoint: sshd is the container's main process.
#
# Host keys are made here, at a container's first start, and never baked into
# the image: otherwise every container of the image would share one identity
# and ssh's known_hosts check would mean nothing. Only ed25519 and ECDSA keys
# are made because RSA key generation costs up to a second of CPU, which adds
# up when a batch of fifty containers starts at once.
set -eu

for type in ed25519 ecdsa; do
    key=/etc/ssh/ssh_host_${type}_key
    if [ ! -s "$key" ]; then
        rm -f "$key" "$key.pub"
        ssh-keygen -q -t "$type" -N '' -C "root@$(hostname)" -f "$key"
    fi
done

# sshd refuses to start without its privilege-separation directory, and /run
# is empty in a fresh container.
mkdir -p /run/sshd
chmod 0755 /run/sshd

# authorized_keys is put here at create time; sshd's StrictModes wants 700.
mkdir -p /root/.ssh
chmod 0700 /root/.ssh

if [ "$#" -gt 0 ]; then
    exec "$@"
fi
exec /usr/sbin/sshd -D -e
