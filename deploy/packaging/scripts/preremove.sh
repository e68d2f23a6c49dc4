#!/bin/sh
# Before removal (.deb: prerm remove; .rpm: %preun 0): stop the service. An
# upgrade (.deb: prerm upgrade; .rpm: %preun 1) leaves it to postinstall.
set -e
case "$1" in
  remove|0)
    if [ -d /run/systemd/system ]; then
      systemctl disable --now netsentinel.service >/dev/null 2>&1 || true
    fi
    ;;
esac
exit 0
