"""Helpers for Herald's integration tests: a server under test, raw IMAP
connections and small utilities.  Standard library only.

Every blocking operation here has a timeout, so a hung server makes a test
fail instead of hanging the suite.
"""
import base64
import imaplib
import os
import re
import signal
import socket
import ssl
import subprocess
import time

HERALD_BIN = os.environ.get("HERALD_BIN") or "/work/main/build/herald"
HERALD_SOURCE = os.environ.get("HERALD_SOURCE") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOST = "127.0.0.1"
IO_TIMEOUT = 10.0          # one socket read or write
START_TIMEOUT = 20.0       # server start until both ports answer
STOP_TIMEOUT = 15.0        # SIGTERM until the master has exited
CMD_TIMEOUT = 30.0         # one "herald user ..." or "check-config" run

# Test accounts.  bob's password needs a quoted string (space, quote and
# backslash), so LOGIN through imaplib exercises quoted-string parsing.
USERS = {
    "alice": "alice-Secret-1",
    "bob": 'hunter 2"\\x',
}

# "make check-asan" sets HERALD_SANITIZERS (e.g. "address,undefined") when
# the binaries under test are built with sanitizers.  ASan's redzones and
# its quarantine (freed memory held back to catch use-after-free) inflate
# a process's RSS by up to several times what the code allocates, so RSS
# bounds are checked in the plain build only (assert_rss_bound()).
SANITIZERS = os.environ.get("HERALD_SANITIZERS", "")

# What a sanitizer or an assertion prints when it fires.
SANITIZER_PATTERNS = (
    "AddressSanitizer",
    "LeakSanitizer",
    "UndefinedBehaviorSanitizer",
    "runtime error:",
    "assertion failed",
)

CAP_RE = re.compile(r"\[CAPABILITY ([^\]]*)\]")


class TestTimeout(Exception):
    """Raised by the per-test watchdog (SIGALRM)."""


_ports_given = set()


def free_port():
    """A loopback TCP port that was free a moment ago, never one this
    process handed out before: the kernel may give the port it just freed
    to the next bind(), and a server's listen addresses must differ."""
    for _ in range(100):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port not in _ports_given:
            _ports_given.add(port)
            return port
    raise AssertionError("no port not handed out before in 100 tries")


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def sasl_plain(user, password, authzid=""):
    return b64(b"%s\0%s\0%s" % (authzid.encode(), user.encode(),
                                 password.encode()))


def imap_quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def caps_of(line):
    """The capability names of a '[CAPABILITY ...]' code or a
    '* CAPABILITY ...' line, upper-cased."""
    m = CAP_RE.search(line)
    if m:
        return m.group(1).upper().split()
    if line.upper().startswith("* CAPABILITY "):
        return line[len("* CAPABILITY "):].upper().split()
    raise AssertionError("no capability list in %r" % line)


def assert_rss_bound(ok, message):
    """Assert a bound on a process's RSS (ok: whether it held), except with
    sanitizers (SANITIZERS), where the measurement is only printed."""
    if SANITIZERS:
        if not ok:
            print("MEASURE not checked (HERALD_SANITIZERS=%s): %s"
                  % (SANITIZERS, message))
        return
    assert ok, message


def wait_until(pred, timeout, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s"
                                 % (timeout, what))
        time.sleep(interval)


def _stat_fields(path):
    """The fields of a /proc stat file after the command name: [0] is the
    state, [2] the process group.  None if it is gone."""
    try:
        with open(path) as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _threads_alive(pid):
    """Whether a thread of process pid has not exited yet."""
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return False
    for tid in tids:
        fields = _stat_fields("/proc/%d/task/%s/stat" % (pid, tid))
        if fields is not None and fields[0] not in ("Z", "X"):
            return True
    return False


def group_pids(pgid):
    """PIDs of the live processes in process group pgid, read from /proc.
    A zombie counts as live while one of its threads is: the main thread
    of a SIGKILLed worker can exit (state Z) while a thread-pool thread
    still finishes an fsync(), and until that thread is gone the process
    keeps its descriptors, listening sockets included."""
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        fields = _stat_fields("/proc/%s/stat" % p)
        if fields is None or int(fields[2]) != pgid:
            continue
        if fields[0] not in ("Z", "X") or _threads_alive(int(p)):
            pids.append(int(p))
    return pids


