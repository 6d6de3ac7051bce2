"""Batch import (issue 8) in headless Chromium and against a live server: four zips (two new
apps, one existing, one bad), one row edited, submitted, the packages on their app pages; peak
memory of a 100-file, ~300 MB import; a server killed during an import's upload or its submission."""
import http.client
import json
import os
import sqlite3
import time

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from conftest import OUTPUT
from test_journey import sign_in
from test_live import api, assert_declared_oversize_refused, files_in, peak_rss_mb, prepare, upload_file
from zips import sample


def shot(driver, name):
    driver.save_screenshot(os.path.join(OUTPUT, name + ".png"))


def rows(server, sql):
    db = sqlite3.connect(os.path.join(server.data, "courier.sqlite"))
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_import_journey(server, browser, tmp_path):
    d = browser
    wait = WebDriverWait(d, 30)
    token = prepare(server)   # virtual domain, app 20171228
    assert upload_file(server, token, sample(str(tmp_path / "first.zip")), "1.0.0.1")[0] == 201
    paths = [sample(str(tmp_path / "30000001.zip"), "30000001"), sample(str(tmp_path / "30000002.zip"), "30000002"),
             sample(str(tmp_path / "20171228.zip"), "20171228")]
    bad = tmp_path / "30000003.zip"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    paths.append(str(bad))

    sign_in(d, server)
    d.find_element(By.ID, "batch-import").click()
    d.find_element(By.ID, "files").send_keys("\n".join(paths))
    shot(d, "20-import-form")
    d.find_element(By.ID, "start-import").click()
    summary = wait.until(EC.presence_of_element_located((By.ID, "import-summary"))).text
    assert "3 ready, 0 created, 1 with errors" in summary, summary
    table = d.find_element(By.ID, "import-table").text
    assert "0.0.0.1" in table and "1.0.0.2" in table, table
    shot(d, "21-import-results")

    # Edit the existing app's row: a bad maximum is refused next to its field, then fixed.
    d.find_element(By.ID, "edit-2").click()
    version = wait.until(EC.presence_of_element_located((By.ID, "version")))
    version.clear()
    version.send_keys("1.0.1.0")
    d.find_element(By.ID, "androidMax").send_keys("x.y")
    d.find_element(By.ID, "save-row").click()
    assert "client version" in wait.until(EC.presence_of_element_located((By.ID, "error-androidMax"))).text.lower()
    assert d.find_element(By.ID, "version").get_attribute("value") == "1.0.1.0", "typed values kept"
    d.find_element(By.ID, "androidMax").clear()
    d.find_element(By.ID, "save-row").click()
    assert "1.0.1.0" in wait.until(EC.presence_of_element_located((By.ID, "import-table"))).text

    d.find_element(By.ID, "confirm").click()
    d.find_element(By.ID, "submit-import").click()
    wait.until(EC.presence_of_element_located((By.ID, "import-done")))
    summary = d.find_element(By.ID, "import-summary").text
    assert "0 ready, 3 created, 1 with errors" in summary, summary
    shot(d, "22-import-submitted")
    for app_id, version in (("30000001", "0.0.0.1"), ("30000002", "0.0.0.1"), ("20171228", "1.0.1.0")):
        d.get(f"{server.url}/apps/{app_id}")
        assert version in d.find_element(By.ID, "packages-table").text, app_id
    shot(d, "23-imported-app")
    assert not files_in(server, "imports") and not files_in(server, "tmp")
    # Every step is in the audit log, whose chain holds.
    d.find_element(By.ID, "nav-audit").click()
    assert "holds" in wait.until(EC.presence_of_element_located((By.ID, "audit-chain"))).text
    log = d.find_element(By.ID, "audit-table").text
    for step in ("import.create", "import.editRow", "import.submit", "app.create", "package.add"):
        assert step in log, step
    shot(d, "24-audit-log")


def multipart_import(server, token, paths, boundary="CourierImport"):
    """Streams files from disk to the import API; returns the open connection and the total length."""
    heads = [f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{os.path.basename(p)}"\r\n\r\n'.encode()
             for p in paths]
    tail = f"--{boundary}--\r\n".encode()
    length = sum(len(h) + os.path.getsize(p) + 2 for h, p in zip(heads, paths)) + len(tail)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
    conn.putrequest("POST", "/api/v1/batch-imports")
    conn.putheader("Authorization", "Bearer " + token)
    conn.putheader("Content-Type", "multipart/form-data; boundary=" + boundary)
    conn.putheader("Content-Length", str(length))
    conn.endheaders()
    return conn, heads, tail


def sized(path, app_id, size):
    """A zip of about `size` bytes of incompressible content for `app_id`."""
    import zipfile
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{app_id}/www/index.html", "<h1>big</h1>")
        z.writestr(f"{app_id}/www/blob.bin", os.urandom(size))
    return path


