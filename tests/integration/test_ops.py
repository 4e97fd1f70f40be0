"""Operations: check-config, -o overrides, SIGHUP reload, worker restart,
SIGTERM shutdown, and the embedded defaults (herald serve without -c)."""
import os
import re
import signal
import stat
import subprocess
import time

import pytest

from helpers import HERALD_BIN, HOST, USERS, Server, free_port, imap_quote

ALICE = USERS["alice"]

ALL_KEYS = [
    "data_dir", "tls_cert", "tls_key", "passwd_file",
    "imap_listen", "imaps_listen",
    "workers", "user", "log_level", "demo_user",
    "plaintext_auth", "auth_failure_delay_ms", "auth_throttle_failures",
    "auth_throttle_window", "auth_throttle_delay_max", "max_auth_failures",
    "max_line_length", "max_literal_size", "max_command_size",
    "max_list_depth", "max_command_args", "preauth_max_line_length",
    "preauth_max_literal_size", "preauth_max_list_depth", "max_bad_commands",
    "max_connections", "output_high_water", "max_output_buffer",
    "preauth_timeout", "autologout_timeout", "shutdown_timeout",
    "idle_keepalive", "idle_max",
]


def _settings_of(dump):
    out = {}
    for line in dump.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-z_0-9]+) = (.*)$", line)
        assert m, "not a 'key = value' line: %r" % line
        assert m.group(1) not in out, "key printed twice: %s" % m.group(1)
        out[m.group(1)] = m.group(2)
    return out


# --- check-config ---------------------------------------------------------------

def test_check_config_prints_every_key(herald_server):
    srv = herald_server(start=False, max_bad_commands=7,
                        preauth_max_literal_size="16k", preauth_timeout="2m")
    r = srv.herald("check-config")
    assert r.returncode == 0, r.stderr
    settings = _settings_of(r.stdout)
    # Every foundation key (later milestones may add more).
    missing = set(ALL_KEYS) - set(settings)
    assert not missing, missing
    assert settings["workers"] == "2"
    assert settings["max_bad_commands"] == "7"
    assert settings["demo_user"] == "no"
    assert settings["auth_failure_delay_ms"] == "200"
    assert settings["imap_listen"] == "%s:%d" % (HOST, srv.imap_port)
    assert settings["data_dir"] == srv.data_dir
    # Defaults resolved against data_dir.
    assert settings["passwd_file"] == os.path.join(srv.data_dir, "passwd")
    assert settings["tls_cert"] == srv.cert_path
    assert settings["tls_key"] == os.path.join(srv.data_dir, "tls",
                                               "key.pem")
    # Sizes and durations in any unit; the values must mean the same.
    assert settings["preauth_max_literal_size"] in ("16K", "16384")
    assert settings["preauth_timeout"] in ("2m", "120s", "120")
    assert "configuration OK" in r.stderr


def test_check_config_output_is_a_valid_config(herald_server):
    srv = herald_server(start=False, log_level="debug",
                        plaintext_auth="no", max_literal_size="3M")
    r = srv.herald("check-config")
    assert r.returncode == 0, r.stderr
    dumped = os.path.join(srv.root, "dumped.conf")
    with open(dumped, "w") as f:
        f.write(r.stdout)
    r2 = srv.herald("check-config", "-c", dumped, conf=False)
    assert r2.returncode == 0, r2.stderr
    assert _settings_of(r2.stdout) == _settings_of(r.stdout)


@pytest.mark.parametrize("line,message", [
    ("bogus_key = 1", "unknown key 'bogus_key'"),
    ("workers = abc", "workers: "),
    ("workers = 65", "workers: "),
    ("plaintext_auth = maybe", "plaintext_auth: "),
    ("demo_user = perhaps", "demo_user: "),
    ("preauth_timeout = 10x", "preauth_timeout: "),
    ("max_literal_size = 1T", "max_literal_size: "),
    ("log_level = verbose", "log_level: "),
    ("auth_failure_delay_ms = -1", "auth_failure_delay_ms: "),
    ("max_bad_commands = 0", "max_bad_commands: "),
    ("max_bad_commands", ""),
    ("= 5", ""),
    ('user = "unterminated', "user: "),
])
def test_check_config_rejects_bad_line(herald_server, line, message):
    srv = herald_server(start=False)
    with open(srv.conf_path) as f:
        lines = f.read().split("\n")
    lines.insert(2, line)        # becomes line 3
    with open(srv.conf_path, "w") as f:
        f.write("\n".join(lines))
    r = srv.herald("check-config")
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""
    first = r.stderr.splitlines()[0]
    assert first.startswith("herald: %s:3: %s" % (srv.conf_path, message)), \
        first
    # serve refuses it the same way, without starting.
    r = srv.herald("serve", timeout=20)
    assert r.returncode == 1, r.stderr
    assert ("%s:3: " % srv.conf_path) in r.stderr


