"""The client half in Chromium (issue 17): `courier device` installs what Courier releases and
serves it to a browser through its proxy, as a phone's web view would see it; a release and a
rollback are seen on reload after the device's next round; a foreign host gets 502; a package
signed by another key is refused and counted on its task. Screenshots: test-output/6x-*."""
import json
import os
import subprocess
import time
import urllib.request
import zipfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from conftest import BINARY, OUTPUT, ROOT, free_port
from test_live import api, upload_file

APP = "http://20171228.h5app.example.com/www/index.html"


def version_zip(path, words):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("20171228/www/index.html", f"<!doctype html><title>{words}</title><h1 id='v'>{words}</h1><script src='app.js'></script>\n")
        z.writestr("20171228/www/app.js", "document.getElementById('v').dataset.ran = 'yes';\n")
    return path


def proxied(port, url):
    """GET through the device's proxy: status, X-Courier-Source, body."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": f"http://127.0.0.1:{port}"}))
    try:
        with opener.open(url, timeout=10) as r:
            return r.status, r.headers.get("X-Courier-Source"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("X-Courier-Source"), e.read().decode()


def chromium(port):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
                f"--proxy-server=http://127.0.0.1:{port}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def wait_for(log_path, words, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        with open(log_path) as f:
            if words in f.read():
                return
        time.sleep(0.2)
    with open(log_path) as f:
        raise AssertionError(f"the device never said {words!r}:\n{f.read()}")


def push_official(env, version, folder):
    """`courier push` of a folder of app 20171228 released officially at once; its JSON answer."""
    pushed = subprocess.run([BINARY, "push", "--app", "20171228", "--version", version, "--main-url", "/www/index.html",
                             "--android-min", "1.0", "--download-policy", "all", "--install-policy", "preload",
                             "--release", "official", "--json", str(folder)], env=env, capture_output=True, text=True)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    return json.loads(pushed.stdout)

def test_a_release_and_a_rollback_reach_a_browser_through_courier_device(server, browser, tmp_path):
    token = server.courier("token", "create", "--user", "admin", "--scope", "read,upload,release,admin").stdout.strip()
    assert api(server, token, "PUT", "/api/v1/settings", json.dumps({"virtualDomain": "h5app.example.com", "updateReqRate": 0}))[0] == 200
    status, key = api(server, token, "POST", "/api/v1/settings/signing-key/generate")
    assert status == 201
    pem = tmp_path / "pub.pem"
    pem.write_text(key["publicKey"])
    assert api(server, token, "POST", "/api/v1/apps", json.dumps({"id": "20171228", "name": "Checkout"}))[0] == 201
    assert upload_file(server, token, version_zip(str(tmp_path / "1.zip"), "version one"), "1.0.0.1")[0] == 201
    assert api(server, token, "POST", "/api/v1/apps/20171228/packages/1.0.0.1/tasks", json.dumps({"type": "official"}))[0] == 201

    # One round, as QA would run it: words, exit 0 (the package installs lazily: when the app is opened).
    once = subprocess.run([BINARY, "device", "--server", server.url, "--public-key", str(pem), "--data", str(tmp_path / "qa"), "--once"],
                          capture_output=True, text=True, timeout=60)
    assert once.returncode == 0, once.stdout + once.stderr
    assert "20171228 1.0.0.1: downloaded; installs when the app is opened (lazy)." in once.stdout, once.stdout

    port = free_port()
    log = tmp_path / "device.log"
    device = subprocess.Popen([BINARY, "device", "--server", server.url, "--public-key", str(pem), "--data", str(tmp_path / "dev"),
                               "--proxy-port", str(port)], stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=ROOT)
    d = None
    try:
        wait_for(log, "Proxy on")
        wait_for(log, "1.0.0.1: downloaded")
        assert proxied(port, APP)[:2] == (200, "package 1.0.0.1"), "opening the app installs it"
        code, source, body = proxied(port, "http://20171228.h5app.example.com/www/missing.css")
        assert source == "fallback" and code == 404, (code, source)
        code, source, body = proxied(port, "http://example.org/")
        assert code == 502 and "not an app's virtual host" in body, "never an open proxy"

        d = chromium(port)
        d.get(APP)
        assert d.find_element("id", "v").text == "version one"
        assert d.find_element("id", "v").get_attribute("data-ran") == "yes", "the package's script ran"
        d.save_screenshot(os.path.join(OUTPUT, "60-device-version-one.png"))
        status = subprocess.run([BINARY, "device", "status", "--data", str(tmp_path / "dev"), "--json"], capture_output=True, text=True)
        app = json.loads(status.stdout)["apps"][0]
        assert app["installed"] == "1.0.0.1" and app["onTrial"] is False, "the entry page loaded through the proxy: trial passed"

        # A new release arrives with the device's next round; a reload shows it.
        assert upload_file(server, token, version_zip(str(tmp_path / "2.zip"), "version two"), "1.0.0.2")[0] == 201
        status, task = api(server, token, "POST", "/api/v1/apps/20171228/packages/1.0.0.2/tasks", json.dumps({"type": "official"}))
        wait_for(log, "1.0.0.2: downloaded")
        d.refresh()
        assert d.find_element("id", "v").text == "version two"
        d.save_screenshot(os.path.join(OUTPUT, "61-device-version-two.png"))

        # Rolled back: the device goes back to 1.0.0.1.
        assert api(server, token, "POST", f"/api/v1/tasks/{task['id']}/rollback")[0] == 200
        wait_for(log, "1.0.0.1: rolled back to this version")
        d.refresh()
        assert d.find_element("id", "v").text == "version one"
        d.save_screenshot(os.path.join(OUTPUT, "62-device-rolled-back.png"))

        # 1.0.0.3 arrives; opened (a script first, so its entry page has not loaded) it is on
        # trial; the host reports it broken: 1.0.0.1 comes back, the server counts it and never
        # offers 1.0.0.3 to this device again.
        assert upload_file(server, token, version_zip(str(tmp_path / "3.zip"), "version three"), "1.0.0.3")[0] == 201
        status, third = api(server, token, "POST", "/api/v1/apps/20171228/packages/1.0.0.3/tasks", json.dumps({"type": "official"}))
        wait_for(log, "1.0.0.3: downloaded")
        assert proxied(port, "http://20171228.h5app.example.com/www/app.js")[1] == "package 1.0.0.3"
        broken = subprocess.run([BINARY, "device", "broken", "20171228", "--data", str(tmp_path / "dev")], capture_output=True, text=True)
        assert broken.returncode == 0 and "within 5 seconds" in broken.stdout, broken.stdout + broken.stderr
        wait_for(log, "1.0.0.3: given up (reported broken); 1.0.0.1 is back.")
        d.refresh()
        assert d.find_element("id", "v").text == "version one"
        d.save_screenshot(os.path.join(OUTPUT, "63-device-broken-back-to-one.png"))
        deadline = time.time() + 30
        while time.time() < deadline:
            events = api(server, token, "GET", f"/api/v1/tasks/{third['id']}")[1]["events"]
            if events.get("trial_failed") == 1 and events.get("failed") == 1:
                break
            time.sleep(0.5)
        assert events.get("trial_failed") == 1 and events.get("failed") == 1, events
        status = json.loads(subprocess.run([BINARY, "device", "status", "--data", str(tmp_path / "dev"), "--json"],
                                           capture_output=True, text=True).stdout)
        assert status["apps"][0]["givenUp"] == ["1.0.0.3"], status
    finally:
        if d:
            d.quit()
        device.terminate()
        device.wait(timeout=10)

    # A device that pins another key refuses the package (exit 3) and the task counts it.
    other = tmp_path / "other"
    subprocess.run(["openssl", "genrsa", "-out", str(other) + ".key", "2048"], check=True, capture_output=True)
    subprocess.run(["openssl", "rsa", "-in", str(other) + ".key", "-pubout", "-out", str(other) + ".pem"], check=True, capture_output=True)
    refused = subprocess.run([BINARY, "device", "--server", server.url, "--public-key", str(other) + ".pem", "--data", str(tmp_path / "x"),
                              "--once", "--json"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    lines = [json.loads(line) for line in refused.stdout.splitlines()]
    assert any(line.get("event") == "verify_failed" for line in lines), refused.stdout
    status, newest = api(server, token, "GET", f"/api/v1/tasks/{third['id']}")   # a new device is offered 1.0.0.3
    assert newest["events"].get("verify_failed") == 1, newest["events"]

    # What the product owner sees on the task page: the devices' reports in words.
    from test_journey import sign_in
    sign_in(browser, server)
    browser.get(f"{server.url}/tasks/{third['id']}")
    reports = browser.find_element("id", "task-events").text
    for words in ("Refused: the signature or a file did not verify verify_failed 1",
                  "Given up on the device: reported broken, or opened without loading trial_failed 1",
                  "Devices that gave this version up (never offered it again) failed 1"):
        assert words in reports, reports
    browser.save_screenshot(os.path.join(OUTPUT, "65-device-reports-on-the-task-page.png"))
    unreachable = subprocess.run([BINARY, "device", "--server", "http://127.0.0.1:1", "--data", str(tmp_path / "y"), "--once"],
                                 capture_output=True, text=True, timeout=60)
    assert unreachable.returncode == 4, unreachable.stdout


class Throttle:
    """A slow road to Courier (about 2 MB/s), passing Range through and noting it: what a phone on
    a poor network sees, slow enough to kill the device in the middle of a download."""

    def __init__(self, port, upstream_port):
        import http.server
        import threading
        self.ranges = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                import http.client
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
                headers = {"Range": self.headers["Range"]} if self.headers.get("Range") else {}
                outer.ranges.append(self.headers.get("Range"))
                conn.request("GET", self.path, headers=headers)
                r = conn.getresponse()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() in ("content-type", "content-length", "content-range", "etag", "accept-ranges"):
                        self.send_header(k, v)
                self.end_headers()
                try:
                    while chunk := r.read(64 * 1024):
                        self.wfile.write(chunk)
                        time.sleep(0.03)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


def test_a_device_killed_in_the_middle_of_a_download_resumes_and_ends_with_the_right_bytes(make_server, tmp_path):
    from zips import large
    throttle_port = free_port()
    server = make_server("--public-url", f"http://127.0.0.1:{throttle_port}")
    throttle = Throttle(throttle_port, server.port)
    try:
        token = server.courier("token", "create", "--user", "admin", "--scope", "read,upload,release,admin").stdout.strip()
        assert api(server, token, "PUT", "/api/v1/settings", json.dumps({"virtualDomain": "h5app.example.com"}))[0] == 200
        assert api(server, token, "POST", "/api/v1/apps", json.dumps({"id": "20171228", "name": "Checkout"}))[0] == 201
        assert upload_file(server, token, large(str(tmp_path / "big.zip"), 24), "1.0.0.1")[0] == 201
        assert api(server, token, "POST", "/api/v1/apps/20171228/packages/1.0.0.1/tasks", json.dumps({"type": "official"}))[0] == 201
        status, app = api(server, token, "GET", "/api/v1/apps/20171228")
        sha = app["packages"][0]["sha256"]
        data = tmp_path / "dev"
        part = data / "downloads" / "20171228-1.0.0.1.amr.part"
        args = [BINARY, "device", "--server", server.url, "--data", str(data), "--once"]
        first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline and not (part.exists() and part.stat().st_size > 4 << 20):
            time.sleep(0.05)
        first.kill()   # SIGKILL, mid-download
        first.wait()
        kept = part.stat().st_size
        assert 4 << 20 < kept < 24 << 20, kept
        # Restarted on a terminal: the download resumes and says how far it is on one line.
        import pty
        import threading
        terminal, tty = pty.openpty()
        seen = bytearray()

        def read_terminal():
            while True:
                try:
                    chunk = os.read(terminal, 4096)
                except OSError:
                    return
                if not chunk:
                    return
                seen.extend(chunk)
        reader = threading.Thread(target=read_terminal, daemon=True)
        reader.start()
        second = subprocess.run(args, stdout=subprocess.PIPE, stderr=tty, text=True, timeout=120)
        os.close(tty)
        reader.join(5)
        os.close(terminal)
        assert second.returncode == 0, second.stdout
        import re
        progress = re.findall(rb"\r\x1b\[K20171228 1\.0\.0\.1: downloading, (\d+\.\d) MB of (\d+\.\d) MB \((\d+) %\)", bytes(seen))
        assert progress and float(progress[0][0]) >= kept / 1e6 - 0.1, bytes(seen)[:300]
        assert bytes(seen).endswith(b"\r\x1b[K"), "the progress line is cleared before the device says what happened"
        assert "20171228 1.0.0.1: downloaded; installs when the app is opened (lazy)." in second.stdout, second.stdout
        assert "downloading" not in second.stdout and "\r" not in second.stdout, "progress goes to the terminal only"
        assert any(r and r.startswith("bytes=") and int(r[6:].rstrip("-")) > 0 for r in throttle.ranges), throttle.ranges
        import hashlib
        amr = data / "downloads" / "20171228-1.0.0.1.amr"
        assert hashlib.sha256(amr.read_bytes()).hexdigest() == sha, "the right bytes"
        assert not part.exists()
    finally:
        throttle.stop()


def test_on_mobile_a_wifi_only_package_comes_from_fallback_and_global_files_from_the_global_package(server, tmp_path):
    token = server.courier("token", "create", "--user", "admin", "--scope", "read,upload,release,admin").stdout.strip()
    settings = {"virtualDomain": "h5app.example.com", "globalHost": "mcube.example.com", "appKey": "53E5279071442_test"}
    assert api(server, token, "PUT", "/api/v1/settings", json.dumps(settings))[0] == 200
    page = tmp_path / "page" / "www"
    page.mkdir(parents=True)
    (page / "index.html").write_text("<!doctype html><title>Online</title><h1 id='v'>from the online copy</h1>"
                                     "<script src='http://mcube.example.com/53E5279071442_test/common.js'></script>")
    common = tmp_path / "common" / "20180101" / "mcube.example.com" / "53E5279071442_test"
    common.mkdir(parents=True)
    (common / "common.js").write_text("document.getElementById('v').dataset.common = 'global';\n")
    env = dict(os.environ, COURIER_SERVER=server.url, COURIER_TOKEN=token)
    for app, name in (("20171228", "Checkout"), ("20180101", "Common")):
        assert api(server, token, "POST", "/api/v1/apps", json.dumps({"id": app, "name": name}))[0] == 201
    push = [BINARY, "push", "--app", "20171228", "--version", "1.0.0.1", "--main-url", "/www/index.html", "--android-min", "1.0",
            "--download-policy", "wifi", "--install-policy", "preload", "--release", "official", str(tmp_path / "page")]
    assert subprocess.run(push, env=env, capture_output=True, text=True).returncode == 0
    push = [BINARY, "push", "--app", "20180101", "--version", "1.0.0.1", "--type", "global", "--android-min", "1.0",
            "--download-policy", "all", "--install-policy", "preload", "--release", "official", str(tmp_path / "common")]
    pushed = subprocess.run(push, env=env, capture_output=True, text=True)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr

    port = free_port()
    log = tmp_path / "device.log"
    device = subprocess.Popen([BINARY, "device", "--server", server.url, "--data", str(tmp_path / "dev"), "--network", "4G",
                               "--proxy-port", str(port)], stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=ROOT)
    d = None
    try:
        wait_for(log, "Proxy on")
        wait_for(log, "20171228 1.0.0.1: waits for Wi-Fi")
        wait_for(log, "20180101 1.0.0.1: installed")
        assert proxied(port, APP)[1] == "fallback"
        assert proxied(port, "http://mcube.example.com/53E5279071442_test/common.js")[:2] == (200, "global 1.0.0.1")
        assert proxied(port, "http://mcube.example.com/mcube/53E5279071442_test/common.js")[:2] == (200, "global 1.0.0.1")
        d = chromium(port)
        d.get(APP)
        assert d.find_element("id", "v").text == "from the online copy"
        assert d.find_element("id", "v").get_attribute("data-common") == "global", "the global file came from the global package"
        d.save_screenshot(os.path.join(OUTPUT, "64-device-4g-fallback-and-global.png"))
    finally:
        if d:
            d.quit()
        device.terminate()
        device.wait(timeout=10)


def test_a_disk_that_fills_during_install_leaves_the_installed_version_serving(server, tmp_path):
    """A device whose disk fills while it installs keeps serving the version it had, leaves no
    half-made folder, says so, reports install_failed; with room again, the next round installs."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount)]).returncode != 0:
        import pytest
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        token = server.courier("token", "create", "--user", "admin", "--scope", "read,upload,release,admin").stdout.strip()
        assert api(server, token, "PUT", "/api/v1/settings", json.dumps({"virtualDomain": "h5app.example.com", "updateReqRate": 0}))[0] == 200
        assert api(server, token, "POST", "/api/v1/apps", json.dumps({"id": "20171228", "name": "Checkout"}))[0] == 201
        env = dict(os.environ, COURIER_SERVER=server.url, COURIER_TOKEN=token)

        def push(version, words, big=0):
            folder = tmp_path / version / "www"
            folder.mkdir(parents=True)
            (folder / "index.html").write_text(f"<!doctype html><title>{words}</title><h1 id='v'>{words}</h1>")
            if big:
                (folder / "big.bin").write_bytes(os.urandom(big))
            return push_official(env, version, folder.parent)["task"]["id"]

        data = mount / "dev"
        args = [BINARY, "device", "--server", server.url, "--data", str(data), "--once"]
        push("1.0.0.1", "version one")
        first = subprocess.run(args, capture_output=True, text=True, timeout=60)
        assert first.returncode == 0 and "20171228 1.0.0.1: installed" in first.stdout, first.stdout + first.stderr

        task = push("1.0.0.2", "version two", big=7 << 20)   # its .amr fits on the disk; its files beside it do not
        full = subprocess.run(args, capture_output=True, text=True, timeout=60)
        assert full.returncode == 5, full.stdout + full.stderr
        assert "20171228 1.0.0.2: install failed:" in full.stdout and "No space left on device (is the disk full?)" in full.stdout, full.stdout
        assert os.listdir(data / "staging") == [], "no half-made folder stays"
        assert sorted(os.listdir(data / "downloads")) == [], "the refused download is not kept"
        status = json.loads(subprocess.run([BINARY, "device", "status", "--data", str(data), "--json"], capture_output=True, text=True).stdout)
        assert status["apps"][0]["installed"] == "1.0.0.1", status

        # The installed version still serves, through the proxy.
        port = free_port()
        log = tmp_path / "device.log"
        device = subprocess.Popen([BINARY, "device", "--server", server.url, "--data", str(data), "--proxy-port", str(port)],
                                  stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            wait_for(log, "Proxy on")
            code, source, body = proxied(port, APP)
            assert (code, source) == (200, "package 1.0.0.1") and "version one" in body, (code, source, body)
        finally:
            device.terminate()
            device.wait(timeout=10)
        deadline = time.time() + 20
        while time.time() < deadline:
            events = api(server, token, "GET", f"/api/v1/tasks/{task}")[1]["events"]
            if events.get("install_failed") == 1:
                break
            time.sleep(0.5)
        assert events.get("install_failed") == 1 and "install_ok" not in events, events

        # Room again: the next round installs 1.0.0.2.
        assert subprocess.run(["mount", "-o", "remount,size=64m", str(mount)]).returncode == 0
        again = subprocess.run(args, capture_output=True, text=True, timeout=60)
        assert again.returncode == 0 and "20171228 1.0.0.2: installed" in again.stdout, again.stdout + again.stderr
    finally:
        subprocess.run(["umount", "-l", str(mount)])


def test_a_device_on_the_previous_version_fetches_a_patch_and_ends_on_the_new_versions_bytes(server, browser, tmp_path):
    """Issue 18: with one script changed, a device on 1.0.0.1 downloads the patch (not the whole
    package), rebuilds 1.0.0.2's .amr from it and its installed files, verifies 1.0.0.2's own
    signature and installs it; the server counts the bytes sent as a patch. A second device whose
    installed files were changed cannot use the patch: it reports patch_failed and takes the
    whole package."""
    import hashlib
    import re
    token = server.courier("token", "create", "--user", "admin", "--scope", "read,upload,release,admin").stdout.strip()
    assert api(server, token, "PUT", "/api/v1/settings", json.dumps({"virtualDomain": "h5app.example.com", "updateReqRate": 0}))[0] == 200
    status, key = api(server, token, "POST", "/api/v1/settings/signing-key/generate")
    pem = tmp_path / "pub.pem"
    pem.write_text(key["publicKey"])
    assert api(server, token, "POST", "/api/v1/apps", json.dumps({"id": "20171228", "name": "Checkout"}))[0] == 201
    env = dict(os.environ, COURIER_SERVER=server.url, COURIER_TOKEN=token)
    site = tmp_path / "site" / "www"
    site.mkdir(parents=True)
    (site / "index.html").write_text("<!doctype html><title>Shop</title><script src='app.js'></script>")
    (site / "vendor.js").write_bytes(os.urandom(600_000))   # what does not change: most of a real bundle

    def push(version, script):
        (site / "app.js").write_text(script)
        return push_official(env, version, site.parent)

    push("1.0.0.1", "console.log('one');\n")
    devices = [tmp_path / "phone", tmp_path / "tampered"]
    for data in devices:
        first = subprocess.run([BINARY, "device", "--server", server.url, "--public-key", str(pem), "--data", str(data), "--once"],
                               capture_output=True, text=True, timeout=60)
        assert first.returncode == 0 and "20171228 1.0.0.1: installed, verified by SIGN.json" in first.stdout, first.stdout + first.stderr
    second = push("1.0.0.2", "console.log('two');\n")
    full = second["package"]["size"]

    # The patch is built in the background: the answer offers it once it exists.
    deadline = time.time() + 30
    while time.time() < deadline:
        request = {"platform": "android", "clientVersion": "10.0", "deviceId": "probe", "apps": [{"id": "20171228", "version": "1.0.0.1"}]}
        answer = json.loads(urllib.request.urlopen(urllib.request.Request(server.url + "/client/v1/update", data=json.dumps(request).encode(),
                                                                          headers={"Content-Type": "application/json"}), timeout=5).read())
        if answer["data"] and "patch" in answer["data"][0]:
            break
        time.sleep(0.2)
    entry = answer["data"][0]
    assert entry["patch_from"] == "1.0.0.1" and entry["patch_size"] * 50 < full, entry

    round_ = subprocess.run([BINARY, "device", "--server", server.url, "--public-key", str(pem), "--data", str(devices[0]), "--once", "--json"],
                            capture_output=True, text=True, timeout=60)
    assert round_.returncode == 0, round_.stdout + round_.stderr
    lines = [json.loads(line) for line in round_.stdout.splitlines()]
    installed = [line for line in lines if line.get("event") == "installed"]
    assert installed and installed[0]["download"] == "patch" and installed[0]["patchFrom"] == "1.0.0.1", lines
    assert installed[0]["verifiedBy"] == "SIGN.json" and installed[0]["downloadBytes"] == entry["patch_size"], lines
    folder = devices[0] / "packages" / "20171228" / "1.0.0.2" / "www"
    assert (folder / "app.js").read_text() == "console.log('two');\n"
    assert hashlib.sha256((folder / "vendor.js").read_bytes()).digest() == hashlib.sha256((site / "vendor.js").read_bytes()).digest()
    metrics = urllib.request.urlopen(server.url + "/metrics", timeout=5).read().decode()
    sent = int(re.search(r'courier_package_bytes_sent_total\{kind="patch"\} (\d+)', metrics).group(1))
    assert sent == entry["patch_size"], metrics

    # The words a QA person reads, for the device whose files were changed: it falls back.
    (devices[1] / "packages" / "20171228" / "1.0.0.1" / "www" / "vendor.js").write_bytes(b"changed on the device")
    fallback = subprocess.run([BINARY, "device", "--server", server.url, "--public-key", str(pem), "--data", str(devices[1]), "--once"],
                              capture_output=True, text=True, timeout=60)
    assert fallback.returncode == 0, fallback.stdout + fallback.stderr
    assert "20171228 1.0.0.2: installed, verified by SIGN.json" in fallback.stdout and "a patch from" not in fallback.stdout, fallback.stdout
    assert (devices[1] / "packages" / "20171228" / "1.0.0.2" / "www" / "app.js").read_text() == "console.log('two');\n"
    deadline = time.time() + 10
    while time.time() < deadline:
        events = api(server, token, "GET", f"/api/v1/tasks/{second['task']['id']}")[1]["events"]
        if events.get("patch_failed") == 1:
            break
        time.sleep(0.3)
    assert events.get("patch_failed") == 1 and events.get("install_ok") == 2, events

    # The reviewer's view: from the package page, compare 1.0.0.2 with 1.0.0.1.
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    from test_journey import sign_in
    sign_in(browser, server)
    browser.get(f"{server.url}/apps/20171228/packages/1.0.0.2")
    browser.find_element(By.ID, "compare-versions").click()
    Select(browser.find_element(By.ID, "from")).select_by_value("1.0.0.1")
    Select(browser.find_element(By.ID, "to")).select_by_value("1.0.0.2")
    compare = browser.find_element(By.ID, "compare")
    compare.click()
    # The compare page itself holds #changes: read the one of the page the click loads.
    from selenium.webdriver.support.ui import WebDriverWait
    from conftest import gone
    WebDriverWait(browser, 20).until(gone(compare))
    changes = browser.find_element(By.ID, "changes").text
    assert "What changed since 1.0.0.1" in changes and "1 file changed, 0 added, 0 removed" in changes, changes
    assert "www/app.js" in changes and "A device on 1.0.0.1 downloads a" in changes and "patch instead of the full" in changes, changes
    assert "more files" not in changes, changes
    browser.save_screenshot(os.path.join(OUTPUT, "66-compare-versions-patch.png"))
