"""Release health and safe rollouts in Chromium (issue 21): a product owner sets a webhook and
creates a ramp in the console (its schedule previewed), real `courier device` instances install
it and a few fail their trial, the health gate pauses the task by itself, the task page's chart
shows the failures and the pause, the webhook receiver got a signed POST, and the simulator
explains a device the ramp refuses and one that gave the version up.
Screenshots: test-output/7x-*.png."""
import concurrent.futures
import hashlib
import hmac
import http.server
import json
import os
import subprocess
import threading
import time

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from conftest import BINARY, OUTPUT, PASSWORD, free_port, gone
from test_live import api

APP = "20171228"


class Receiver(http.server.BaseHTTPRequestHandler):
    """The webhook's receiver: keeps every POST (headers and body)."""
    got = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        Receiver.got.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def sign_in(browser, server):
    browser.get(server.url + "/apps")
    browser.find_element(By.ID, "name").send_keys("admin")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit].primary").click()
    WebDriverWait(browser, 10).until(EC.url_contains("/apps"))


def submit(browser, button_id):
    button = browser.find_element(By.ID, button_id)
    browser.execute_script("arguments[0].scrollIntoView()", button)
    button.click()
    try:
        WebDriverWait(browser, 3).until(EC.alert_is_present()).accept()
    except Exception:
        pass
    WebDriverWait(browser, 20).until(gone(button))


def device(server, pem, data, *extra):
    return subprocess.run([BINARY, "device", "--server", server.url, "--public-key", str(pem), "--data", str(data), *extra],
                          capture_output=True, text=True, timeout=120)