def test_check_config_rejects_bad_listen_address(herald_server):
    srv = herald_server(start=False, imap_listen="127.0.0.1:99999")
    r = srv.herald("check-config")
    assert r.returncode == 1, r.stderr
    assert "imap_listen" in r.stderr and "99999" in r.stderr, r.stderr


def test_check_config_needs_a_listener(herald_server):
    srv = herald_server(start=False, imap_listen="", imaps_listen="")
    r = srv.herald("check-config")
    assert r.returncode == 1, r.stderr
    assert "listen" in r.stderr, r.stderr


@pytest.mark.parametrize("off", ["imap_listen", "imaps_listen"])
def test_one_listener_off(herald_server, off):
    import socket
    srv = herald_server(**{off: ""})
    tls = off == "imap_listen"
    with srv.login("alice", kind="tls" if tls else "plain") as c:
        _, tagged = c.command("n", "NOOP")
        assert tagged.startswith("n OK"), tagged
    port = srv.imap_port if tls else srv.imaps_port
    s = socket.socket()
    try:
        s.settimeout(2)
        assert s.connect_ex((HOST, port)) != 0, "%s still listens" % off
    finally:
        s.close()


def test_check_config_missing_file(tmp_path):
    srv = Server(tmp_path / "srv")
    r = srv.herald("check-config", "-c", str(tmp_path / "nope.conf"),
                   conf=False)
    assert r.returncode == 1
    assert r.stderr.startswith("herald: "), r.stderr
    assert "nope.conf" in r.stderr


def test_overrides_on_the_command_line(herald_server):
    srv = herald_server(start=False, max_bad_commands=7)
    r = srv.herald("check-config", "-o", "max_bad_commands=9", "-o",
                   "workers = 3", "-o", "log_level=debug")
    assert r.returncode == 0, r.stderr
    s = _settings_of(r.stdout)
    assert (s["max_bad_commands"], s["workers"], s["log_level"]) == \
        ("9", "3", "debug")
    for bad in ("nosuchkey=1", "workers", "workers=lots"):
        r = srv.herald("check-config", "-o", bad)
        assert r.returncode == 1, bad
        assert r.stderr.startswith("herald: -o"), r.stderr


def test_serve_applies_overrides(herald_server):
    srv = herald_server(max_bad_commands=20,
                        args=["-o", "max_bad_commands=2"])
    with srv.raw() as c:
        c.send("a BOGUS\r\nb BOGUS\r\n")
        lines = c.expect_eof(timeout=5)
        assert [l.split(" ")[:2] for l in lines] == [
            ["a", "BAD"], ["b", "BAD"], ["*", "BYE"]], lines


# --- signals ----------------------------------------------------------------------

def _bad_commands_until_bye(srv, n):
    """Send n bad commands and a NOOP; True when the server said BYE."""
    with srv.raw() as c:
        c.send("".join("x%d BOGUS\r\n" % i for i in range(n)) + "y NOOP\r\n")
        while True:
            line = c.readline()
            if line.startswith("* BYE"):
                c.expect_eof(timeout=5)
                return True
            if line.startswith("y OK"):
                return False


def test_sighup_reloads_configuration(herald_server):
    srv = herald_server(max_bad_commands=20)
    assert _bad_commands_until_bye(srv, 3) is False
    # Sessions open across the reload keep working.
    open_sessions = [srv.login("alice") for _ in range(4)]
    start = len(srv.log())
    srv.write_config(max_bad_commands=2)
    srv.kill(signal.SIGHUP)
    srv.wait_log(r"master\[\d+\] info: configuration reloaded", start=start)
    srv.wait_log(r"worker0\[\d+\] info: configuration reloaded", start=start)
    srv.wait_log(r"worker1\[\d+\] info: configuration reloaded", start=start)
    # Both workers apply it (connections are spread over them).
    for _ in range(6):
        assert _bad_commands_until_bye(srv, 3) is True
    for c in open_sessions:
        with c:
            _, tagged = c.command("n", "NOOP")
            assert tagged.startswith("n OK"), tagged

    # A broken file is refused and the running config stays.
    start = len(srv.log())
    with open(srv.conf_path, "a") as f:
        f.write("no_such_key = 1\n")
    srv.kill(signal.SIGHUP)
    srv.wait_log(r"master\[\d+\] error: reload failed", start=start)
    time.sleep(0.3)
    assert srv.running()
    for _ in range(4):
        assert _bad_commands_until_bye(srv, 3) is True
    with srv.login("alice") as c:
        _, tagged = c.command("n", "NOOP")
        assert tagged.startswith("n OK")


