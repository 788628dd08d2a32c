# %systemd_postun_with_restart: reload units; on upgrade restart the daemon.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart nodetune.service >/dev/null 2>&1 || :
    fi
fi
if [ "$1" -eq 0 ]; then
    # Erase: the state (saved originals) goes with the package; %config files are kept as .rpmsave.
    rm -rf /var/lib/nodetune
fi
