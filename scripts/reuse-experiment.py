#!/usr/bin/env python3
"""Would one Chromium reused for many trials count report-close's failed handshakes as a fresh
Chromium per trial does? (The speed issue: browser reuse is the one lever left for the six
minutes; README, "Browser reuse".)

An experiment, not part of the harness: the browser is reused in the one way that keeps
Chromium's connection prediction on (its default profile; an off-the-record context turns it
off), each trial in a new tab against a new server on a loopback address of its own
(127.0.1.N, with a certificate for that address), since Chromium remembers a click-through per
host. Each trial does report-close's steps (visit, proceed through the warning, revisit twice),
a step ending after 500 ms without a new connection as in the harness. The servers are
Python's ssl (OpenSSL), TLS 1.3, closing after every response, and record every connection's
fate. The first trial of each browser is the fresh one; the others are reused.

    python3 scripts/reuse-experiment.py SESSIONS TRIALS_PER_SESSION [CHROMIUM_ARGUMENT ...]

Arguments after the two numbers go to Chromium as they are (for example
`--enable-features=LoadingPredictorLimitPreconnectSocketCount`). With `WARM_UP=1` in the
environment, each browser first visits another address of its own (127.0.2.N) and stays on its
warning page before its first trial, which then runs in that same tab ("warmed" instead of
"fresh"): is the fresh trial's count a matter of the browser having just started?

Prints one line per trial, `step:retries/failed/idle` per step, then the distribution of each
figure for fresh and reused trials. Needs chromium, chromedriver and openssl on PATH; talks to
loopback only; stops by itself.
"""

import collections
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

QUIET = 0.5
STEPS = ["visit", "proceed", "revisit", "revisit"]
# The harness's flags that keep Chromium quiet (harness/src/browser/chromium.rs), less
# --host-resolver-rules, whose `MAP *` also catches 127.0.1.N (nothing here needs a name).
ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-quic", "--no-first-run", "--no-default-browser-check",
    "--disable-domain-reliability", "--disable-client-side-phishing-detection",
]

events = []  # (time, address, "failed" | "established" | "idle")
lock = threading.Lock()


def record(address, kind):
    with lock:
        events.append((time.time(), address, kind))


def serve(address, tmp):
    """A TLS 1.3 server on `address` (a free port) with a certificate for it; returns its URL."""
    d = os.path.join(tmp, address)
    os.makedirs(d)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", f"{d}/key.pem", "-out", f"{d}/cert.pem", "-days", "2",
         "-subj", "/CN=reuse-experiment", "-addext", f"subjectAltName=IP:{address}"],
        check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(f"{d}/cert.pem", f"{d}/key.pem")
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    listener = socket.socket()
    listener.bind((address, 0))
    listener.listen(64)

    def handle(conn):
        tls = ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        tls.settimeout(5)
        try:
            tls.do_handshake()
        except (ssl.SSLError, OSError):
            record(address, "failed")
            conn.close()
            return
        request = b""
        try:
            while b"\r\n\r\n" not in request:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                request += chunk
        except (ssl.SSLError, OSError):
            pass
        if b"\r\n\r\n" not in request:
            record(address, "idle")
        else:
            body = b"<html><head><title>ok</title></head><body>ok</body></html>"
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            record(address, "established")
        tls.close()

    def accept():
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return f"https://{address}:{listener.getsockname()[1]}/"


def settle(address, start):
    """Waits until no connection to `address` arrived for QUIET seconds (capped at 10 s)."""
    while time.time() - start < 10:
        with lock:
            last = max([t for t, a, _ in events if a == address] + [start])
        idle = time.time() - last
        if idle >= QUIET:
            return
        time.sleep(QUIET - idle)


class WebDriver:
    def __init__(self, base):
        self.base = base

    def __call__(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            return json.load(urllib.request.urlopen(request, timeout=60))["value"]
        except urllib.error.HTTPError as e:
            return {"error": json.load(e)}

    def click(self, css):
        for _ in range(50):
            element = self("POST", "/element", {"using": "css selector", "value": css})
            if "error" not in element:
                self("POST", f"/element/{next(iter(element.values()))}/click", {})
                return
            time.sleep(0.1)
        raise RuntimeError(f"no {css} on the warning page")

    def wait_for_page(self):
        for _ in range(150):
            if self("GET", "/title") == "ok":
                return
            time.sleep(0.1)
        raise RuntimeError("the page never showed")


def trial(driver, url, address):
    """report-close's steps; `retries/failed/idle` per step."""
    figures = []
    for step in STEPS:
        start = time.time()
        if step == "proceed":
            driver.click("#details-button")
            driver.click("#proceed-link")
            driver.wait_for_page()
        else:
            driver("POST", "/url", {"url": url})
        settle(address, start)
        end = time.time()
        with lock:
            window = sorted(e for e in events if e[1] == address and start <= e[0] < end)
        kinds = [k for _, _, k in window]
        failed = kinds.count("failed")
        first_page = kinds.index("established") if "established" in kinds else len(kinds)
        figures.append((kinds[:first_page].count("failed"), failed, kinds.count("idle")))
    return figures


def main():
    sessions, trials, extra = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    warm_up = os.environ.get("WARM_UP") == "1"
    tmp = tempfile.mkdtemp(prefix="reuse-experiment-")
    port_probe = socket.socket()
    port_probe.bind(("127.0.0.1", 0))
    port = port_probe.getsockname()[1]
    port_probe.close()
    chromedriver = subprocess.Popen(["chromedriver", f"--port={port}"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = collections.defaultdict(lambda: collections.defaultdict(collections.Counter))
    n = 0
    try:
        time.sleep(0.5)
        for s in range(sessions):
            driver = WebDriver(f"http://127.0.0.1:{port}")
            args = ARGS + extra + [f"--user-data-dir={tmp}/profile-{s}"]
            caps = {"browserName": "chrome", "pageLoadStrategy": "normal",
                    "goog:chromeOptions": {"args": args}}
            session = driver("POST", "/session", {"capabilities": {"alwaysMatch": caps}})
            driver.base += "/session/" + session["sessionId"]
            if warm_up:
                address = f"127.0.2.{s + 1}"
                start = time.time()
                driver("POST", "/url", {"url": serve(address, tmp)})
                settle(address, start)
            for t in range(trials):
                n += 1
                address = f"127.0.1.{n}"
                url = serve(address, tmp)
                if t > 0:
                    tab = driver("POST", "/window/new", {"type": "tab"})["handle"]
                    driver("DELETE", "/window")
                    driver("POST", "/window", {"handle": tab})
                figures = trial(driver, url, address)
                kind = "reused" if t > 0 else "warmed" if warm_up else "fresh"
                print(f"browser {s} trial {t} ({kind}) {address}: " + " ".join(
                    f"{step}:{r}/{f}/{i}" for step, (r, f, i) in zip(STEPS, figures)), flush=True)
                for k, (step, (r, f, _)) in enumerate(zip(STEPS, figures)):
                    seen[kind][f"{k + 1} {step} retries"][r] += 1
                    seen[kind][f"{k + 1} {step} failed"][f] += 1
            driver("DELETE", "")
    finally:
        chromedriver.terminate()
        chromedriver.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    for kind, figures in seen.items():
        print(f"{kind} trials: value × trials")
        for name in sorted(figures):
            counts = ", ".join(f"{v} × {c}" for v, c in sorted(figures[name].items()))
            print(f"  {name}: {counts}")


if __name__ == "__main__":
    main()