def test_sighup_log_level(herald_server):
    srv = herald_server(log_level="info")
    with srv.login("alice") as c:
        c.command("n1", "NOOP")
    assert " debug: " not in srv.log()
    start = len(srv.log())
    srv.write_config(log_level="debug")
    srv.kill(signal.SIGHUP)
    srv.wait_log(r"worker1\[\d+\] info: configuration reloaded", start=start)
    srv.wait_log(r"worker0\[\d+\] info: configuration reloaded", start=start)
    for _ in range(4):
        with srv.login("alice") as c:
            c.command("n2", "NOOP")
    srv.wait_log(r"worker\d\[\d+\] debug: ", start=start)


def _worker_pids(srv):
    pids = {}
    for m in re.finditer(r"worker (\d+) started pid=(\d+)", srv.log()):
        pids[int(m.group(1))] = int(m.group(2))
    return pids


def _pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.timeout_s(60)
def test_killed_worker_is_restarted(herald_server):
    srv = herald_server(workers=2)
    srv.expect_worker_deaths = True
    srv.wait_log(r"worker 1 started pid=\d+")
    pids = _worker_pids(srv)
    assert sorted(pids) == [0, 1], pids
    victim = pids[0]
    # The session on the victim dies with it; others go on.
    conns = [srv.login("alice") for _ in range(6)]
    os.kill(victim, signal.SIGKILL)
    # Connections made while worker 0 is down queue on its socket.
    pending = [srv.raw(greeting=False) for _ in range(10)]
    srv.wait_log(r"master\[\d+\] error: worker 0 pid=%d killed by signal 9"
                 % victim)
    srv.wait_log(r"worker 0 started pid=(?!%d\b)\d+" % victim)
    new = _worker_pids(srv)
    assert new[0] != victim and new[1] == pids[1], (pids, new)
    assert _pid_alive(new[0]) and not _pid_alive(victim)
    for c in pending:
        with c:
            greeting = c.readline(timeout=10)
            assert greeting.startswith("* OK "), greeting
            _, tagged = c.command("a", "LOGIN alice %s" % imap_quote(ALICE))
            assert tagged.startswith("a OK"), tagged
    # Sessions on the killed worker are gone (EOF); the others answer.
    for c in conns:
        with c:
            try:
                _, tagged = c.command("n", "NOOP", timeout=5)
            except (EOFError, ConnectionResetError, BrokenPipeError):
                continue
            assert tagged.startswith("n OK"), tagged
    assert srv.running()


def test_sigterm_sends_bye_and_exits_zero(herald_server):
    srv = herald_server(shutdown_timeout=5, auth_failure_delay_ms=1000)
    logged_in = srv.login("alice")
    idle = srv.raw()
    in_literal = srv.raw()
    in_literal.send("a LOGIN {5}\r\n")
    assert in_literal.readline().startswith("+")
    tls = srv.login("bob", kind="tls")
    failing = srv.raw()
    failing.send("f LOGIN alice wrong\r\n")   # answered after 1 s
    time.sleep(0.1)
    t0 = time.monotonic()
    srv.kill(signal.SIGTERM)
    for c in (logged_in, idle, in_literal, tls, failing):
        with c:
            lines = c.expect_eof(timeout=8)
            assert any(l.startswith("* BYE ") for l in lines), lines
            assert lines[-1].startswith("* BYE "), lines
    rc = srv.proc.wait(15)
    elapsed = time.monotonic() - t0
    assert rc == 0, srv.log()[-3000:]
    assert elapsed < 5, "shutdown took %.1fs" % elapsed
    assert re.search(r"master\[\d+\] info: stopped", srv.log())


