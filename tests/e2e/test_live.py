"""What only a real server shows: a kill mid-upload, a declared 400 MB body, peak memory."""
import http.client
import json
import os
import socket
import subprocess
import sqlite3
import time

from conftest import BINARY
from zips import large, sample


def api(server, token, method, path, body=None, content_type="application/json"):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    headers = {"Authorization": "Bearer " + token}
    if body is not None:
        headers["Content-Type"] = content_type
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, json.loads(data) if data else None


def prepare(server):
    token = server.courier("token", "create", "--user", "admin", "--scope", "read,upload,admin").stdout.strip()
    assert api(server, token, "PUT", "/api/v1/settings", json.dumps({"virtualDomain": "h5app.example.com"}))[0] == 200
    assert api(server, token, "POST", "/api/v1/apps", json.dumps({"id": "20171228", "name": "Checkout"}))[0] == 201
    return token


def multipart_head(boundary, version):
    fields = {"version": version, "type": "normal", "androidMin": "10.0"}
    head = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items())
    return head + f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p.zip"\r\nContent-Type: application/zip\r\n\r\n'.encode()


def upload_file(server, token, path, version, app_id="20171228"):
    """Streams a zip from disk to the package API, as CI would."""
    boundary = "CourierE2EBoundary"
    head, tail = multipart_head(boundary, version), f"\r\n--{boundary}--\r\n".encode()
    size = os.path.getsize(path)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
    conn.putrequest("POST", f"/api/v1/apps/{app_id}/packages")
    conn.putheader("Authorization", "Bearer " + token)
    conn.putheader("Content-Type", "multipart/form-data; boundary=" + boundary)
    conn.putheader("Content-Length", str(len(head) + size + len(tail)))
    conn.endheaders()
    conn.send(head)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            conn.send(chunk)
    conn.send(tail)
    r = conn.getresponse()
    body = json.loads(r.read())
    conn.close()
    return r.status, body


def package_rows(server):
    db = sqlite3.connect(os.path.join(server.data, "courier.sqlite"))
    try:
        return db.execute("SELECT COUNT(*) FROM package").fetchone()[0]
    finally:
        db.close()


def files_in(server, folder):
    found = []
    for root, _, names in os.walk(os.path.join(server.data, folder)):
        found += [os.path.join(root, n) for n in names]
    return found


