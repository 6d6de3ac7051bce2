"""The release journey in headless Chromium (issue 7): whitelist, grayscale task with a rule and
a Markdown description (previewed), pause, resume, promote, roll back; after each step the
client update API answers as a phone would be answered."""
import json
import os
import urllib.request

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from conftest import OUTPUT
from test_journey import sign_in
from test_live import api, prepare, upload_file
from zips import sample


def shot(driver, name):
    driver.save_screenshot(os.path.join(OUTPUT, name + ".png"))


def update(server, user, installed="0", city="Hangzhou"):
    body = json.dumps({"platform": "android", "clientVersion": "10.2.3", "deviceId": "d-" + user, "userId": user,
                       "city": city, "apps": [{"id": "20171228", "version": installed}]}).encode()
    req = urllib.request.Request(server.url + "/client/v1/update", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        data = json.loads(r.read())["data"]
    return [e["version"] + (" rollback" if e["rollback"] else "") for e in data]


def operate(d, wait, name):
    d.find_element(By.ID, "op-" + name).click()
    wait.until(EC.alert_is_present()).accept()
    wait.until(EC.presence_of_element_located((By.ID, "task-status")))


def test_release_journey(server, browser, tmp_path):
    d = browser
    wait = WebDriverWait(d, 20)
    token = prepare(server)
    for version in ("1.0.0.1", "1.0.0.2"):
        assert upload_file(server, token, sample(str(tmp_path / f"{version}.zip")), version)[0] == 201
    assert update(server, "u-1") == []

    sign_in(d, server)
    # An official release of 1.0.0.1 from its package page.
    d.get(server.url + "/apps/20171228/packages/1.0.0.1")
    d.find_element(By.ID, "create-release-task").click()
    assert d.find_element(By.ID, "percentage").is_enabled(), "grayscale is the default"
    d.find_element(By.ID, "mode-percentage").click()
    d.find_element(By.ID, "percentage").send_keys("12")
    d.find_element(By.ID, "type-official").click()
    assert not d.find_element(By.ID, "percentage").is_enabled(), "grayscale settings are off for an official release"
    d.find_element(By.ID, "description").send_keys("First")
    d.find_element(By.ID, "preview-task").click()
    wait.until(EC.presence_of_element_located((By.ID, "description-preview")))
    d.find_element(By.ID, "type-gray").click()
    assert d.find_element(By.ID, "percentage").get_attribute("value") == "12", "a preview keeps the grayscale settings"
    assert d.find_element(By.ID, "mode-percentage").is_selected()
    d.find_element(By.ID, "type-official").click()
    d.find_element(By.ID, "create-task").click()
    assert "officially" in wait.until(EC.alert_is_present()).text, "an official release asks first"
    d.switch_to.alert.accept()
    wait.until(EC.presence_of_element_located((By.ID, "task-status")))
    assert update(server, "u-1") == ["1.0.0.1"]

    # A whitelist, pasted.
    d.get(server.url + "/whitelists")
    d.find_element(By.ID, "wl-name").send_keys("beta")
    d.find_element(By.ID, "wl-values").send_keys("u-1\nu-2, u-2")
    d.find_element(By.ID, "create-whitelist").click()
    assert "2 values" in wait.until(EC.presence_of_element_located((By.ID, "value-count"))).text
    shot(d, "10-whitelist")

    # A grayscale task for 1.0.0.2: whitelist beta, city in Hangzhou, a previewed description.
    d.get(server.url + "/apps/20171228/packages/1.0.0.2")
    d.find_element(By.ID, "create-release-task").click()
    d.find_element(By.CSS_SELECTOR, "input[name=whitelistIds]").click()
    d.find_element(By.ID, "ruleField-0").send_keys("city")
    d.find_element(By.ID, "ruleValues-0").send_keys("Hangzhou")
    d.find_element(By.ID, "description").send_keys("# Beta\n\nFixes *checkout* <script>alert(1)</script>")
    d.find_element(By.ID, "preview-task").click()
    preview = wait.until(EC.presence_of_element_located((By.ID, "description-preview")))
    assert preview.find_element(By.TAG_NAME, "em").text == "checkout"
    assert "alert" not in preview.get_attribute("innerHTML") or "<script" not in preview.get_attribute("innerHTML")
    shot(d, "11-task-preview")
    d.find_element(By.ID, "create-task").click()
    targeting = wait.until(EC.presence_of_element_located((By.ID, "task-targeting"))).text
    assert "users on whitelist beta (" in targeting and "city in Hangzhou" in targeting, targeting
    shot(d, "12-task")
    assert update(server, "u-1") == ["1.0.0.2"]
    assert update(server, "u-3") == ["1.0.0.1"]
    assert update(server, "u-1", city="Beijing") == ["1.0.0.1"]

    operate(d, wait, "pause")
    assert "Paused" in d.find_element(By.ID, "task-status").text
    assert update(server, "u-1", installed="1.0.0.2") == []
    assert update(server, "u-1") == ["1.0.0.1"]
    operate(d, wait, "resume")
    assert update(server, "u-1") == ["1.0.0.2"]
    operate(d, wait, "promote")
    assert update(server, "u-3", city="Beijing") == ["1.0.0.2"]
    operate(d, wait, "rollback")
    assert "Rolled back" in d.find_element(By.ID, "task-status").text
    assert update(server, "u-3", installed="1.0.0.2") == ["1.0.0.1 rollback"]
    history = d.find_element(By.ID, "task-history").text
    for step in ("Paused the task", "Resumed the task", "Promoted the task (1.0.0.2) to an official release",
                 "Rolled back the official release (1.0.0.2)"):
        assert step in history, history
    shot(d, "13-task-rolled-back")
    status, task = api(server, token, "GET", "/api/v1/apps/20171228")
    assert status == 200


def test_batch_release_journey(server, browser, tmp_path):
    """Two apps waiting for a release, one already releasing; one form releases both newest versions."""
    d = browser
    wait = WebDriverWait(d, 20)
    token = prepare(server)
    for app_id in ("20171229", "20171230"):
        assert api(server, token, "POST", "/api/v1/apps", json.dumps({"id": app_id, "name": "App " + app_id}))[0] == 201
    for app_id in ("20171228", "20171229", "20171230"):
        path = sample(str(tmp_path / f"{app_id}.zip"), app_id)
        assert upload_file(server, token, path, "1.0.0.1", app_id)[0] == 201
    release_token = server.courier("token", "create", "--user", "admin", "--scope", "read,release").stdout.strip()
    assert api(server, release_token, "POST", "/api/v1/apps/20171230/packages/1.0.0.1/tasks", json.dumps({"type": "official"}))[0] == 201

    sign_in(d, server)
    d.get(server.url + "/apps")
    d.find_element(By.ID, "batch-release").click()
    wait.until(EC.presence_of_element_located((By.ID, "candidates-table")))
    assert not d.find_elements(By.ID, "app-20171230"), "a releasing app is not offered"
    d.find_element(By.ID, "app-20171228").click()
    d.find_element(By.ID, "app-20171229").click()
    d.find_element(By.ID, "type-official").click()
    d.find_element(By.ID, "description").send_keys("Batch *one*")
    d.find_element(By.ID, "preview-task").click()   # no confirmation for a preview
    assert wait.until(EC.presence_of_element_located((By.ID, "description-preview"))).find_element(By.TAG_NAME, "em").text == "one"
    assert d.find_element(By.ID, "app-20171228").is_selected(), "the choice survives the preview"
    shot(d, "14-batch-release-form")
    d.find_element(By.ID, "create-batch").click()
    assert "official" in wait.until(EC.alert_is_present()).text
    d.switch_to.alert.accept()
    result = wait.until(EC.presence_of_element_located((By.ID, "batch-result"))).text
    assert "2 created, 0 not created" in result, result
    shot(d, "15-batch-release-result")
    for app_id in ("20171228", "20171229"):
        body = json.dumps({"platform": "android", "clientVersion": "10.2.3", "apps": [{"id": app_id, "version": "0"}]}).encode()
        req = urllib.request.Request(server.url + "/client/v1/update", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert [e["version"] for e in json.loads(r.read())["data"]] == ["1.0.0.1"], app_id
    d.get(server.url + "/apps/20171229")
    assert "Official releasing" in d.find_element(By.ID, "packages-table").text
