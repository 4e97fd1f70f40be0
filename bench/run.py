#!/usr/bin/python3
"""Herald vs Dovecot benchmarks (issue 5), run on demand, never in CI.

Sets up the same users and mail for both servers under a work directory,
starts Herald and Debian's Dovecot (its own temporary config, other
loopback ports, default process model and an imap-hibernate variant), runs
bench/loadgen for each benchmark, measures server memory (RSS and PSS of
every server process from /proc/PID/smaps_rollup), repeats, and writes the
medians with Herald/Dovecot ratios to docs/BENCHMARKS.md.

    bench/run.py --scales 1000 --repeats 3            # small, all four
    bench/run.py --scales 1000,10000,50000,100000     # up to the targets

Only 127.0.0.0/8 is used.  Every run has a timeout.
"""

import argparse
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PASSWORD = "secret"
MIXED_USERS = 100        # users 0..99 hold MIXED_MSGS messages each
MIXED_MSGS = 50
MAX_PUSH_USERS = 10000   # one-idler-per-user push: at most this many users
IDLE_USERS = 10000       # idle capacity: N idlers spread over this many
BIG_USER = "big0"
HIB_TIMEOUT = 2          # imap_hibernate_timeout of the Dovecot variant

PORTS = {
    "herald": {"imap": 3143, "imaps": 3993, "lmtp": 3424},
    "dovecot": {"imap": 4143, "imaps": 4993, "lmtp": 4424},
}


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


# ---- Mail and users ----

def message(i, user, size=1500):
    subj = "bench message %d" % (i % 50)
    body_word = "ordinary"
    if user == BIG_USER and i == 77777:
        subj = "needle-subject found"
    if user == BIG_USER and i == 88888:
        body_word = "needle-body"
    head = ("From: Sender %d <sender%d@bench.invalid>\r\n"
            "To: %s <%s@bench.invalid>\r\n"
            "Subject: %s\r\n"
            "Date: Fri, 27 Nov 2026 10:%02d:%02d +0000\r\n"
            "Message-ID: <%d.%s@bench.invalid>\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
            % (i % 97, i % 97, user, user, subj, (i // 60) % 60, i % 60,
               i, user))
    line = "Lorem ipsum dolor sit amet, %s text line number %d.\r\n"
    body = []
    n = 0
    k = 0
    target = size + (i * 7919) % size
    while n < target:
        s = line % (body_word if k == 7 else "plain", k)
        body.append(s)
        n += len(s)
        k += 1
    return (head + "".join(body)).encode()


def write_maildir(path, user, count):
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, d), exist_ok=True)
    base = 1764000000
    for i in range(count):
        flags = "S" if i % 3 else ""
        name = "%d.M%dP1.bench:2,%s" % (base + i, i, flags)
        with open(os.path.join(path, "cur", name), "wb") as f:
            f.write(message(i, user))


