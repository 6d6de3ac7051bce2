"""Package content never acts as the console (SPEC §4), checked in headless Chromium the way
the security review attacked it: a developer uploads pages that try to read the console and
replace the signing key, and a signed-in admin opens them from the package page."""
import http.client
import json
import os
import zipfile

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from conftest import OUTPUT
from test_journey import sign_in
from test_live import api, prepare, upload_file

ATTACK = """<!doctype html><title>attack</title><pre id="result" style="white-space: pre-wrap">running</pre>
<script>
(async () => {
  const out = {};
  async function attempt(name, f) { try { out[name] = await f(); } catch (e) { out[name] = "blocked: " + e.name; } }
  await attempt("readSettings", async () => {
    const r = await fetch("/settings", {credentials: "include"});
    const m = (await r.text()).match(/name="csrf" value="([^"]+)"/);
    return m ? "token " + m[1] : "status " + r.status + ", no token";
  });
  await attempt("cookie", async () => document.cookie === "" ? "empty" : "read " + document.cookie);
  await attempt("storage", async () => { localStorage.setItem("k", "v"); return "usable"; });
  await attempt("replaceKey", async () => {
    const token = (out.readSettings || "").startsWith("token ") ? out.readSettings.slice(6) : "";
    const r = await fetch("/settings/signing-key/generate", {method: "POST", credentials: "include",
      headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "csrf=" + token + "&confirmReplace=true"});
    return "status " + r.status;
  });
  await attempt("signOut", async () => (await fetch("/logout", {method: "POST", credentials: "include"})).status);
  document.getElementById("result").textContent = JSON.stringify(out);
  document.title = "done";
})();
</script>"""

# Without fetch: a form the page submits itself, a top-level navigation the browser sends
# with Origin: null from the sandbox.
FORM_POST = """<!doctype html><title>form</title>
<form id="f" method="post" action="/settings/signing-key/generate">
<input name="confirmReplace" value="true"><input name="csrf" value="guess"></form>
<script>document.getElementById("f").submit()</script>"""

SVG = """<svg xmlns="http://www.w3.org/2000/svg" onload="fetch('/logout', {method: 'POST', credentials: 'include'})
  .then(r => document.documentElement.setAttribute('data-status', r.status))
  .catch(e => document.documentElement.setAttribute('data-status', 'blocked ' + e.name))"><rect width="10" height="10"/></svg>"""


def attacking_zip(path):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("20171228/www/index.html", ATTACK)
        z.writestr("20171228/www/post.html", FORM_POST)
        z.writestr("20171228/www/logo.svg", SVG)
    return path


def fingerprint(server, token):
    status, settings = api(server, token, "GET", "/api/v1/settings")
    assert status == 200
    return settings["signingKeyFingerprint"]


def run_attack(d, server, token, tmp_path, console_url):
    status, created = api(server, token, "POST", "/api/v1/settings/signing-key/generate")
    assert status == 201, created
    before = fingerprint(server, token)
    assert upload_file(server, token, attacking_zip(str(tmp_path / "attack.zip")), "1.0.0.1")[0] == 201

    sign_in(d, server, console_url)
    d.get(console_url + "/apps/20171228/packages/1.0.0.1")
    d.find_element(By.LINK_TEXT, "www/index.html").click()
    WebDriverWait(d, 20).until(EC.title_is("done"))
    result = json.loads(d.find_element(By.ID, "result").text)
    d.save_screenshot(os.path.join(OUTPUT, "isolation-attack-page.png"))

    files = server.content_url + "/fallback/20171228/1.0.0.1/www/"
    assert d.current_url == files + "index.html"
    d.get(files + "post.html")
    # The form leaves the page: refused (no cookie from the sandbox: sign-in page) or not served there.
    WebDriverWait(d, 20).until(lambda drv: "post.html" not in drv.current_url)
    d.get(files + "logo.svg")
    WebDriverWait(d, 20).until(lambda drv: drv.find_element(By.TAG_NAME, "svg").get_attribute("data-status"))

    # The admin is still signed in and the key is the one installed before.
    d.get(console_url + "/settings")
    assert "/login" not in d.current_url, "the attack signed the admin out"
    assert d.find_element(By.ID, "key-fingerprint").text == before
    assert fingerprint(server, token) == before
    return result


def test_package_pages_on_the_consoles_origin_run_sandboxed(server, browser, tmp_path):
    token = prepare(server)
    server.content_url = server.url
    result = run_attack(browser, server, token, tmp_path, server.url)
    assert result["readSettings"].startswith("blocked"), result
    assert result["cookie"].startswith("blocked"), result
    assert result["storage"].startswith("blocked"), result
    assert result["replaceKey"].startswith("blocked"), result
    browser.get(server.url + "/settings")
    assert "Shared origin, sandboxed." in browser.find_element(By.ID, "isolation-mode").text


def test_a_separate_content_host_serves_package_pages_apart_from_the_console(make_server, browser, tmp_path):
    # Two names for the loopback address: the console on one, package content on the other.
    server = make_server("--console-url", "http://127.0.0.1:{port}", "--public-url", "http://localhost:{port}")
    server.content_url = f"http://localhost:{server.port}"
    token = prepare(server)
    result = run_attack(browser, server, token, tmp_path, server.url)
    assert result["readSettings"] == "status 404, no token", result
    assert result["storage"] == "usable", "unsandboxed on its own host"
    for host, path, status in [("127.0.0.1", "/login", 200), (f"localhost:{server.port}", "/login", 404),
                               (f"localhost:{server.port}", "/fallback/20171228/1.0.0.1/www/index.html", 200),
                               ("127.0.0.1", "/fallback/20171228/1.0.0.1/www/index.html", 404)]:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", path, headers={"Host": host})
        r = conn.getresponse()
        assert r.status == status, (host, path)
        assert r.getheader("Content-Security-Policy") is None or "sandbox" not in r.getheader("Content-Security-Policy")
        conn.close()