class RawConn:
    """A raw IMAP connection reading CRLF-terminated lines.

    readline() returns a line without its CRLF and raises EOFError when the
    server closed the connection.  Bytes are decoded as UTF-8 with
    replacement; tests compare ASCII protocol text."""

    def __init__(self, sock, timeout=IO_TIMEOUT):
        self.sock = sock
        self.timeout = timeout
        self.buf = b""
        self.eof = False
        self.sock.settimeout(timeout)

    # --- output

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def send_slowly(self, data, delay=0.005):
        """Write data one byte per send() call."""
        if isinstance(data, str):
            data = data.encode()
        for i in range(len(data)):
            self.send(data[i:i + 1])
            if delay:
                time.sleep(delay)

    # --- input

    def _recv(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError,
                ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
        return data

    def readline(self, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            if self.eof:
                raise EOFError("connection closed; unterminated data %r"
                               % self.buf)
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no line within %.1fs (have %r)"
                                     % (timeout, self.buf))
            try:
                data = self._recv(left)
            except socket.timeout:
                raise socket.timeout("no line within %.1fs (have %r)"
                                     % (timeout, self.buf)) from None
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        assert line.endswith(b"\r"), "line without CR: %r" % line
        return line[:-1].decode("utf-8", "replace")

    def read_tagged(self, tag, timeout=None):
        """Read up to the tagged reply for tag; returns (untagged lines,
        tagged line).  Fails on a tagged reply for another tag."""
        untagged = []
        while True:
            line = self.readline(timeout)
            if line.startswith(tag + " "):
                return untagged, line
            if not (line.startswith("* ") or line.startswith("+")):
                raise AssertionError("unexpected line %r while waiting for "
                                     "tag %s (after %r)"
                                     % (line, tag, untagged))
            untagged.append(line)

    def command(self, tag, text, timeout=None):
        self.send("%s %s\r\n" % (tag, text))
        return self.read_tagged(tag, timeout)

    def expect_eof(self, timeout=None):
        """Wait until the server closes; returns any complete lines it
        sent first."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        lines = []
        while True:
            while b"\n" in self.buf:
                lines.append(self.readline())
            if self.eof:
                assert self.buf == b"", "partial line before EOF: %r" % \
                    self.buf
                return lines
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("connection still open after %.1fs "
                                     "(lines %r)" % (timeout, lines))
            try:
                self.buf += self._recv(left)
            except socket.timeout:
                raise AssertionError("connection still open after %.1fs "
                                     "(lines %r)" % (timeout, lines)) \
                    from None

    def expect_silence(self, duration):
        """Assert that nothing arrives for duration seconds."""
        assert self.buf == b"", "unexpected data %r" % self.buf
        deadline = time.monotonic() + duration
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                data = self._recv(left)
            except socket.timeout:
                return
            raise AssertionError("unexpected data %r (eof=%s)"
                                 % (data, self.eof))

    def starttls(self, ctx, server_hostname=HOST):
        assert self.buf == b"", \
            "server sent data after the STARTTLS reply: %r" % self.buf
        self.sock.settimeout(self.timeout)
        self.sock = ctx.wrap_socket(self.sock,
                                    server_hostname=server_hostname)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Server:
    """One `herald serve` process with its own data directory, config and
    loopback ports."""

    def __init__(self, root, settings=None, users=None, args=(),
                 env=None, binary=None, use_conf=True):
        self.root = str(root)
        self.binary = binary or HERALD_BIN
        self.host = HOST
        self.imap_port = free_port()
        self.imaps_port = free_port()
        self.lmtp_port = free_port()
        self.data_dir = os.path.join(self.root, "data")
        self.conf_path = os.path.join(self.root, "herald.conf")
        self.stderr_path = os.path.join(self.root, "stderr.log")
        self.stdout_path = os.path.join(self.root, "stdout.log")
        self.settings = {
            "data_dir": self.data_dir,
            "imap_listen": "%s:%d" % (HOST, self.imap_port),
            "imaps_listen": "%s:%d" % (HOST, self.imaps_port),
            # Never the default 127.0.0.1:2424, which parallel test
            # servers would share.
            "lmtp_listen": "%s:%d" % (HOST, self.lmtp_port),
            "workers": "2",
            "log_level": "info",
            "demo_user": "no",
            "plaintext_auth": "loopback",
            "auth_failure_delay_ms": "200",
            # Tests fail logins on purpose from 127.0.0.1; only the
            # throttling test wants the throttle.
            "auth_throttle_failures": "1000000",
            "shutdown_timeout": "5",
        }
        self.settings.update({k: str(v) for k, v in (settings or {}).items()})
        self.users = dict(USERS if users is None else users)
        self.args = list(args)
        self.env = env
        self.use_conf = use_conf
        self.expect_worker_deaths = False
        self.proc = None
        self.returncode = None
        self.sanitizer_checked = False
        os.makedirs(self.root, exist_ok=True)
        self.write_config()

    # --- configuration and the CLI

    def write_config(self, **changes):
        self.settings.update({k: str(v) for k, v in changes.items()})
        with open(self.conf_path, "w") as f:
            f.write("# written by the integration tests\n")
            for k, v in self.settings.items():
                f.write("%s = %s\n" % (k, v))

    def herald(self, *args, input=None, timeout=CMD_TIMEOUT, conf=True):
        """Run `herald ARGS -c CONF`; returns the CompletedProcess."""
        cmd = [self.binary] + list(args)
        if conf:
            cmd += ["-c", self.conf_path]
        return subprocess.run(cmd, input=input, capture_output=True,
                              text=True, timeout=timeout, cwd=self.root,
                              env=self.env)

    def add_user(self, name, password, scheme=None):
        args = ["user", "add", name]
        if scheme:
            args += ["-s", scheme]
        r = self.herald(*args, input=password + "\n")
        assert r.returncode == 0, "user add %s failed: %s" % (name, r.stderr)
        return r

    @property
    def passwd_path(self):
        return os.path.join(self.data_dir, "passwd")

    @property
    def cert_path(self):
        return os.path.join(self.data_dir, "tls", "cert.pem")

    # --- process

    def start(self, wait=True):
        for name, pw in self.users.items():
            self.add_user(name, pw)
        self.launch(wait=wait)
        return self

    def launch(self, wait=True):
        cmd = [self.binary, "serve"]
        if self.use_conf:
            cmd += ["-c", self.conf_path]
        cmd += self.args
        self._stderr = open(self.stderr_path, "ab")
        self._stdout = open(self.stdout_path, "ab")
        nofile = getattr(self, "nofile", None)

        def limits():
            # A lower open-file limit for the server (tests of its
            # descriptor budget).
            if nofile is not None:
                import resource
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=self._stdout,
                                     stderr=self._stderr, cwd=self.root,
                                     env=self.env, start_new_session=True,
                                     preexec_fn=limits)
        self.returncode = None
        if wait:
            self.wait_ready()

    @property
    def pid(self):
        return self.proc.pid

    def wait_ready(self, timeout=START_TIMEOUT):
        """Until the master logged "ready" and both ports greet."""
        deadline = time.monotonic() + timeout
        ports = [("imap", self.imap_port), ("imaps", self.imaps_port)]
        last = None
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise AssertionError("herald serve exited with %s during "
                                     "start; stderr:\n%s" % (rc, self.log()))
            if ports and re.search(r"master\[\d+\] info: herald .* ready",
                                   self.log()):
                kind, port = ports[0]
                if self.settings.get(kind + "_listen", "x") == "":
                    ports.pop(0)
                    continue
                try:
                    c = self.raw(tls=(kind == "imaps"), port=port,
                                 timeout=max(0.5, deadline -
                                             time.monotonic()))
                    c.close()
                    ports.pop(0)
                    continue
                except (OSError, EOFError, AssertionError) as e:
                    last = e
            if not ports:
                return
            if time.monotonic() >= deadline:
                raise AssertionError("herald not ready after %.0fs (%r); "
                                     "stderr:\n%s"
                                     % (timeout, last, self.log()))
            time.sleep(0.05)

    def kill(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Signal the master and wait for it; returns the exit status.
        Kills the whole process group if it does not exit in time."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                self.proc.wait(5)
                self.returncode = self.proc.returncode
                self._close_files()
                raise AssertionError("herald did not exit within %.0fs of "
                                     "signal %d; stderr:\n%s"
                                     % (timeout, sig, self.log()[-5000:]))
        self.returncode = self.proc.returncode
        self._close_files()
        # Workers die with the master (PR_SET_PDEATHSIG); make sure none
        # is left behind if that ever fails.
        try:
            os.killpg(self.proc.pid, 0)
            time.sleep(0.5)
            os.killpg(self.proc.pid, signal.SIGKILL)
            leftover = True
        except OSError:
            leftover = False
        assert not leftover, "worker processes outlived the master"
        return self.returncode

    def _close_files(self):
        for f in (getattr(self, "_stderr", None),
                  getattr(self, "_stdout", None)):
            if f is not None and not f.closed:
                f.close()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def group_pids(self):
        """PIDs of the live (not zombie) processes in the server's process
        group: the master and its workers (launch() starts a new
        session, so the group id is the master's pid)."""
        if self.proc is None:
            return []
        return group_pids(self.proc.pid)

    def kill_group(self, sig=signal.SIGKILL, timeout=STOP_TIMEOUT):
        """Send sig to the master and every worker at once (killpg), as a
        crash or the OOM killer would, and wait until none is left.
        Returns the master's exit status (-sig).  The server can then be
        started again on the same data_dir with launch()."""
        if self.proc is None:
            return None
        pgid = self.proc.pid
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout)
        finally:
            self.returncode = self.proc.returncode
            self._close_files()
        # The workers were reparented when the master died; wait until
        # they are gone too, so that nothing writes the data_dir behind
        # the next server's back.
        wait_until(lambda: not group_pids(pgid), timeout,
                   what="the processes of group %d to exit" % pgid)
        return self.returncode

    # --- logs

    def log(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stdout(self):
        try:
            with open(self.stdout_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern, timeout=10.0, count=1, start=0):
        """Wait until pattern (a regex) matched count times in the log
        after offset start; returns the list of matches."""
        rx = re.compile(pattern)

        def found():
            m = list(rx.finditer(self.log(), start))
            return m if len(m) >= count else None
        try:
            return wait_until(found, timeout, what=pattern)
        except AssertionError:
            raise AssertionError("log pattern %r not seen %d times in "
                                 "%.0fs; log:\n%s" % (pattern, count,
                                                       timeout,
                                                       self.log()[-5000:]))

    def health_problems(self, start=0):
        """Sanitizer reports and unexpected worker deaths in the log after
        offset start."""
        text = self.log()[start:]
        problems = []
        for p in SANITIZER_PATTERNS:
            if p in text:
                i = text.index(p)
                problems.append("%r in the server log:\n%s"
                                % (p, text[max(0, i - 2000):i + 6000]))
        if not self.expect_worker_deaths:
            for m in re.finditer(r"^.*worker \d+ pid=\d+ (killed by signal "
                                 r"|exited with status ).*$", text, re.M):
                problems.append("a worker died: %s" % m.group(0))
        return problems

    def assert_no_sanitizer_reports(self):
        problems = self.health_problems()
        text = self.stdout()
        for p in SANITIZER_PATTERNS:
            if p in text:
                problems.append("%r on the server's stdout" % p)
        assert not problems, "\n\n".join(problems)

    # --- clients

    def ssl_context(self, verify=True):
        """A client context that trusts the server's (self-signed)
        certificate and checks the host name."""
        if not verify:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        ctx = ssl.create_default_context(cafile=self.cert_path)
        ctx.check_hostname = True
        return ctx

    def raw(self, tls=False, port=None, timeout=IO_TIMEOUT, greeting=True,
            source=None):
        """A raw connection; tls=True uses the implicit-TLS port.  With
        greeting, the greeting line is read and kept in .greeting.  source
        is another loopback address to connect from (e.g. "127.0.0.2")."""
        if port is None:
            port = self.imaps_port if tls else self.imap_port
        sock = socket.create_connection(
            (HOST, port), timeout=timeout,
            source_address=(source, 0) if source else None)
        if tls:
            try:
                sock = self.ssl_context().wrap_socket(
                    sock, server_hostname=HOST)
            except BaseException:
                sock.close()
                raise
        c = RawConn(sock, timeout)
        c.greeting = None
        if greeting:
            try:
                c.greeting = c.readline()
            except BaseException:
                c.close()
                raise
        return c

    def client(self, kind="plain", timeout=IO_TIMEOUT):
        """An imaplib client: kind is "plain", "starttls" or "tls"."""
        if kind == "tls":
            return imaplib.IMAP4_SSL(HOST, self.imaps_port,
                                     ssl_context=self.ssl_context(),
                                     timeout=timeout)
        c = imaplib.IMAP4(HOST, self.imap_port, timeout=timeout)
        if kind == "starttls":
            c.starttls(ssl_context=self.ssl_context())
        return c

    def login(self, user="alice", password=None, kind="plain"):
        """A raw connection after a successful LOGIN."""
        password = self.users[user] if password is None else password
        c = self.raw(tls=(kind == "tls"))
        _, tagged = c.command("L1", "LOGIN %s %s" % (
            imap_quote(user), imap_quote(password)))
        assert tagged.startswith("L1 OK"), tagged
        return c