def send_import(server, token, paths, stop_after=None):
    """Streams the files to the import API; with `stop_after` bytes, stops there and returns."""
    conn, heads, tail = multipart_import(server, token, paths)
    sent = 0
    for h, p in zip(heads, paths):
        conn.send(h)
        with open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                conn.send(chunk)
                sent += len(chunk)
                if stop_after and sent >= stop_after:
                    return conn, None
        conn.send(b"\r\n")
    conn.send(tail)
    r = conn.getresponse()
    return conn, (r.status, json.loads(r.read()))


def test_100_files_of_300mb_keep_peak_memory_under_150mb(server, tmp_path):
    token = prepare(server)
    paths = [sized(str(tmp_path / f"{30000100 + i}.zip"), str(30000100 + i), (3 << 20) - 4096) for i in range(100)]
    total = sum(os.path.getsize(p) for p in paths)
    assert 290 << 20 < total <= 300 << 20, total
    before = peak_rss_mb(server.proc.pid)
    _, (status, body) = send_import(server, token, paths)
    assert status == 201, body
    assert [row["status"] for row in body["rows"]].count("ready") == 100
    peak = peak_rss_mb(server.proc.pid)
    with open(os.path.join(OUTPUT, "import-memory.txt"), "w") as f:
        f.write(f"{len(paths)} files, {total / 1048576:.0f} MB: peak RSS {peak:.0f} MB (before {before:.0f} MB)\n")
    assert peak < 150, f"peak RSS {peak:.0f} MB"
    assert not files_in(server, "tmp")


def test_a_server_killed_during_an_import_leaves_nothing_half_made(server, tmp_path):
    token = prepare(server)
    paths = [sized(str(tmp_path / f"{30000200 + i}.zip"), str(30000200 + i), 2 << 20) for i in range(20)]
    # Killed mid-upload: after a restart no temp file, no import, no folder.
    conn, _ = send_import(server, token, paths, stop_after=15 << 20)
    time.sleep(0.3)
    server.kill()
    conn.close()
    server.start()
    assert not files_in(server, "tmp") and not files_in(server, "imports")
    assert rows(server, "SELECT COUNT(*) FROM batchImport") == [(0,)]

    # Killed during the submission: afterwards every row is created or still waiting, each
    # created row has its package, and submitting again completes the rest.
    _, (status, body) = send_import(server, token, paths)
    assert status == 201, body
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    conn.request("POST", f"/api/v1/batch-imports/{body['id']}/submit", headers={"Authorization": "Bearer " + token})
    time.sleep(1.0)
    server.kill()
    conn.close()
    server.start()
    created = rows(server, "SELECT appId, json_extract(fields, '$.version') FROM batchImportRow WHERE packageId IS NOT NULL")
    packages = rows(server, "SELECT appId, version FROM package")
    assert sorted(created) == sorted(packages), (created, packages)
    assert rows(server, "SELECT status FROM batchImport") == [("open",)] or len(created) == 20
    assert not files_in(server, "tmp")
    blobs = [p for p in files_in(server, "blobs")]
    assert len(blobs) == len(packages), "no blob without its package"
    status, again = api(server, token, "POST", f"/api/v1/batch-imports/{body['id']}/submit")
    assert status == 200 and again["status"] == "done", again
    assert len(rows(server, "SELECT * FROM package")) == 20
    assert not files_in(server, "imports")
    assert rows(server, "PRAGMA integrity_check") == [("ok",)]


def test_an_import_over_300mb_is_refused_whole(server, tmp_path):
    token = prepare(server)
    assert_declared_oversize_refused(server, token, "/api/v1/batch-imports")
    # Streamed without a length (chunked): refused once it passes the limit, nothing kept.
    paths = [sized(str(tmp_path / f"{30000300 + i}.zip"), str(30000300 + i), 40 << 20) for i in range(8)]
    boundary = "CourierImport"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    conn.putrequest("POST", "/api/v1/batch-imports")
    conn.putheader("Authorization", "Bearer " + token)
    conn.putheader("Content-Type", "multipart/form-data; boundary=" + boundary)
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    def chunk(data):
        conn.send(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    try:
        for p in paths:
            chunk(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{os.path.basename(p)}"\r\n\r\n'.encode())
            with open(p, "rb") as f:
                while data := f.read(1 << 20):
                    chunk(data)
            chunk(b"\r\n")
        chunk(f"--{boundary}--\r\n".encode())
        conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass   # the server may stop reading once it has refused
    r = conn.getresponse()
    assert r.status == 413, r.read()[:300]
    assert not files_in(server, "tmp") and not files_in(server, "imports")
    assert rows(server, "SELECT COUNT(*) FROM batchImport") == [(0,)]