def test_kill_mid_upload_leaves_no_half_package(server, tmp_path):
    token = prepare(server)
    zip_path = large(str(tmp_path / "big.zip"), 32)
    boundary = "CourierE2EBoundary"
    head = multipart_head(boundary, "1.0.0.1")
    size = os.path.getsize(zip_path)
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall((f"POST /api/v1/apps/20171228/packages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
               f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(head) + size + 40}\r\n\r\n").encode() + head)
    with open(zip_path, "rb") as f:
        s.sendall(f.read(size // 2))
    deadline = time.time() + 20
    while time.time() < deadline and not any(os.path.getsize(p) > 0 for p in files_in(server, "tmp")):
        time.sleep(0.05)
    assert files_in(server, "tmp"), "the upload was streaming to a temp file"
    server.kill()
    s.close()

    server.start()
    assert files_in(server, "tmp") == [], "temp files are cleaned up on restart"
    assert files_in(server, "blobs") == []
    assert package_rows(server) == 0
    status, app = api(server, token, "GET", "/api/v1/apps/20171228")
    assert status == 200 and app["packages"] == []
    # And the same upload works afterwards.
    assert upload_file(server, token, sample(str(tmp_path / "ok.zip")), "1.0.0.1")[0] == 201


def assert_declared_oversize_refused(server, token, path):
    """A multipart request declaring 400 MB gets 413 before a byte of its body is read."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.putrequest("POST", path)
    conn.putheader("Authorization", "Bearer " + token)
    conn.putheader("Content-Type", "multipart/form-data; boundary=x")
    conn.putheader("Content-Length", str(400 << 20))
    conn.endheaders()
    r = conn.getresponse()
    assert r.status == 413
    assert "300 MB" in json.loads(r.read())["error"]["message"]
    assert files_in(server, "tmp") == []


def test_declared_oversize_upload_is_refused_at_once(server):
    assert_declared_oversize_refused(server, prepare(server), "/api/v1/apps/20171228/packages")


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_200mb_upload_keeps_peak_memory_under_150mb(server, tmp_path):
    token = prepare(server)
    zip_path = large(str(tmp_path / "200mb.zip"), 200)
    status, body = upload_file(server, token, zip_path, "1.0.0.1")
    assert status == 201, body
    assert body["files"] == 26
    peak = peak_rss_mb(server.proc.pid)
    print(f"\npeak RSS after a {os.path.getsize(zip_path) >> 20} MB upload: {peak:.1f} MB")
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "test-output", "memory.txt"), "w") as f:
        f.write(f"{peak:.1f}\n")
    assert peak < 150, f"peak RSS {peak:.1f} MB"


def test_half_sent_headers_are_cut_off_by_the_idle_timeout(make_server):
    server = make_server("--idle-timeout", "2")
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    s.settimeout(10)
    started = time.time()
    assert s.recv(1024) == b"", "the server closes a connection that stops mid-header"
    assert time.time() - started < 8
    s.close()
    # A connection that completes its request is served as usual.
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", "/login")
    assert conn.getresponse().status == 200


def test_a_busy_connection_stays_open_and_an_idle_one_is_closed(make_server):
    """The idle time-out counts the update requests answered on the event loop too: a phone asking
    every half second keeps its connection; one that stops asking loses it after the time-out."""
    server = make_server("--idle-timeout", "1")
    body = b'{"platform":"android","clientVersion":"10","apps":[]}'
    request = (b"POST /client/v1/update HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    s = socket.create_connection(("127.0.0.1", server.port))
    s.settimeout(5)
    for _ in range(6):
        s.sendall(request)
        answer = s.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
        assert b'"data":[]' in answer
        time.sleep(0.5)
    # Two requests in one packet, the second a console page: answered in order.
    s.sendall(request + b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    both = b""
    while b"</html>" not in both:
        chunk = s.recv(65536)
        assert chunk, both[:200]
        both += chunk
    assert both.startswith(b"HTTP/1.1 200") and both.index(b'"data":[]') < both.index(b"<html"), both[:300]
    started = time.time()
    assert s.recv(1024) == b"", "an idle connection is closed"
    assert time.time() - started < 4
    s.close()


def test_a_client_that_never_reads_its_answers_cannot_grow_memory(server):
    """Pipelined update requests from a peer that does not read: the server stops reading it
    once its answers back up, instead of queueing answers without end."""
    body = b'{"platform":"android","clientVersion":"10.2","apps":[{"id":"99999999","version":"0"}]}'
    request = (b"POST /client/v1/update HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + str(len(body)).encode()
               + b"\r\n\r\n" + body)
    before = peak_rss_mb(server.proc.pid)
    s = socket.create_connection(("127.0.0.1", server.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(3)
    batch, sent = request * 1000, 0
    try:
        while sent < 300_000:          # queued, their answers would take ~70 MB and more
            s.sendall(batch)
            sent += 1000
    except socket.timeout:
        pass                           # the server stopped reading us: what we want
    grown = peak_rss_mb(server.proc.pid) - before
    s.close()
    assert sent < 300_000, "the server kept reading a peer that takes no answers"
    assert grown < 40, f"peak RSS grew by {grown:.0f} MB"
    # And it still serves everyone else.
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", "/login")
    assert conn.getresponse().status == 200


def test_data_folder_and_files_are_private(server, tmp_path):
    token = prepare(server)
    assert upload_file(server, token, sample(str(tmp_path / "ok.zip")), "1.0.0.1")[0] == 201
    assert os.stat(server.data).st_mode & 0o777 == 0o700
    for name in ("courier.sqlite", "courier.sqlite-wal", "courier.sqlite-shm"):
        path = os.path.join(server.data, name)
        if os.path.exists(path):
            assert os.stat(path).st_mode & 0o777 == 0o600, name
    blobs = files_in(server, "blobs")
    assert blobs
    for path in blobs:
        assert os.stat(path).st_mode & 0o077 == 0, path


FAILING_FSYNC = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* fsync fails with EIO for files whose name ends with $COURIER_TEST_FSYNC_FAILS; all else is real. */
int fsync(int fd) {
    const char *suffix = getenv("COURIER_TEST_FSYNC_FAILS");
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (suffix && n > 0) {
        path[n] = 0;
        size_t len = strlen(path), slen = strlen(suffix);
        if (len >= slen && strcmp(path + len - slen, suffix) == 0) { errno = EIO; return -1; }
    }
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real(fd);
}
"""


def failing_fsync_library(tmp_path):
    source = tmp_path / "failing_fsync.c"
    source.write_text(FAILING_FSYNC)
    library = tmp_path / "failing_fsync.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(library), str(source), "-ldl"], check=True)
    return str(library)


def test_a_failed_fsync_fails_the_upload_and_leaves_nothing(make_server, tmp_path):
    library = failing_fsync_library(tmp_path)
    for suffix, status, says in ((".upload", 422, "could not save the upload to disk"),
                                 (".amr", 500, "could not save the package to disk")):
        server = make_server(env={"LD_PRELOAD": library, "COURIER_TEST_FSYNC_FAILS": suffix})
        token = prepare(server)
        code, body = upload_file(server, token, sample(str(tmp_path / "ok.zip")), "1.0.0.1")
        assert code == status, body
        assert says in body["error"]["message"], body
        assert "fsync failed" in body["error"]["message"]
        assert files_in(server, "tmp") == [], suffix
        assert files_in(server, "blobs") == [], suffix
        assert package_rows(server) == 0


def test_audit_verify_names_the_first_changed_or_missing_row(server):
    """`courier audit verify` (SPEC §7): 0 while the chain holds; 1 and the row otherwise."""
    prepare(server)   # a few audited changes: settings, an app
    def verify():
        r = subprocess.run([BINARY, "audit", "verify", "--data", server.data], capture_output=True, text=True)
        return r.returncode, r.stdout.strip()
    code, out = verify()
    assert code == 0 and "holds" in out, out
    db = sqlite3.connect(os.path.join(server.data, "courier.sqlite"))
    try:
        db.execute("UPDATE audit SET subject = 'edited' WHERE id = 2")
        db.commit()
        code, out = verify()
        assert code == 1 and "row 2 was changed" in out, out
        db.execute("DELETE FROM audit WHERE id = 2")
        db.commit()
        code, out = verify()
        assert code == 1 and "row 2 is missing" in out, out
    finally:
        db.close()
