"""The long-running daemon: watching, scheduling, systemd notification, signals."""
