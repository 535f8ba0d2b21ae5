#!/usr/bin/python3
"""Connection-flood benchmark (issue 10): a hostile device on the camera LAN
holds thousands of idle TLS and silent TCP connections open against cleannvr
running under a 1,024-descriptor limit while it records GStreamer's RTSP
server. Measures a legitimate client's login latency (a fresh TLS connection
each time) with and without the flood, and checks the recording for gaps.

    cargo build --release --bin cleannvr
    /usr/bin/python3 tools/flood_bench.py [--bin target/release/cleannvr]

Everything listens on loopback; the attacker uses 127.0.0.2, the legitimate
client 127.0.0.1. Standard library only (plus the project's GStreamer peer,
tests/peers/gst_rtsp_server.py, which needs Debian's python3-gi). Prints a
Markdown summary; scratch data goes to a temporary directory, deleted after.
"""
import argparse
import asyncio
import http.client
import json
import os
import random
import re
import resource
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ATTACKER = "127.0.0.2"
PASSWORD = "flood bench pass"


def rfc3339(t):
    """As the server writes times: milliseconds, UTC."""
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")[:-6] + "Z"


def wait_for(what, limit, f):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        v = f()
        if v:
            return v
        time.sleep(0.2)
    raise SystemExit(f"timed out after {limit} s waiting for {what}")


class Server:
    """cleannvr under `ulimit -n LIMIT`, recording one GStreamer camera."""

    def __init__(self, binary, fd_limit, dirname):
        self.dir = dirname
        self.gst = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(ROOT, "tests/peers/gst_rtsp_server.py"),
             "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.gst.stdout.readline()
        m = re.match(r"ready (\d+)", line)
        if not m:
            raise SystemExit(f"GStreamer peer did not start: {line}")
        self.data = os.path.join(dirname, "data")
        cfg = os.path.join(dirname, "cleannvr.toml")
        with open(cfg, "w") as f:
            f.write(
                '[server]\nlisten = "127.0.0.1:0"\n'
                f'[storage]\ndir = "{self.data}"\nsegment_seconds = 2\nmin_free_bytes = 0\n'
                "export_max_bytes = 0\n"
                f'[[camera]]\nid = "cam"\nurl = "rtsp://127.0.0.1:{m.group(1)}/h264aac"\n')
        subprocess.run([binary, "--config", cfg, "user", "add", "root", "--role", "admin"],
                       input=PASSWORD + "\n", text=True, check=True, capture_output=True)

        def limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))

        self.log_path = os.path.join(dirname, "cleannvr.log")
        self.log = open(self.log_path, "w")
        env = dict(os.environ, RUST_LOG="info,sled=warn", NO_COLOR="1")
        self.proc = subprocess.Popen([binary, "--config", cfg, "run"], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env, preexec_fn=limit)
        url = wait_for("cleannvr to listen", 60, lambda: re.search(
            r"web server listening on https://(\S+)", self.log_text()))
        host, port = url.group(1).rsplit(":", 1)
        self.addr = (host, int(port))
        self.tls = ssl.create_default_context(cafile=os.path.join(self.data, "tls/cert.pem"))

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def fds(self):
        try:
            return len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        except OSError:
            return 0

    def request(self, method, path, body=None, cookie=None):
        """One request on a fresh TLS connection: (status, body, headers, seconds)."""
        t = time.monotonic()
        c = http.client.HTTPSConnection(*self.addr, context=self.tls, timeout=30,
                                        source_address=("127.0.0.1", 0))
        headers = {"content-type": "application/json"} if body is not None else {}
        if cookie:
            headers["cookie"] = cookie
        try:
            c.request(method, path, body=json.dumps(body) if body is not None else None,
                      headers=headers)
            r = c.getresponse()
            data = r.read()
            return r.status, data, r.getheaders(), time.monotonic() - t
        finally:
            c.close()

    def login(self):
        st, body, headers, took = self.request(
            "POST", "/api/login", {"username": "root", "password": PASSWORD})
        if st != 200:
            raise RuntimeError(f"login answered {st}: {body[:200]!r}")
        cookie = next(v for k, v in headers if k.lower() == "set-cookie").split(";")[0]
        return cookie, took

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.gst.terminate()
        self.gst.wait(10)
        self.log.close()