def setup(work, users_total, big_msgs):
    """Users and template mail, then hard-linked copies per server."""
    os.makedirs(work, exist_ok=True)
    stamp = os.path.join(work, "setup.json")
    want = {"users": users_total, "big": big_msgs, "mixed": MIXED_MSGS}
    have = json.load(open(stamp)) if os.path.exists(stamp) else None
    if have == want:
        return
    if have is not None and {**have, "users": want["users"]} == want:
        # Only the number of users changed: rewrite the user lists.
        write_users(work, users_total)
        json.dump(want, open(stamp, "w"))
        return
    log("setup: %d users, big mailbox %d messages" % (users_total, big_msgs))
    for d in ("herald", "dovecot", "tpl"):
        shutil.rmtree(os.path.join(work, d), ignore_errors=True)
    tpl = os.path.join(work, "tpl")
    for u in range(MIXED_USERS):
        write_maildir(os.path.join(tpl, "user%d" % u, "Maildir"),
                      "user%d" % u, MIXED_MSGS)
    write_maildir(os.path.join(tpl, BIG_USER, "Maildir"), BIG_USER,
                  big_msgs)
    os.makedirs(os.path.join(work, "herald", "data", "users"))
    os.makedirs(os.path.join(work, "dovecot", "mail"))
    for u in os.listdir(tpl):
        subprocess.check_call(["cp", "-al", os.path.join(tpl, u),
                               os.path.join(work, "herald", "data", "users",
                                            u)])
        subprocess.check_call(["cp", "-al", os.path.join(tpl, u),
                               os.path.join(work, "dovecot", "mail", u)])
    write_users(work, users_total)
    dmail = os.path.join(work, "dovecot", "mail")
    for u in os.listdir(dmail):
        subprocess.check_call(["chown", "-R", "%d:65534" % uid_of(u),
                               os.path.join(dmail, u)])
    os.chmod(dmail, 0o1777)
    tls = os.path.join(work, "tls")
    if not os.path.exists(os.path.join(tls, "cert.pem")):
        os.makedirs(tls, exist_ok=True)
        subprocess.check_call(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
             "-subj", "/CN=localhost", "-keyout",
             os.path.join(tls, "key.pem"), "-out",
             os.path.join(tls, "cert.pem")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    json.dump(want, open(stamp, "w"))


def write_users(work, users_total):
    with open(os.path.join(work, "passwd"), "w") as f:
        for u in range(users_total):
            f.write("user%d:{PLAIN}%s\n" % (u, PASSWORD))
        f.write("%s:{PLAIN}%s\n" % (BIG_USER, PASSWORD))
    # Dovecot: one uid per user, as on a real multi-user system (its
    # process-per-connection model needs an inotify instance per idler,
    # and the kernel allows only max_user_instances (128 here) per uid).
    dmail = os.path.join(work, "dovecot", "mail")
    with open(os.path.join(work, "dovecot", "userdb"), "w") as f:
        for u in list(range(users_total)) + [BIG_USER]:
            name = u if isinstance(u, str) else "user%d" % u
            f.write("%s::%d:65534::%s/%s\n" % (name, uid_of(name), dmail,
                                               name))


def uid_of(name):
    return 300000 + (int(name[4:]) if name.startswith("user") else 199999)


def evict(path):
    """Drop a tree from the page cache (no root needed: fadvise)."""
    for d, _, files in os.walk(path):
        for f in files:
            try:
                fd = os.open(os.path.join(d, f), os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


# ---- Servers ----

class Server:
    name = ""
    proc = None

    def pids(self):
        """The server's master and all its descendants."""
        children = {}
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % p) as f:
                    st = f.read()
            except OSError:
                continue
            ppid = int(st[st.rindex(")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(p))
        out, todo = [], [self.proc.pid]
        while todo:
            p = todo.pop()
            out.append(p)
            todo.extend(children.get(p, []))
        return out

    def memory(self):
        rss = pss = 0
        pss_ok = True
        pids = self.pids()
        for p in pids:
            got = {}
            try:
                with open("/proc/%d/smaps_rollup" % p) as f:
                    for line in f:
                        k, _, v = line.partition(":")
                        if k in ("Rss", "Pss"):
                            got[k] = int(v.split()[0]) * 1024
            except OSError:
                pss_ok = False
                continue
            rss += got.get("Rss", 0)
            pss += got.get("Pss", 0)
        return {"procs": len(pids), "rss": rss,
                "pss": pss if pss_ok else None}

    def stop(self):
        if self.proc is None:
            return
        old = self.pids()
        try:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        # Children (Dovecot's imap-hibernate with many clients) may
        # outlive the master for a while: wait, then kill them.
        end = time.time() + 30
        while time.time() < end:
            alive = [p for p in old if os.path.exists("/proc/%d" % p)]
            if not alive:
                break
            time.sleep(0.2)
        else:
            for p in alive:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
        time.sleep(0.5)

    def wait_port(self, port, timeout=30):
        import socket
        end = time.time() + timeout
        while time.time() < end:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("%s did not open port %d" % (self.name, port))


class Herald(Server):
    name = "herald"

    def __init__(self, work, binary):
        self.work = work
        self.binary = binary
        self.conf = os.path.join(work, "herald", "herald.conf")
        self.lmtp = True

    def start(self, workers=2):
        d = os.path.join(self.work, "herald")
        p = PORTS["herald"]
        lines = [
            "data_dir = %s" % os.path.join(d, "data"),
            "passwd_file = %s" % os.path.join(self.work, "passwd"),
            "tls_cert = %s" % os.path.join(self.work, "tls", "cert.pem"),
            "tls_key = %s" % os.path.join(self.work, "tls", "key.pem"),
            "imap_listen = 127.0.0.1:%d" % p["imap"],
            "imaps_listen = 127.0.0.1:%d" % p["imaps"],
            "workers = %d" % workers,
            "max_connections = 20000",
            "log_level = warn",
            "demo_user = no",
            "fsync = no",
            # Like Dovecot's imap_hibernate_timeout: an idle user's index
            # is closed after this much quiet.
            "idle_release = %ds" % HIB_TIMEOUT,
        ]
        if self.lmtp:
            lines.append("lmtp_listen = 127.0.0.1:%d" % p["lmtp"])
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        chk = subprocess.run([self.binary, "check-config", "-c", self.conf],
                             capture_output=True, text=True)
        if chk.returncode != 0 and self.lmtp and "lmtp" in chk.stderr:
            log("herald: no lmtp_listen in this build: push by Maildir")
            self.lmtp = False
            return self.start(workers)
        self.proc = subprocess.Popen(
            [self.binary, "serve", "-c", self.conf],
            stdout=open(os.path.join(d, "serve.log"), "a"),
            stderr=subprocess.STDOUT)
        self.wait_port(p["imap"])
        self.workers = workers
        time.sleep(0.3)

    def maildir_fmt(self):
        return os.path.join(self.work, "herald", "data", "users", "%s",
                            "Maildir")

    def mail_root(self, user):
        return os.path.join(self.work, "herald", "data", "users", user)


class Dovecot(Server):
    name = "dovecot"

    def __init__(self, work, hibernate=False):
        self.work = work
        self.hibernate = hibernate
        if hibernate:
            self.name = "dovecot-hib"
        self.lmtp = True

    def start(self, limit=2000):
        d = os.path.join(self.work, "dovecot")
        run = os.path.join(d, "run-" + self.name)
        os.makedirs(run, exist_ok=True)
        p = PORTS["dovecot"]
        limit = max(limit, 1000)
        conf = """
protocols = imap lmtp
listen = 127.0.0.1
base_dir = {run}
state_dir = {run}/state
instance_name = bench-{name}
log_path = {d}/{name}.log
ssl = yes
ssl_cert = <{w}/tls/cert.pem
ssl_key = <{w}/tls/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{d}/mail/%u/Maildir
mail_fsync = never
postmaster_address = postmaster@bench.invalid
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {w}/passwd
}}
userdb {{
  driver = passwd-file
  args = {d}/userdb
}}
default_process_limit = {limit}
default_client_limit = {climit}
default_vsz_limit = 0
protocol imap {{
  mail_max_userip_connections = 1000000
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp}
  }}
}}
""".format(run=run, d=d, w=self.work, name=self.name, limit=limit + 100,
           climit=2 * limit + 1000, imap=p["imap"], imaps=p["imaps"],
           lmtp=p["lmtp"])
        if self.hibernate:
            conf += """
imap_hibernate_timeout = {t}s
service imap {{
  unix_listener imap-master {{
    user = $default_internal_user
  }}
  extra_groups = $default_internal_group
}}
service imap-hibernate {{
  unix_listener imap-hibernate {{
    mode = 0660
    group = $default_internal_group
  }}
}}
""".format(t=HIB_TIMEOUT)
        self.conf = os.path.join(d, self.name + ".conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.proc = subprocess.Popen(
            ["dovecot", "-F", "-c", self.conf],
            stdout=open(os.path.join(d, self.name + ".out"), "a"),
            stderr=subprocess.STDOUT)
        self.wait_port(p["imap"])
        time.sleep(0.5)

    def maildir_fmt(self):
        return os.path.join(self.work, "dovecot", "mail", "%s", "Maildir")

    def mail_root(self, user):
        return os.path.join(self.work, "dovecot", "mail", user)


# ---- Running loadgen ----

def loadgen(args, cmd, server, timeout, on_ready=None):
    full = [args.loadgen] + cmd + ["-r", os.path.join(args.work, "res")]
    log("  $", " ".join(full))
    p = subprocess.Popen(full, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    ready = None
    extra = {}
    deadline = time.time() + timeout
    try:
        if on_ready is not None:
            line = p.stdout.readline()
            if line.startswith("READY "):
                ready = json.loads(line[6:])
                extra = on_ready(ready) or {}
            p.stdin.write("go\n")
            p.stdin.flush()
        p.stdin.close()
        p.stdin = None  # closed: communicate() must not flush it
        out, _ = p.communicate(timeout=max(1, deadline - time.time()))
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        return {"error": "timeout", **extra}
    try:
        res = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": "no output", **extra}
    res.update(extra)
    return res


def procs_for(n):
    return max(1, math.ceil(n / 15000))


def herald_workers(n):
    # 12,500 connections per worker leave a quarter of the 20,000-file
    # limit for the indexes users open while they log in (at 16,667 per
    # worker, 50,000 logins of 10,000 new users got 479-550 NO answers).
    return 2 if n <= 25000 else max(2, math.ceil(n / 12500))


def servers(args):
    out = []
    if "herald" in args.servers:
        h = Herald(args.work, args.herald)
        h.fixed_workers = args.herald_workers
        out.append(h)
    if "dovecot" in args.servers:
        out.append(Dovecot(args.work))
    if "dovecot-hib" in args.servers:
        out.append(Dovecot(args.work, hibernate=True))
    return out


def start(srv, n):
    if isinstance(srv, Herald):
        srv.start(workers=srv.fixed_workers or herald_workers(n))
    else:
        srv.start(limit=n + 200)


def mem_probe(srv, n, base):
    def probe(ready):
        # Both servers get the same settle time once every connection is
        # idling: Dovecot's hibernation and Herald's index release both
        # act after HIB_TIMEOUT seconds of quiet.
        if isinstance(srv, Herald) or srv.hibernate:
            time.sleep(HIB_TIMEOUT + 3)
        m = srv.memory()
        per = {"mem": m, "mem_base": base,
               "rss_per_conn": m["rss"] / n,
               "pss_per_conn": m["pss"] / n if m["pss"] else None,
               "rss_delta_per_conn": (m["rss"] - base["rss"]) / n,
               "pss_delta_per_conn": ((m["pss"] - base["pss"]) / n
                                      if m["pss"] and base["pss"] else None)}
        log("  ready:", json.dumps(ready), "procs=%d rss=%.1fMB pss=%s" % (
            m["procs"], m["rss"] / 2**20,
            "%.1fMB" % (m["pss"] / 2**20) if m["pss"] else "-"))
        return per
    return probe


def bench_idle(args, srv, n, tls, results):
    start(srv, n)
    try:
        base = srv.memory()
        port = PORTS["dovecot" if isinstance(srv, Dovecot) else "herald"]
        users = min(n, IDLE_USERS)
        cmd = ["idle", "-p", str(port["imaps" if tls else "imap"]),
               "-n", str(n), "-u", str(users), "-P", str(procs_for(n)),
               "-T", "120"] + (["-t"] if tls else [])
        r = loadgen(args, cmd, srv, 900, mem_probe(srv, n, base))
    finally:
        srv.stop()
    results.setdefault("idle", []).append(
        {"server": srv.name, "n": n, "tls": tls,
         "workers": getattr(srv, "workers", None), **r})
    return r


def bench_push(args, srv, n, fanout, results):
    start(srv, n)
    try:
        base = srv.memory()
        port = PORTS["dovecot" if isinstance(srv, Dovecot) else "herald"]
        users = 1 if fanout else min(n, MAX_PUSH_USERS)
        cmd = ["push", "-p", str(port["imap"]), "-n", str(n),
               "-u", str(users), "-P", str(procs_for(n)), "-W", "-T", "120",
               "-e", "3" if fanout else "1", "-g", "1000",
               "-E", "50"]
        if not fanout:
            cmd.append("-x")
        if srv.lmtp:
            cmd += ["-l", str(port["lmtp"])]
        else:
            cmd += ["-M", srv.maildir_fmt()]
        r = loadgen(args, cmd, srv, 1200, mem_probe(srv, n, base))
        r["delivery"] = "lmtp" if srv.lmtp else "maildir-rename"
    finally:
        srv.stop()
    results.setdefault("push", []).append(
        {"server": srv.name, "n": n, "fanout": fanout, **r})
    return r


def bench_mixed(args, srv, clients, results):
    start(srv, clients)
    try:
        port = PORTS["dovecot" if isinstance(srv, Dovecot) else "herald"]
        cmd = ["mixed", "-p", str(port["imap"]), "-n", str(clients),
               "-u", str(MIXED_USERS), "-P", "1" if clients <= 10 else "2",
               "-d", str(args.duration), "-T", "30"]
        r = loadgen(args, cmd, srv, args.duration + 120)
    finally:
        srv.stop()
    results.setdefault("mixed", []).append(
        {"server": srv.name, "clients": clients, **r})
    return r


def bench_storm(args, srv, clients, results):
    start(srv, clients)
    try:
        port = PORTS["dovecot" if isinstance(srv, Dovecot) else "herald"]
        cmd = ["storm", "-p", str(port["imap"]), "-n", str(clients),
               "-u", str(MIXED_USERS), "-P", "2", "-d", str(args.duration),
               "-T", "30"]
        r = loadgen(args, cmd, srv, args.duration + 120)
    finally:
        srv.stop()
    results.setdefault("storm", []).append(
        {"server": srv.name, "clients": clients, **r})
    return r


def bench_bigbox(args, srv, results):
    port = PORTS["dovecot" if isinstance(srv, Dovecot) else "herald"]
    cmd = ["bigbox", "-p", str(port["imap"]), "-f", "big", "-b", "0",
           "-T", "600"]
    # First SELECT ever: the index is built (reported apart).
    start(srv, 10)
    try:
        first = loadgen(args, cmd, srv, 1800)
    finally:
        srv.stop()
    results.setdefault("bigbox_first", []).append(
        {"server": srv.name, **first})
    for rep in range(args.repeats):
        evict(srv.mail_root(BIG_USER))
        start(srv, 10)
        try:
            cold = loadgen(args, cmd, srv, 1800)
            warm = loadgen(args, cmd, srv, 1800)
        finally:
            srv.stop()
        results.setdefault("bigbox", []).append(
            {"server": srv.name, "cache": "cold", **cold})
        results.setdefault("bigbox", []).append(
            {"server": srv.name, "cache": "warm", **warm})


# ---- Report ----

def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, unit="", prec=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        return ("%." + str(prec) + "f%s") % (v, unit)
    return "%s%s" % (v, unit)


def ratio(a, b, higher_better):
    if a is None or b is None or a == 0 or b == 0:
        return "-"
    return "%.2fx" % (a / b if higher_better else b / a)


def report(args, results, cmdline):
    seen = {r.get("server") for v in results.values() if isinstance(v, list)
            for r in v if isinstance(r, dict)}
    srvs = [s for s in ("herald", "dovecot", "dovecot-hib") if s in seen]
    L = []
    L.append("# Benchmarks: Herald vs Dovecot\n")
    L.append("Issue 5. Generated by `bench/run.py`; numbers are medians over "
             "the repeats of one run, on this shared, noisy 2-core machine "
             "(server and load generator share the cores). Dovecot is "
             "Debian's %s, started by the benchmark with its own config "
             "(`mail_fsync = never`; Herald: `fsync = no`). \"Ratio\" is "
             "Herald's advantage over Dovecot's default process model: "
             ">1 means Herald is better.\n" % dovecot_version())
    L.append("Command:\n\n```sh\n%s\n```\n" % cmdline)
    L.append("Started %s, took %.0f s. Herald build: `%s`.\n" % (
        results["started"], results["elapsed"],
        results.get("herald", args.herald)))

    def rows(kind, **match):
        return [r for r in results.get(kind, [])
                if all(r.get(k) == v for k, v in match.items())]

    # 1. Idle capacity
    L.append("## 1. Idle capacity and memory\n")
    L.append("N connections LOGIN, SELECT INBOX, IDLE, spread over "
             "min(N, %d) users (plain-text N also over one user per "
             "connection, from the push runs). Memory: sum over all server "
             "processes after every connection is idling (Dovecot "
             "hibernate and Herald: %d s later); per conn = total / N, delta = "
             "(total - before) / N.\n" % (IDLE_USERS, HIB_TIMEOUT + 3))
    L.append("| N | TLS | server | established | failed | dropped | "
             "establish s | procs | RSS/conn | PSS/conn | delta PSS/conn |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in args.scales:
        for tls in (False, True):
            for s in srvs:
                rs = rows("idle", server=s, n=n, tls=tls)
                if not rs:
                    continue
                L.append("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s "
                         "| %s |" % (
                             n, "yes" if tls else "no", s,
                             fmt(med([r.get("established") for r in rs])),
                             fmt(med([r.get("failed") for r in rs])),
                             fmt(med([r.get("dropped") for r in rs])),
                             fmt(med([r.get("establish_s") for r in rs]), "",
                                 2),
                             fmt(med([r.get("mem", {}).get("procs")
                                      for r in rs])),
                             kib(med([r.get("rss_per_conn") for r in rs])),
                             kib(med([r.get("pss_per_conn") for r in rs])),
                             kib(med([r.get("pss_delta_per_conn")
                                      for r in rs]))))
    L.append("")

    # 2. Push latency
    L.append("## 2. Push latency\n")
    L.append("Milliseconds from the end of DATA (LMTP; or the rename into "
             "`new/` where noted) to `* n EXISTS` at each idler; for flags "
             "and expunge, from sending STORE / EXPUNGE on another session "
             "to `* n FETCH` / `* n EXPUNGE`. n = notifications received, "
             "of expected.\n")
    L.append("| case | N | server | kind | n / expected | p50 | p90 | p99 "
             "| max | RSS/conn | PSS/conn |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for fan in (True, False):
        for n in sorted({r["n"] for r in results.get("push", [])}):
            for s in srvs:
                rs = rows("push", server=s, n=n, fanout=fan)
                if not rs:
                    continue
                for k in ("exists", "flags", "expunge"):
                    lat = [r.get("latency_ms", {}).get(k, {}) for r in rs]
                    L.append("| %s | %d | %s | %s | %s / %s | %s | %s | %s | "
                             "%s | %s | %s |" % (
                                 "fan-out (1 mailbox)" if fan else
                                 "1 idler per user", n, s, k + (
                                     " (%s)" % rs[0].get("delivery")
                                     if k == "exists" else ""),
                                 fmt(med([x.get("n") for x in lat])),
                                 fmt(med([x.get("expected") for x in lat])),
                                 fmt(med([x.get("p50") for x in lat]), "", 2),
                                 fmt(med([x.get("p90") for x in lat]), "", 2),
                                 fmt(med([x.get("p99") for x in lat]), "", 2),
                                 fmt(med([x.get("max") for x in lat]), "", 2),
                                 kib(med([r.get("rss_per_conn")
                                          for r in rs])),
                                 kib(med([r.get("pss_per_conn")
                                          for r in rs]))))
    L.append("")

    # 3. Throughput
    L.append("## 3. Throughput\n")
    L.append("Mixed workload, %d s per run: sessions of LOGIN, SELECT, 5-25 "
             "commands drawn with weights FETCH 1:* (UID FLAGS) 26, FETCH "
             "5 headers 20, FETCH a body 16, UID SEARCH (UNSEEN or SUBJECT) "
             "8, STORE +/-\\Seen 18, APPEND 6, STORE \\Deleted + EXPUNGE 6, "
             "then LOGOUT; %d users of %d messages. Commands per second "
             "answered OK (all answers in brackets: NO/BAD count there, so "
             "a missing command shows as a gap).\n"
             % (args.duration, MIXED_USERS, MIXED_MSGS))
    L.append("| clients | server | OK cmds/s | (all/s) | NO | BAD | failed "
             "conns | ratio |")
    L.append("|---|---|---|---|---|---|---|---|")
    for c in args.clients:
        base = med([r.get("ok_per_s") for r in rows("mixed", server="dovecot",
                                                    clients=c)])
        for s in srvs:
            rs = rows("mixed", server=s, clients=c)
            if not rs:
                continue
            v = med([r.get("ok_per_s") for r in rs])
            L.append("| %d | %s | %s | (%s) | %s | %s | %s | %s |" % (
                c, s, fmt(v), fmt(med([r.get("cmds_per_s") for r in rs])),
                fmt(med([r.get("no") for r in rs])),
                fmt(med([r.get("bad") for r in rs])),
                fmt(med([r.get("failed") for r in rs])),
                ratio(v, base, True) if s == "herald" else ""))
    L.append("")
    L.append("Per command (median run, %d clients), average ms and "
             "OK/NO/BAD:\n" % max(args.clients))
    c = max(args.clients)
    ops = ["login", "select", "fetch_flags", "fetch_headers", "fetch_body",
           "search", "store", "append", "store_deleted", "expunge",
           "logout"]
    L.append("| command | " + " | ".join(srvs) + " |")
    L.append("|---|" + "---|" * len(srvs))
    for op in ops:
        cells = []
        for s in srvs:
            rs = rows("mixed", server=s, clients=c)
            if not rs:
                cells.append("-")
                continue
            o = [r.get("ops", {}).get(op, {}) for r in rs]
            cells.append("%s ms (%s/%s/%s)" % (
                fmt(med([x.get("avg_ms") for x in o]), "", 2),
                fmt(med([x.get("ok") for x in o])),
                fmt(med([x.get("no") for x in o])),
                fmt(med([x.get("bad") for x in o]))))
        L.append("| %s | %s |" % (op, " | ".join(cells)))
    L.append("")
    L.append("Login storm: each client connects, LOGIN, LOGOUT, closes, "
             "again, for %d s.\n" % args.duration)
    L.append("| clients | server | connections/s | failed | ratio |")
    L.append("|---|---|---|---|---|")
    for c in args.storm_clients:
        base = med([r.get("conns_per_s") for r in rows("storm",
                                                       server="dovecot",
                                                       clients=c)])
        for s in srvs:
            rs = rows("storm", server=s, clients=c)
            if not rs:
                continue
            v = med([r.get("conns_per_s") for r in rs])
            L.append("| %d | %s | %s | %s | %s |" % (
                c, s, fmt(v), fmt(med([r.get("failed") for r in rs])),
                ratio(v, base, True) if s == "herald" else ""))
    L.append("")

    # 4. Big mailbox
    L.append("## 4. Big mailbox\n")
    L.append("INBOX of %d messages (1.5-3 KB). \"first\" is the very first "
             "SELECT after the Maildir was filled (both servers build their "
             "index then). Cold: server restarted and the user's files "
             "evicted from the page cache (posix_fadvise DONTNEED; dropping "
             "all caches needs privileges we lack); warm: the same commands "
             "again on a new connection. Milliseconds.\n" % args.big)
    steps = ["select", "fetch_uid_flags", "search_header", "search_body",
             "fetch_1000_envelopes"]
    L.append("| step | cache | " + " | ".join(srvs) + " | ratio |")
    L.append("|---|---|" + "---|" * len(srvs) + "---|")
    for st in steps:
        for cache in ("first", "cold", "warm"):
            vals = {}
            cells = []
            for s in srvs:
                if cache == "first":
                    rs = rows("bigbox_first", server=s)
                else:
                    rs = rows("bigbox", server=s, cache=cache)
                ok = [r.get("steps", {}).get(st, {}) for r in rs]
                v = med([x.get("ms") for x in ok if x.get("status") == "OK"])
                bad = [x.get("status") for x in ok if x.get("status") != "OK"]
                vals[s] = v
                cells.append(fmt(v, "", 1) + (" (%s)" % bad[0] if bad
                                              else ""))
            if all(c == "-" for c in cells):
                continue
            L.append("| %s | %s | %s | %s |" % (
                st, cache, " | ".join(cells),
                ratio(vals.get("herald"), vals.get("dovecot"), False)))
    L.append("")
    L.append(targets(results))
    notes = os.path.join(ROOT, "bench", "findings.md")
    if os.path.exists(notes):
        L.append(open(notes).read())
    return "\n".join(L) + "\n"


def kib(v):
    return "-" if v is None else "%.1f KiB" % (v / 1024)


def dovecot_version():
    try:
        return "dovecot " + subprocess.run(
            ["dovecot", "--version"], capture_output=True,
            text=True).stdout.strip()
    except OSError:
        return "dovecot"


def targets(results):
    """The issue's targets, from what was measured."""
    def rows(kind, **m):
        return [r for r in results.get(kind, [])
                if all(r.get(k) == v for k, v in m.items())]
    out = ["## Targets\n", "| target | measured | met? |", "|---|---|---|"]
    idle = rows("idle", server="herald", tls=False)
    if idle:
        top = max(r["n"] for r in idle)
        rs = rows("idle", server="herald", tls=False, n=top)
        est = med([r.get("established") for r in rs])
        fail = med([r.get("failed") for r in rs])
        out.append("| 100,000 idlers held, no failures | %d: %s established, "
                   "%s failed | %s |" % (top, fmt(est), fmt(fail),
                                         "yes" if top >= 100000 and fail == 0
                                         and est == top else "no"))
    for tls, lim in ((False, 4096), (True, 16384)):
        rs = rows("idle", server="herald", tls=tls)
        if rs:
            top = max(r["n"] for r in rs)
            v = med([r.get("pss_per_conn") or r.get("rss_per_conn")
                     for r in rows("idle", server="herald", tls=tls, n=top)])
            out.append("| <= %d KiB per idle %s conn | %s at N=%d (PSS) | %s |"
                       % (lim // 1024, "TLS" if tls else "plain", kib(v), top,
                          "yes" if v is not None and v <= lim else "no"))
    for fan, n_want, lim in ((False, None, 10.0), (True, 10000, 100.0)):
        allr = rows("push", server="herald", fanout=fan)
        # Only runs where (almost) every notification arrived count.
        rs = [r for r in allr
              if r.get("latency_ms", {}).get("exists", {}).get("n", 0) >=
              0.99 * max(1, r.get("latency_ms", {}).get("exists", {}).get(
                  "expected", 1))]
        broken = sorted({r["n"] for r in allr} - {r["n"] for r in rs})
        if n_want:
            rs = [r for r in rs if r["n"] >= n_want] or rs
        if rs:
            n = max(r["n"] for r in rs)
            v = med([r.get("latency_ms", {}).get("exists", {}).get("p99")
                     for r in rs if r["n"] == n])
            out.append("| push p99 < %g ms (%s) | %s ms at N=%d%s | %s |" % (
                lim, "fan-out" if fan else "1 idler per user", fmt(v, "", 2),
                n, "; incomplete (failed deliveries or lost notifications) "
                "at N=%s" % ",".join(map(str, broken)) if broken else "",
                "yes" if v is not None and 0 <= v < lim and not broken and
                (not n_want or n >= n_want) else
                "at N=%d only" % n if v is not None and 0 <= v < lim
                else "no"))
    for c in sorted({r["clients"] for r in results.get("mixed", [])}):
        h = med([r.get("ok_per_s") for r in rows("mixed", server="herald",
                                                 clients=c)])
        d = med([r.get("ok_per_s") for r in rows("mixed", server="dovecot",
                                                 clients=c)])
        if h is not None and d:
            out.append("| throughput >= 2x Dovecot (%d clients) | %.2fx | %s "
                       "|" % (c, h / d, "yes" if h >= 2 * d else "no"))
    for st in ("select", "fetch_uid_flags", "search_header", "search_body",
               "fetch_1000_envelopes"):
        for cache in ("cold", "warm"):
            def v(s):
                return med([r.get("steps", {}).get(st, {}).get("ms")
                            for r in rows("bigbox", server=s, cache=cache)
                            if r.get("steps", {}).get(st, {}).get("status")
                            == "OK"])
            h, d = v("herald"), v("dovecot")
            if h is None and d is None:
                continue
            out.append("| big mailbox %s (%s) >= 2x faster | %s | %s |" % (
                st, cache, ratio(h, d, False) if h and d else
                "Herald: %s" % fmt(h), "yes" if h and d and d >= 2 * h
                else "no"))
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--work", default="/tmp/herald-bench")
    ap.add_argument("--herald", default=os.path.join(ROOT, "build-bench",
                                                     "herald"))
    ap.add_argument("--loadgen", default=os.path.join(ROOT, "build-bench",
                                                      "bench", "loadgen"))
    ap.add_argument("--scales", default="1000",
                    help="idle/push N, comma-separated")
    ap.add_argument("--tls-scales", default=None,
                    help="TLS idle N (default: --scales)")
    ap.add_argument("--dovecot-max", type=int, default=10000,
                    help="largest N tried on Dovecot (process per conn)")
    ap.add_argument("--fanout-max", type=int, default=10000)
    ap.add_argument("--herald-workers", type=int, default=0,
                    help="fixed Herald workers (default: 2, or N/16667)")
    ap.add_argument("--clients", default="10,100")
    ap.add_argument("--storm-clients", default="50")
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--big", type=int, default=100000)
    ap.add_argument("--servers", default="herald,dovecot,dovecot-hib")
    ap.add_argument("--only", default="idle,push,mixed,storm,bigbox",
                    help="benchmarks to run, comma-separated: idle, push "
                    "(or push-user / push-fanout for one of its two "
                    "cases), mixed, storm, bigbox")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs",
                                                  "BENCHMARKS.md"))
    ap.add_argument("--results", default=None,
                    help="JSON results file (default WORK/results.json)")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite the report from the results file")
    ap.add_argument("--merge", action="store_true",
                    help="add to the results file instead of replacing it")
    args = ap.parse_args()
    args.scales = [int(x) for x in args.scales.split(",")]
    args.tls_scales = ([int(x) for x in args.tls_scales.split(",")]
                       if args.tls_scales else args.scales)
    args.clients = [int(x) for x in args.clients.split(",")]
    args.storm_clients = [int(x) for x in args.storm_clients.split(",")]
    args.servers = args.servers.split(",")
    only = args.only.split(",")
    resfile = args.results or os.path.join(args.work, "results.json")
    cmdline = "bench/run.py " + " ".join(sys.argv[1:])

    if args.report_only:
        results = json.load(open(resfile))
        cmdline = "\n".join(results.get("commands", [cmdline]))
        with open(args.out, "w") as f:
            f.write(report(args, results, cmdline))
        return
    users_total = max(min(max(args.scales), MAX_PUSH_USERS), MIXED_USERS,
                      min(max(args.scales), IDLE_USERS))
    setup(args.work, users_total, args.big)
    results = {}
    if args.merge and os.path.exists(resfile):
        results = json.load(open(resfile))
        results.setdefault("commands", []).append(cmdline)
        cmdline = "\n".join(results["commands"])
    else:
        results["commands"] = [cmdline]
    results["herald"] = args.herald
    results["started"] = results.get("started",
                                     time.strftime("%Y-%m-%d %H:%M:%S"))
    t0 = time.time()
    results.setdefault("elapsed", 0)

    def save():
        results["elapsed"] += time.time() - t0
        json.dump(results, open(resfile, "w"), indent=1)
        with open(args.out, "w") as f:
            f.write(report(args, results, cmdline))
        results["elapsed"] -= time.time() - t0

    srvs = servers(args)
    try:
        for rep in range(args.repeats):
            for srv in srvs:
                if "mixed" in only:
                    for c in args.clients:
                        log("mixed", srv.name, c, "rep", rep)
                        bench_mixed(args, srv, c, results)
                if "storm" in only:
                    for c in args.storm_clients:
                        log("storm", srv.name, c, "rep", rep)
                        bench_storm(args, srv, c, results)
            save()
        for n in args.scales:
            reps = args.repeats if n <= 1000 else 1
            for rep in range(reps):
                for srv in srvs:
                    if isinstance(srv, Dovecot) and n > args.dovecot_max:
                        continue
                    if "idle" in only:
                        log("idle plain", srv.name, n, "rep", rep)
                        bench_idle(args, srv, n, False, results)
                        if n in args.tls_scales:
                            log("idle tls", srv.name, n, "rep", rep)
                            bench_idle(args, srv, n, True, results)
                    if ("push" in only or "push-user" in only) and \
                            n <= MAX_PUSH_USERS:
                        log("push per-user", srv.name, n, "rep", rep)
                        bench_push(args, srv, n, False, results)
                    if ("push" in only or "push-fanout" in only) and \
                            n <= args.fanout_max:
                        log("push fan-out", srv.name, n, "rep", rep)
                        bench_push(args, srv, n, True, results)
                save()
        if "bigbox" in only:
            for srv in srvs:
                if srv.name == "dovecot-hib":
                    continue
                log("bigbox", srv.name)
                bench_bigbox(args, srv, results)
            save()
    finally:
        for s in srvs:
            s.stop()
        save()
    log("wrote", args.out)


if __name__ == "__main__":
    main()
