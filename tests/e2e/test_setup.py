"""First run without the command line (SPEC §7): `courier serve` on an empty data folder prints a
one-time setup address; in Chromium it creates the first administrator, who lands signed in."""
import os
import shutil
import tempfile
import urllib.error
import urllib.request

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from conftest import OUTPUT, Server, setup_address


def test_first_run_setup_in_chromium(browser):
    data = tempfile.mkdtemp(prefix="courier-e2e-")
    server = Server(data).start()
    try:
        url = setup_address(data)
        assert url.startswith(server.url + "/setup/")
        d = browser
        wait = WebDriverWait(d, 20)
        d.get(server.url + "/apps")
        assert "setup address" in wait.until(EC.presence_of_element_located((By.ID, "no-user-yet"))).text
        d.save_screenshot(os.path.join(OUTPUT, "30-login-no-user.png"))
        d.get(url)
        d.find_element(By.ID, "name").send_keys("root")
        d.find_element(By.ID, "password").send_keys("first-admin-1")
        d.find_element(By.ID, "password2").send_keys("first-admin-2")
        d.find_element(By.ID, "create-admin").click()
        assert "differ" in wait.until(EC.presence_of_element_located((By.ID, "error-password2"))).text
        d.find_element(By.ID, "password").send_keys("first-admin-1")
        d.find_element(By.ID, "password2").send_keys("first-admin-1")
        d.save_screenshot(os.path.join(OUTPUT, "31-setup.png"))
        d.find_element(By.ID, "create-admin").click()
        wait.until(EC.url_contains("/apps"))
        assert "root" in d.find_element(By.CSS_SELECTOR, "header").text
        d.save_screenshot(os.path.join(OUTPUT, "32-setup-done.png"))
        try:
            urllib.request.urlopen(url, timeout=5)
            raise AssertionError("the setup address works only once")
        except urllib.error.HTTPError as e:
            assert e.code == 404
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)
