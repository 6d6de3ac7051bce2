"""Measures what the security review's denial-of-service findings cost a running Courier.

    python3 bench/abuse.py BINARY      # starts BINARY on a fresh data dir and a free port

1. Multipart transport padding: one upload whose boundary is followed by 16 MiB of '\\r'.
   Prints the request's wall time and the server's CPU seconds for it.
2. Sign-in burst: 40 parallel sign-ins for one name from one address, the right password
   last among them. Prints how many were checked (401) or throttled (429/503), whether the
   right one signed in, and the latency of a static file fetched meanwhile.
"""
import concurrent.futures
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def request(port, method, path, body=b"", headers=None, timeout=120):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict(r.getheaders()), data


def sign_in_attempt(port, password):
    status, headers, body = request(port, "GET", "/login")
    cookie = (headers.get("Set-Cookie") or "").split(";")[0]
    m = re.search(rb'name="csrf" value="([^"]*)"', body)
    token = m.group(1).decode() if m else ""
    form = urllib.parse.urlencode({"csrf": token, "name": "admin", "password": password, "next": "/apps"})
    status, _, _ = request(port, "POST", "/login", form.encode(),
                           {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
    return status


def main(binary):
    data = tempfile.mkdtemp(prefix="courier-abuse-")
    port = free_port()
    subprocess.run([binary, "user", "add", "admin", "--role", "admin", "--data", data],
                   input="the-right-password\n", text=True, check=True, capture_output=True)
    token = subprocess.run([binary, "token", "create", "--user", "admin", "--scope", "read,upload,admin", "--data", data],
                           text=True, check=True, capture_output=True).stdout.strip()
    server = subprocess.Popen([binary, "serve", "--data", data, "--port", str(port)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                request(port, "GET", "/login", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        auth = {"Authorization": "Bearer " + token}
        request(port, "PUT", "/api/v1/settings", json.dumps({"virtualDomain": "h5app.example.com"}).encode(), auth)
        request(port, "POST", "/api/v1/apps", json.dumps({"id": "20171228", "name": "Checkout"}).encode(), auth)

        body = b"--B" + b"\r" * (16 << 20)
        cpu0, t0 = cpu_seconds(server.pid), time.time()
        status, _, _ = request(port, "POST", "/api/v1/apps/20171228/packages", body,
                               dict(auth, **{"Content-Type": "multipart/form-data; boundary=B"}), timeout=600)
        print(f"padding: {status} in {time.time() - t0:.2f} s wall, {cpu_seconds(server.pid) - cpu0:.2f} s server CPU")

        latencies, stop = [], threading.Event()

        def fetch_static():
            while not stop.is_set():
                t = time.time()
                request(port, "GET", "/static/courier.css")
                latencies.append(time.time() - t)
                time.sleep(0.02)

        watcher = threading.Thread(target=fetch_static)
        watcher.start()
        passwords = [f"guess-{i}" for i in range(39)] + ["the-right-password"]
        t0 = time.time()
        with concurrent.futures.ThreadPoolExecutor(40) as pool:
            results = list(pool.map(lambda p: sign_in_attempt(port, p), passwords))
        burst = time.time() - t0
        stop.set()
        watcher.join()
        latencies.sort()
        checked = sum(1 for r in results if r in (401, 303))
        print(f"sign-in burst: {burst:.2f} s; {checked} passwords checked, "
              f"{sum(1 for r in results if r in (429, 503))} refused unchecked, right one signed in: {results[-1] == 303}")
        print(f"static file during the burst: {len(latencies)} fetches, median {1000 * latencies[len(latencies) // 2]:.0f} ms, "
              f"max {1000 * latencies[-1]:.0f} ms")
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main(os.path.abspath(sys.argv[1]))
