"""Live-server fixtures: a real `courier serve` on a free loopback port with its own data."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# COURIER_BIN lets the live tests measure another build (e.g. .build/release/courier).
BINARY = os.environ.get("COURIER_BIN") or os.path.join(ROOT, ".build", "debug", "courier")
OUTPUT = os.path.join(ROOT, "test-output")
PASSWORD = "e2e-password-1"


def gone(element):
    """A wait condition: the page holding `element` has been replaced.

    Selenium's staleness_of expects StaleElementReferenceException, but Chromium
    sometimes answers a node of the unloading page with a generic inspector error
    ("Node with given id does not belong to the document"); both mean the same.
    """
    from selenium.common.exceptions import WebDriverException

    def predicate(_driver):
        try:
            element.is_enabled()
            return False
        except WebDriverException:
            return True
    return predicate


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, data, args=(), env=None):
        self.data = data
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [a.replace("{port}", str(self.port)) for a in args]
        self.proc = None

    def courier(self, *args, stdin=None):
        return subprocess.run([BINARY, *args, "--data", self.data], input=stdin, capture_output=True, text=True, check=True,
                              env=dict(os.environ, **self.env) if self.env else None)

    def start(self):
        log = open(os.path.join(self.data, "server.log"), "a")
        self.proc = subprocess.Popen([BINARY, "serve", "--data", self.data, "--port", str(self.port), *self.args],
                                     cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, **self.env) if self.env else None)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                urllib.request.urlopen(self.url + "/login", timeout=1)
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("courier did not start; see " + self.data + "/server.log")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def setup_address(data):
    """The one-time setup address a first start prints (waits up to 5 s for it)."""
    import re
    log = ""
    for _ in range(50):
        log = open(os.path.join(data, "server.log")).read()
        if "Create the first administrator at" in log:
            break
        time.sleep(0.1)
    return re.search(r"Create the first administrator at (\S+)", log).group(1)


@pytest.fixture
def make_server():
    """Starts courier with extra `serve` arguments (`{port}` is replaced by its port)."""
    started = []

    def make(*args, env=None):
        data = tempfile.mkdtemp(prefix="courier-e2e-")
        s = Server(data, args, env)
        s.courier("user", "add", "admin", "--role", "admin", stdin=PASSWORD + "\n")
        started.append(s)
        return s.start()

    yield make
    for s in started:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)


@pytest.fixture
def server(make_server):
    return make_server()


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = str(tmp_path / "downloads")
    os.makedirs(downloads)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": downloads,
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.downloads = downloads
    os.makedirs(OUTPUT, exist_ok=True)
    yield driver
    driver.save_screenshot(os.path.join(OUTPUT, "last-page.png"))
    with open(os.path.join(OUTPUT, "last-page.html"), "w") as f:
        f.write(driver.page_source)
    driver.quit()
