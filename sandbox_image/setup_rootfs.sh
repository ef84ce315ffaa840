#!/bin/sh
# Runs inside the finished rootfs (chroot or Dockerfile RUN): the one place both recipes shape the image.
set -eu
groupadd --gid 1000 sandbox
useradd --uid 1000 --gid 1000 --no-create-home --home-dir /tmp/home --shell /usr/sbin/nologin sandbox
mkdir -p /mnt/data /run/toolshed /opt/toolshed
chown sandbox:sandbox /mnt/data
# The root filesystem is read-only at run time, so caches that Python tools write on first use are built now
# and copied to the tmpfs HOME by the kernel entrypoint.
MPLCONFIGDIR=/opt/toolshed/matplotlib python3 -c "import matplotlib.font_manager"
rm -rf /var/cache/apt/archives/*.deb /var/lib/apt/lists/* /usr/share/doc /usr/share/man
# No setuid or setgid programs: inert under no-new-privileges anyway, but nothing in a sandbox needs them.
find / -xdev -type f -perm /6000 -exec chmod ug-s {} +
