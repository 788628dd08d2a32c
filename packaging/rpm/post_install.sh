# Follows the %systemd_post convention: presets decide whether the unit is enabled.
mkdir -p /etc/nodetune/profiles.d /var/lib/nodetune
chmod 0750 /var/lib/nodetune
if [ "$1" -eq 1 ] && [ -d /run/systemd/system ]; then
    systemctl --no-reload preset nodetune.service >/dev/null 2>&1 || :
fi
