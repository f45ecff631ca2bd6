"""The systemd unit of a cluster worker (`traum service print --worker`): as sandboxed as the
daemon's unit but for the network it needs to reach the cluster's PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from test_unit import SERVICE, _analyze, _exposure, _settings, _spec, _traum, needs_analyze

from daemon.service.unit import render_unit

#: What the offline analysis holds against the worker beyond the daemon's unit: it may open
#: IP sockets and has no private network, which talking to PostgreSQL needs; no IP allow-list
#: (the server's address is not known when the unit is written).
_NETWORK = {"RestrictAddressFamilies=~AF_(INET|INET6)", "PrivateNetwork=", "IPAddressDeny="}


def test_worker_unit_runs_traum_worker_with_network_but_otherwise_sandboxed() -> None:
    settings = _settings(render_unit(_spec(Path("/srv/traum"), exe="/opt/traum/bin/traum",
                                           worker=True)))
    assert settings["ExecStart"] == [
        "/opt/traum/bin/traum --config /srv/traum/config.toml worker"]
    assert settings["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert "PrivateNetwork" not in settings and "IPAddressDeny" not in settings
    assert "WatchdogSec" not in settings and "ExecReload" not in settings
    assert settings["After"] == ["local-fs.target remote-fs.target network-online.target"]
    for key, value in (("CapabilityBoundingSet", ""), ("MemoryDenyWriteExecute", "yes"),
                       ("PrivateDevices", "yes"), ("ProtectSystem", "strict"),
                       ("User", "traum"), ("NoNewPrivileges", "yes")):
        assert settings[key] == [value], key
    assert settings["ReadWritePaths"] == [
        "/srv/traum/inbox /srv/traum/library /srv/traum/outbox/requests"]


@needs_analyze
def test_systemd_verify_accepts_the_worker_unit(tmp_path: Path) -> None:
    done = _analyze(tmp_path, render_unit(_spec(Path("/srv/traum"), worker=True)), "verify",
                    user=False)
    assert done.returncode == 0, done.stderr
    assert "traum-engine.service" not in done.stderr, done.stderr


@needs_analyze
def test_worker_unit_exposure_is_the_daemons_plus_the_network(tmp_path: Path) -> None:
    from test_unit import _ACCEPTED

    text = render_unit(_spec(Path("/srv/traum"), account=SERVICE, worker=True))
    done = _analyze(tmp_path, text, "security", "--offline=yes", user=False)
    score, failed = _exposure(done.stdout)
    assert failed <= _ACCEPTED | _NETWORK, done.stdout
    assert score <= 1.1 + (0.2 if "PrivateTmp=" in _ACCEPTED else 0.0), done.stdout


def test_service_print_worker_needs_a_cluster(tmp_path: Path) -> None:
    done = _traum(tmp_path, "service", "print", "--worker")
    assert done.returncode == 3
    assert "a worker unit needs [cluster] database_url" in done.stderr
