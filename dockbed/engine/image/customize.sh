#!/bin/sh
# mmdebstrap --customize-hook for the dockbed lab image: runs on the host after
# the packages are installed, with the root file system's directory as $1.
set -eu

rootfs=$1
here=$(dirname "$0")

install -m 0755 "$here/entrypoint.sh" "$rootfs/usr/local/sbin/dockbed-entrypoint"
install -m 0644 "$here/sshd_config" "$rootfs/etc/ssh/sshd_config.d/dockbed.conf"

# openssh-server's postinst made host keys; every container must make its own.
rm -f "$rootfs"/etc/ssh/ssh_host_*

# No key of any kind is baked in; the container's creator adds authorized_keys.
rm -rf "$rootfs/root/.ssh"
install -d -m 0700 "$rootfs/root/.ssh"

# A container cannot write /proc/self/loginuid (it lacks CAP_AUDIT_CONTROL), and
# with pam_loginuid "required" sshd would close every session at once.
sed -i 's/^session\s\+required\s\+pam_loginuid\.so/session optional pam_loginuid.so/' \
    "$rootfs/etc/pam.d/sshd"

# Each container gets its own machine id from its first boot, not the image's.
: > "$rootfs/etc/machine-id"
rm -f "$rootfs/var/lib/dbus/machine-id"

# Caches and logs from the build would only weigh down every layer.
rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/* "$rootfs"/tmp/*
