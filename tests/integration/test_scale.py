"""Many clients at once against two worker processes."""
import asyncio
import re
import time

import pytest

from helpers import HOST, USERS, imap_quote

N_CLIENTS = 1000


async def _client(port, i, connected, all_in, results):
    writer = None
    try:
        try:
            # Retried: a burst of 1000 SYNs may overflow a queue.
            for attempt in range(5):
                try:
                    reader, writer = await asyncio.open_connection(HOST,
                                                                   port)
                    break
                except OSError:
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.2)
            greeting = await reader.readline()
            assert greeting.startswith(b"* OK "), greeting
        finally:
            # Counted even on failure, so that the others are released.
            connected[0] += 1
            if connected[0] == N_CLIENTS:
                all_in.set()
        # Everybody is connected before anybody logs in.
        await all_in.wait()
        user = "alice" if i % 2 == 0 else "bob"
        writer.write(("a%d LOGIN %s %s\r\n" % (i, user, imap_quote(
            USERS[user]))).encode())
        while True:
            line = await reader.readline()
            assert line, "EOF before the LOGIN reply"
            if not line.startswith(b"*"):
                break
        assert line.startswith(b"a%d OK " % i), line
        writer.write(b"b%d LOGOUT\r\n" % i)
        lines = []
        while True:
            line = await reader.readline()
            if not line:
                break
            lines.append(line)
        assert len(lines) == 2 and lines[0].startswith(b"* BYE ") and \
            lines[1].startswith(b"b%d OK " % i), lines
        results[i] = True
    finally:
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass


async def _run_all(port, timeout):
    connected = [0]
    all_in = asyncio.Event()
    results = {}
    tasks = [asyncio.ensure_future(_client(port, i, connected, all_in,
                                           results))
             for i in range(N_CLIENTS)]
    try:
        done = await asyncio.wait_for(
            asyncio.gather(*tasks, return_exceptions=True), timeout)
    except asyncio.TimeoutError:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise AssertionError("timed out: %d connected, %d done"
                             % (connected[0], len(results)))
    errors = [e for e in done if isinstance(e, BaseException)]
    return connected[0], results, errors


@pytest.mark.timeout_s(150)
def test_thousand_concurrent_clients_two_workers(herald_server):
    srv = herald_server(workers=2, auth_failure_delay_ms=200)
    start = len(srv.log())
    t0 = time.monotonic()
    connected, results, errors = asyncio.run(_run_all(srv.imap_port, 100))
    elapsed = time.monotonic() - t0
    assert not errors, "%d clients failed, first: %r" % (len(errors),
                                                        errors[0])
    assert connected == N_CLIENTS
    assert len(results) == N_CLIENTS
    assert elapsed < 90, elapsed

    # Both workers served logins, and there was one log line per login.
    log = srv.log()[start:]
    per_worker = {}
    for m in re.finditer(r"^\S+ (worker\d+)\[(\d+)\] info: session=\S+ "
                         r"ip=127\.0\.0\.1 user=(alice|bob) login "
                         r"method=LOGIN tls=no$", log, re.M):
        per_worker[m.group(1)] = per_worker.get(m.group(1), 0) + 1
    assert sum(per_worker.values()) == N_CLIENTS, per_worker
    assert set(per_worker) == {"worker0", "worker1"}, per_worker
    # SO_REUSEPORT spreads connections; neither worker got nearly all.
    assert min(per_worker.values()) >= N_CLIENTS // 10, per_worker
    # No worker died meanwhile.
    assert "killed by signal" not in log and "exited with status" not in log

    # The server is still healthy.
    with srv.login("alice") as c:
        _, tagged = c.command("n", "NOOP")
        assert tagged.startswith("n OK"), tagged
