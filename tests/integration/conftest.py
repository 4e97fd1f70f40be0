"""Fixtures for Herald's integration tests.

    herald_server(**settings)   function-scoped factory: a fresh server
                                with its own temp dir, ports and users
    server                      one server shared by a test module (see
                                the module's SERVER_SETTINGS)

Each server is stopped with SIGTERM at teardown; the teardown fails unless
the master exits 0 within 15 s, no sanitizer report is in its stderr and no
worker died (unless the test set srv.expect_worker_deaths).  With the
shared server, a report or a worker death is also blamed on the test during
which it appeared.  For a sanitizer build, set HERALD_SANITIZERS (as make
check-asan does): RSS bounds are then printed, not checked
(helpers.assert_rss_bound()); leak reports fail like any other.

Every test runs under a SIGALRM watchdog (default 60 s; override with
@pytest.mark.timeout_s(N)), since pytest-timeout is not available.
"""
import os
import resource
import signal
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import helpers  # noqa: E402
from helpers import Server, TestTimeout  # noqa: E402

DEFAULT_TEST_TIMEOUT = 60


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "timeout_s(seconds): per-test watchdog (default %d s)"
        % DEFAULT_TEST_TIMEOUT)
    # The scale test opens 1000+ sockets here and the server inherits
    # the limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 8192 if hard == resource.RLIM_INFINITY else min(8192, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def pytest_collection_modifyitems(session, config, items):
    if not os.access(helpers.HERALD_BIN, os.X_OK):
        skip = pytest.mark.skip(reason="no herald binary at %s (set "
                                "HERALD_BIN)" % helpers.HERALD_BIN)
        for item in items:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _watchdog(request):
    marker = request.node.get_closest_marker("timeout_s")
    seconds = marker.args[0] if marker else DEFAULT_TEST_TIMEOUT

    def fire(signum, frame):
        raise TestTimeout("test exceeded its %d s time limit" % seconds)

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(autouse=True)
def _shared_server_health(request):
    """With the module's shared server, blame a sanitizer report or a
    worker crash on the test during which it appeared."""
    if "server" not in request.fixturenames:
        yield
        return
    srv = request.getfixturevalue("server")
    start = len(srv.log())
    yield
    time.sleep(0.05)
    problems = srv.health_problems(start)
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def _finish(servers):
    """Stop servers; collect problems instead of stopping at the first."""
    problems = []
    for srv in servers:
        if srv.proc is None:
            continue
        try:
            if srv.running():
                rc = srv.stop()
            else:
                srv.stop()
                rc = srv.returncode
            if rc != 0:
                problems.append("herald serve exited with %s; stderr:\n%s"
                                % (rc, srv.log()[-5000:]))
        except AssertionError as e:
            problems.append(str(e))
        try:
            srv.assert_no_sanitizer_reports()
        except AssertionError as e:
            problems.append(str(e))
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def herald_server(tmp_path):
    """Factory: herald_server(settings..., users=None, start=True)."""
    servers = []
    counter = [0]

    def make(users=None, start=True, args=(), **settings):
        counter[0] += 1
        srv = Server(tmp_path / ("srv%d" % counter[0]), settings=settings,
                     users=users, args=args)
        servers.append(srv)
        if start:
            srv.start()
        return srv

    yield make
    _finish(servers)


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    """A server shared by the tests of one module; the module may define
    SERVER_SETTINGS (a dict of config overrides)."""
    settings = getattr(request.module, "SERVER_SETTINGS", {})
    root = tmp_path_factory.mktemp(request.module.__name__.split(".")[-1])
    srv = Server(root / "srv", settings=settings)
    old = signal.signal(signal.SIGALRM, _start_timeout)
    signal.setitimer(signal.ITIMER_REAL, 60)
    try:
        srv.start()
    except BaseException:
        if srv.running():
            srv.stop()
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    yield srv
    _finish([srv])


def _start_timeout(signum, frame):
    raise TestTimeout("server start exceeded 60 s")
