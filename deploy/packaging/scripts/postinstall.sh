#!/bin/sh
# After install or upgrade (.deb: postinst configure; .rpm: %post 1|2):
# the system user, its state and log directories, and the config readable by
# the service's group only. The service is not started: edit the config,
# then `systemctl enable --now netsentinel`.
set -e

if ! getent group netsentinel >/dev/null; then
  groupadd --system netsentinel
fi
if ! getent passwd netsentinel >/dev/null; then
  useradd --system --gid netsentinel --home-dir /var/lib/netsentinel --no-create-home \
    --shell /usr/sbin/nologin --comment "NetSentinel sensor" netsentinel
fi
# systemd's StateDirectory=/LogsDirectory= adopt these; running the binary
# by hand as the user needs them too.
install -d -m 0750 -o netsentinel -g netsentinel /var/lib/netsentinel /var/log/netsentinel
chgrp netsentinel /etc/netsentinel /etc/netsentinel/netsentinel.yaml
chmod 0750 /etc/netsentinel
chmod 0640 /etc/netsentinel/netsentinel.yaml

if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
  # An upgrade restarts a running service on the new binary.
  systemctl try-restart netsentinel.service >/dev/null 2>&1 || true
fi
exit 0