def test_a_ramp_is_paused_by_its_health_gate_and_the_console_shows_why(server, browser, tmp_path):
    token = server.courier("token", "create", "--user", "admin", "--scope", "read,upload,release,admin").stdout.strip()
    assert api(server, token, "PUT", "/api/v1/settings", json.dumps({"virtualDomain": "h5app.example.com", "updateReqRate": 0}))[0] == 200
    status, key = api(server, token, "POST", "/api/v1/settings/signing-key/generate")
    assert status == 201
    pem = tmp_path / "pub.pem"
    pem.write_text(key["publicKey"])
    assert api(server, token, "POST", "/api/v1/apps", json.dumps({"id": APP, "name": "Checkout"}))[0] == 201
    folder = tmp_path / "app"
    (folder / APP / "www").mkdir(parents=True)
    (folder / APP / "www" / "index.html").write_text("<!doctype html><title>ramp</title><h1>ramp</h1>\n")
    env = dict(os.environ, COURIER_SERVER=server.url, COURIER_TOKEN=token)
    pushed = subprocess.run([BINARY, "push", "--app", APP, "--version", "1.0.0.1", "--main-url", "/www/index.html", "--android-min", "1.0",
                             "--download-policy", "all", "--install-policy", "preload", str(folder)], env=env, capture_output=True, text=True)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr

    receiver_port = free_port()
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", receiver_port), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        sign_in(browser, server)
        # The webhook, on the Configuration page: its secret is shown once.
        browser.get(server.url + "/settings")
        field = browser.find_element(By.ID, "webhookUrl")
        field.clear()
        field.send_keys(f"http://127.0.0.1:{receiver_port}/courier")
        submit(browser, "saveWebhook")
        secret = browser.find_element(By.CSS_SELECTOR, "#webhook-secret code").text
        assert len(secret) == 64

        # The ramp: 50 % now, 100 % after a day, then official; previewed before it is created.
        browser.get(server.url + f"/apps/{APP}/packages/1.0.0.1/tasks/new")
        browser.find_element(By.ID, "type-gray").click()
        browser.find_element(By.ID, "mode-percentage").click()
        browser.find_element(By.ID, "percentage").send_keys("50")
        browser.find_element(By.ID, "steps").send_keys("100% after 1d\npromote after 1d")
        browser.find_element(By.ID, "healthThreshold").send_keys("5")
        browser.find_element(By.ID, "description").send_keys("Ramp with a health gate.")
        submit(browser, "preview-task")
        timeline = browser.find_element(By.ID, "ramp-preview").text
        assert "50 % of devices" in timeline and "100 % of devices" in timeline and "promote to official" in timeline, timeline
        browser.save_screenshot(os.path.join(OUTPUT, "70-ramp-preview.png"))
        submit(browser, "create-task")
        task = browser.current_url.rstrip("/").split("/")[-1].split("?")[0]
        assert task.isdigit(), browser.current_url
        assert "0 of 2 steps taken" in browser.find_element(By.ID, "ramp-status").text

        # Devices: which ones the 50 % admits, asked of the simulator (which admits nobody).
        admitted, refused = [], []
        for n in range(200):
            if len(admitted) >= 56 and refused:
                break
            status, answer = api(server, token, "POST", "/api/v1/simulate",
                                 json.dumps({"platform": "android", "clientVersion": "10.2.3", "deviceId": f"phone-{n}", "app": APP}))
            assert status == 200, answer
            (admitted if answer["apps"][0]["offered"] == "1.0.0.1" else refused).append(f"phone-{n}")
        assert len(admitted) >= 56 and refused

        # The simulator, in the console, explains a device the ramp refuses.
        browser.get(server.url + "/simulate")
        browser.find_element(By.ID, "clientVersion").send_keys("10.2.3")
        browser.find_element(By.ID, "deviceId").send_keys(refused[0])
        browser.find_element(By.ID, "app").send_keys(APP)
        submit(browser, "simulate")
        row = browser.find_element(By.ID, f"sim-task-{task}").text
        assert "no" in row and "outside 50 %" in row, row
        browser.save_screenshot(os.path.join(OUTPUT, "72-simulator-refused.png"))

        # 56 phones install it; 10 of them then report it broken (their trial fails).
        (tmp_path / "phones").mkdir()
        # All install first, then the broken ones report (the gate may pause the task as soon as
        # their reports arrive; a paused task still counts what devices report).
        def install(name):
            first = device(server, pem, tmp_path / "phones" / name, "--device-id", name, "--once")
            assert first.returncode == 0, first.stdout + first.stderr
            assert "installed" in first.stdout, first.stdout

        def give_up(name):
            data = tmp_path / "phones" / name
            broken = subprocess.run([BINARY, "device", "broken", APP, "--data", str(data)], capture_output=True, text=True, timeout=60)
            assert broken.returncode == 0, broken.stdout + broken.stderr
            again = device(server, pem, data, "--device-id", name, "--once")
            assert again.returncode in (0, 5), again.stdout + again.stderr
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(install, admitted[:56]))
            list(pool.map(give_up, admitted[:10]))

        # The gate pauses it by itself (housekeeping looks every 10 seconds), as user courier.
        deadline = time.time() + 60
        while time.time() < deadline:
            status, t = api(server, token, "GET", f"/api/v1/tasks/{task}")
            if t["status"] == "paused":
                break
            time.sleep(1)
        assert t["status"] == "paused", t
        status, health = api(server, token, "GET", f"/api/v1/tasks/{task}/health")
        assert health["installs"] >= 46 and health["failures"] == 10, health
        assert health["failureRateLow"] * 100 > 5, health
        assert sum(h["trialFailed"] for h in health["hours"]) == 10, health

        # The webhook receiver got the gate's pause, signed with the secret shown once.
        deadline = time.time() + 20
        while time.time() < deadline and not any(b"pausedByHealthGate" in body for _, body in Receiver.got):
            time.sleep(0.5)
        paused = [(h, body) for h, body in Receiver.got if b"pausedByHealthGate" in body]
        assert paused, Receiver.got
        headers, body = paused[0]
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        signature = {k.lower(): v for k, v in headers.items()}["x-courier-signature"]
        assert hmac.compare_digest(signature, expected), (signature, expected)
        event = json.loads(body)
        assert event["task"] == task and "10 failures in" in event["reason"], event

        # The task page: the pause in its history with the numbers, the chart with the threshold
        # and the pause marked, the failing devices linked to the simulator.
        browser.get(server.url + f"/tasks/{task}")
        history = browser.find_element(By.ID, "task-history").text
        assert "courier" in history and "health gate" in history and "10 failures in" in history, history
        chart = browser.find_element(By.ID, "health-rate")
        assert chart.find_elements(By.CSS_SELECTOR, "line.threshold")
        assert chart.find_elements(By.CSS_SELECTOR, "line.mark.pause")
        counts = browser.find_element(By.ID, "health-counts")
        assert len(counts.find_elements(By.CSS_SELECTOR, "polyline.series, circle")) >= 3
        section = browser.find_element(By.ID, "task-health")
        browser.execute_script("arguments[0].scrollIntoView()", section)
        section.screenshot(os.path.join(OUTPUT, "71-health-chart.png"))
        assert "Health gate: failing" in browser.find_element(By.ID, "health-gate").text

        # The simulator explains a device that gave the version up, from the task page's link.
        browser.get(server.url + f"/tasks/{task}")
        link = browser.find_element(By.CSS_SELECTOR, "#failing-devices a.simulate-device")
        link.click()
        WebDriverWait(browser, 10).until(EC.presence_of_element_located((By.ID, f"sim-task-{task}")))
        row = browser.find_element(By.ID, f"sim-task-{task}").text
        assert "gave the version up" in row or "paused" in row, row
        browser.save_screenshot(os.path.join(OUTPUT, "73-simulator-failing-device.png"))
        status, after = api(server, token, "GET", f"/api/v1/tasks/{task}")
        assert after["status"] == "paused", "simulating changed nothing"
    finally:
        receiver.shutdown()