def test_sigterm_with_logins_pending(herald_server):
    # Logins still waiting when SIGTERM comes: one throttled (its check
    # has not started), one failed and waiting out auth_failure_delay_ms,
    # and one whose client left during that delay.  The worker stops
    # without waiting for them and frees them (a sanitizer build reports
    # a leak otherwise; the teardown checks).
    srv = herald_server(workers=1, shutdown_timeout=5,
                        auth_failure_delay_ms=3000, auth_throttle_failures=1,
                        auth_throttle_window=60, auth_throttle_delay_max=30)
    first = srv.raw(source="127.0.0.2")
    first.send("a LOGIN alice wrong\r\n")   # answered after 3 s
    time.sleep(2.5)
    failing = srv.raw()
    failing.send("f LOGIN alice wrong\r\n")
    with srv.raw(source="127.0.0.3") as gone:
        gone.send("g LOGIN alice wrong\r\n")
        time.sleep(0.1)
    with first:
        _, tagged = first.read_tagged("a")
        assert tagged.startswith("a NO [AUTHENTICATIONFAILED]"), tagged
    # 127.0.0.2 is now throttled for 1 s, even with the right password.
    throttled = srv.raw(source="127.0.0.2")
    throttled.send("t LOGIN alice %s\r\n" % imap_quote(ALICE))
    srv.wait_log(r"login throttled delay_ms=1000")
    t0 = time.monotonic()
    srv.kill(signal.SIGTERM)
    for c in (throttled, failing):
        with c:
            lines = c.expect_eof(timeout=8)
            assert lines and lines[-1].startswith("* BYE "), lines
            assert not any(re.match(r"[tf] ", l) for l in lines), lines
    rc = srv.proc.wait(15)
    elapsed = time.monotonic() - t0
    assert rc == 0, srv.log()[-3000:]
    # Without waiting for the failure delay (2.5 s more).
    assert elapsed < 2, "shutdown took %.1fs" % elapsed


def test_sigterm_idle_server_exits_quickly(herald_server):
    srv = herald_server()
    t0 = time.monotonic()
    rc = srv.stop()
    assert rc == 0
    assert time.monotonic() - t0 < 3
    # The ports are free again.
    import socket
    for port in (srv.imap_port, srv.imaps_port):
        s = socket.socket()
        try:
            s.settimeout(2)
            assert s.connect_ex((HOST, port)) != 0, port
        finally:
            s.close()


# --- embedded defaults ------------------------------------------------------------

@pytest.mark.timeout_s(90)
def test_serve_without_config_creates_demo_user(tmp_path):
    p1, p2 = free_port(), free_port()
    args = ["-o", "imap_listen=%s:%d" % (HOST, p1),
            "-o", "imaps_listen=%s:%d" % (HOST, p2)]
    # Later milestones add listeners with fixed default ports; move them
    # off the defaults too, so parallel test servers never collide.
    probe = subprocess.run([HERALD_BIN, "check-config"], cwd=str(tmp_path),
                           capture_output=True, text=True, timeout=30)
    for key in re.findall(r"^(\w+_listen) = ", probe.stdout, re.M):
        if key not in ("imap_listen", "imaps_listen"):
            args += ["-o", "%s=%s:%d" % (key, HOST, free_port())]
    srv = Server(tmp_path / "cwd", users={}, use_conf=False,
                 settings={"imap_listen": "%s:%d" % (HOST, p1),
                           "imaps_listen": "%s:%d" % (HOST, p2)},
                 args=args)
    srv.imap_port, srv.imaps_port = p1, p2
    srv.data_dir = os.path.join(srv.root, "var")
    os.remove(srv.conf_path)
    try:
        srv.start()
        m = re.search(r"Demo account: user (\S+), password (\S+)",
                      srv.stdout())
        assert m, "no demo account on stdout: %r" % srv.stdout()
        user, password = m.group(1), m.group(2)
        assert user == "demo"
        assert len(password) == 16

        var = srv.data_dir
        for name in ("tls/cert.pem", "tls/key.pem", "passwd",
                     "demo-password"):
            assert os.path.isfile(os.path.join(var, name)), name
        for name in ("tls/key.pem", "passwd", "demo-password"):
            mode = stat.S_IMODE(os.stat(os.path.join(var, name)).st_mode)
            assert mode & 0o077 == 0, (name, oct(mode))
        with open(os.path.join(var, "passwd")) as f:
            assert re.match(r"^demo:\{SHA512-CRYPT\}\$6\$", f.read())
        assert password not in srv.log()

        for kind in ("plain", "tls"):
            c = srv.client(kind)
            typ, _ = c.login(user, password)
            assert typ == "OK"
            c.logout()
        with open(srv.cert_path, "rb") as f:
            cert = f.read()
        assert srv.stop() == 0

        # A second start keeps the account, the password and the
        # certificate.
        srv.launch()
        m2 = re.findall(r"Demo account: user (\S+), password (\S+)",
                        srv.stdout())
        assert m2 == [(user, password)] * 2, m2
        assert len(re.findall(r"created the demo user", srv.log())) == 1
        assert len(re.findall(r"generated a self-signed certificate",
                              srv.log())) == 1
        with open(srv.cert_path, "rb") as f:
            assert f.read() == cert
        c = srv.client("plain")
        assert c.login(user, password)[0] == "OK"
        c.logout()
    finally:
        rc = srv.stop()
    assert rc == 0
    srv.assert_no_sanitizer_reports()
