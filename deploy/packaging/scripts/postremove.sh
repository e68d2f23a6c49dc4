#!/bin/sh
# After removal. `dpkg --purge` (postrm purge) also removes what install
# created: reports, spool and alert files, the config directory, the user
# and group. `dpkg --remove` and `rpm -e` keep data and the user.
set -e
case "$1" in
  purge)
    rm -rf /var/lib/netsentinel /var/log/netsentinel /etc/netsentinel
    if getent passwd netsentinel >/dev/null; then
      userdel netsentinel >/dev/null 2>&1 || true
    fi
    if getent group netsentinel >/dev/null; then
      groupdel netsentinel >/dev/null 2>&1 || true
    fi
    ;;
esac
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