def probe(server, seconds, out, stop_evt=None):
    """A legitimate client: a login, then `GET /api/health`, each on a fresh
    connection, once a second for `seconds`. Appends (login s, health s) or
    an error string to `out`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end and not (stop_evt and stop_evt.is_set()):
        t = time.monotonic()
        try:
            _, login = server.login()
            st, body, _, health = server.request("GET", "/api/health")
            out.append((login, health) if st == 200 else f"health {st}")
        except Exception as e:  # a timeout or refusal is the figure, not a crash
            out.append(f"{type(e).__name__}: {e}")
        time.sleep(max(0.0, 1.0 - (time.monotonic() - t)))


async def hold(server, tls, stop, counts):
    """Holds one attacker connection open until `stop`, reopening it 1-2 s
    after the server closes it. With `tls` it finishes a handshake and then
    says nothing; without, it never starts one."""
    loop = asyncio.get_running_loop()
    while loop.time() < stop:
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(
                *server.addr, local_addr=(ATTACKER, 0),
                ssl=server.tls if tls else None,
                server_hostname="127.0.0.1" if tls else None,
                ssl_handshake_timeout=10 if tls else None), 10)
            counts["tls" if tls else "silent"] += 1
            try:
                await asyncio.wait_for(r.read(1), max(0.0, stop - loop.time()))
            except asyncio.TimeoutError:
                break
            finally:
                w.close()
        except (OSError, asyncio.TimeoutError, ssl.SSLError):
            counts["failed"] += 1
        await asyncio.sleep(1 + random.random())


async def flood(server, n_tls, n_silent, seconds, fd_samples):
    loop = asyncio.get_running_loop()
    stop = loop.time() + seconds
    counts = {"tls": 0, "silent": 0, "failed": 0}
    tasks = [asyncio.ensure_future(hold(server, i < n_tls, stop, counts))
             for i in range(n_tls + n_silent)]
    while loop.time() < stop:
        fd_samples.append(server.fds())
        await asyncio.sleep(0.5)
    await asyncio.gather(*tasks, return_exceptions=True)
    return counts


def summary(samples):
    ok = [s for s in samples if isinstance(s, tuple)]
    errors = [s for s in samples if not isinstance(s, tuple)]
    if not ok:
        return None, errors
    logins = sorted(s[0] for s in ok)
    health = sorted(s[1] for s in ok)
    return {
        "n": len(ok),
        "login_median": statistics.median(logins),
        "login_max": logins[-1],
        "health_median": statistics.median(health),
        "health_max": health[-1],
    }, errors


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", default=os.path.join(ROOT, "target/release/cleannvr"))
    p.add_argument("--fd-limit", type=int, default=1024)
    p.add_argument("--tls", type=int, default=2000, help="idle TLS connections held")
    p.add_argument("--silent", type=int, default=1000, help="silent TCP connections held")
    p.add_argument("--seconds", type=int, default=30, help="flood duration")
    p.add_argument("--baseline", type=int, default=15, help="seconds of probes without flood")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    a = p.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    scratch = tempfile.mkdtemp(prefix="cleannvr-flood-")
    server = None
    try:
        server = Server(a.bin, a.fd_limit, scratch)
        wait_for("a first recorded segment", 150, lambda: any(
            f.endswith(".mp4") for _, _, fs in os.walk(server.data) for f in fs))
        cookie, _ = server.login()

        base = []
        probe(server, a.baseline, base)
        fds_idle = server.fds()

        t0 = time.time()
        during, fd_samples = [], []
        stop_evt = threading.Event()

        def late_probe():
            time.sleep(5)  # let the flood fill every slot it can first
            probe(server, a.seconds - 5, during, stop_evt)

        th = threading.Thread(target=late_probe)
        th.start()
        counts = asyncio.run(flood(server, a.tls, a.silent, a.seconds, fd_samples))
        stop_evt.set()
        th.join()
        t1 = time.time()

        after = []
        probe(server, 5, after)

        # The recording across the flood, once its last segment is indexed.
        path = f"/api/cameras/cam/recordings?start={rfc3339(t0 - 1)}&end={rfc3339(t1)}"

        def covered():
            st, body, _, _ = server.request("GET", path, cookie=cookie)
            v = json.loads(body)
            ranges = v.get("ranges") or []
            return v if ranges and ranges[-1]["end"] >= rfc3339(t1) else None

        rec = wait_for("the flood's last segment", 120, covered)
        _, metrics, _, _ = server.request("GET", "/metrics", cookie=cookie)
        refused = re.search(rb"cleannvr_web_connections_refused_total (\d+)", metrics)
        log = server.log_text()

        b, b_err = summary(base)
        d, d_err = summary(during)
        print(f"## Connection flood, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
        print(f"binary {a.bin}, ulimit -n {a.fd_limit}, attacker {ATTACKER}: "
              f"{a.tls} idle TLS + {a.silent} silent TCP holders for {a.seconds} s; "
              f"load average {os.getloadavg()[0]:.1f}\n")
        print(f"attacker connections opened: {counts['tls']} TLS (handshake done), "
              f"{counts['silent']} silent; {counts['failed']} failed or refused at connect/handshake")
        print(f"server connections refused by the budget (/metrics): "
              f"{refused.group(1).decode() if refused else '?'}")
        print(f"server descriptors: {fds_idle} idle, peak {max(fd_samples or [0])} "
              f"of {a.fd_limit} during the flood")
        print(f"recording across the flood ({rfc3339(t0)} .. {rfc3339(t1)}): "
              f"gaps {rec['gaps']}")
        print(f"'Too many open files' in the log: {log.count('Too many open files')}, "
              f"'out of file descriptors': {log.count('out of file descriptors')}\n")
        print("| legitimate client (127.0.0.1), fresh TLS connection each | without flood | "
              "during flood | ratio |")
        print("|---|---|---|---|")
        if b and d:
            for k, label in [("login_median", "login, median"), ("login_max", "login, max"),
                             ("health_median", "GET /api/health, median"),
                             ("health_max", "GET /api/health, max")]:
                print(f"| {label} | {b[k] * 1000:.0f} ms | {d[k] * 1000:.0f} ms | "
                      f"{d[k] / b[k]:.2f} |")
            print(f"| samples (errors) | {b['n']} ({len(b_err)}) | {d['n']} ({len(d_err)}) | |")
        for e in (b_err + d_err)[:10]:
            print(f"error: {e}")
        a_ok, a_err = summary(after)
        print(f"\nafter the flood: {a_ok and a_ok['n']} logins, errors {a_err[:3]}")
    finally:
        if server:
            server.stop()
            if a.keep:
                print(f"kept {scratch}")
        if not a.keep:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
