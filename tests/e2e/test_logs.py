"""Structured logs (issue 10): `--log-format json` gives one JSON object per line, a line per
request and per change with the request's ID (which error pages show), and no secret used in a
full journey (password, API token, private key, session cookie, CSRF token) appears in the log."""
import json
import os
import subprocess

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from conftest import PASSWORD
from test_journey import sign_in
from test_live import api, upload_file
from zips import sample


def test_json_logs_carry_request_ids_and_no_secret(make_server, browser, tmp_path):
    server = make_server("--log-format", "json")
    d = browser
    wait = WebDriverWait(d, 20)
    sign_in(d, server)
    session = next(c["value"] for c in d.get_cookies() if "session" in c["name"])
    # A token from the console (its secret is shown once).
    d.get(server.url + "/tokens")
    csrf = d.find_element(By.CSS_SELECTOR, "input[name=csrf]").get_attribute("value")
    d.find_element(By.ID, "token-name").send_keys("log test")
    for scope in ("upload", "release", "admin"):
        d.find_element(By.ID, "scope-" + scope).click()
    d.find_element(By.ID, "create-token-button").click()
    token = wait.until(EC.presence_of_element_located((By.ID, "token-secret"))).get_attribute("value")
    # A private key installed through the API, an app and a package.
    key = subprocess.run(["openssl", "genrsa", "2048"], capture_output=True, text=True, check=True).stdout
    assert api(server, token, "PUT", "/api/v1/settings", json.dumps({"virtualDomain": "h5app.example.com"}))[0] == 200
    assert api(server, token, "PUT", "/api/v1/settings/signing-key", key, "application/x-pem-file")[0] == 200
    assert api(server, token, "POST", "/api/v1/apps", json.dumps({"id": "20171228", "name": "Checkout"}))[0] == 201
    assert upload_file(server, token, sample(str(tmp_path / "p.zip")), "1.0.0.1")[0] == 201
    # An error page shows the request's ID.
    d.get(server.url + "/apps/99999999")
    shown = d.find_element(By.CSS_SELECTOR, "#request-id code").text
    assert shown

    server.stop()
    lines = open(os.path.join(server.data, "server.log")).read().splitlines()
    entries = [json.loads(line) for line in lines if line.strip()]   # every line is JSON
    requests = [e for e in entries if e.get("msg") == "request"]
    changes = [e for e in entries if e.get("msg") == "change"]
    assert any(e.get("route") == "/api/v1/apps/{id}/packages" and e.get("status") == "201" for e in requests), requests[-5:]
    assert all(e.get("hb.request.id") for e in requests)
    assert any(e["hb.request.id"] == shown and e["status"] == "404" for e in requests), "the error page's ID is in the log"
    actions = {e["action"] for e in changes}
    assert {"token.create", "settings.signingKey", "app.create", "package.add"} <= actions, actions
    request_ids = {e["hb.request.id"] for e in requests}
    assert all(e["hb.request.id"] in request_ids for e in changes if e["action"] != "user.create"), "changes carry their request's ID"

    text = "\n".join(lines)
    key_body = [l for l in key.splitlines() if "-----" not in l]
    for name, secret in [("password", PASSWORD), ("API token", token), ("session cookie", session), ("CSRF token", csrf)] + \
                        [("private key line", l) for l in key_body[:3]]:
        assert secret not in text, f"the {name} is in the log"
