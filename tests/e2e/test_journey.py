"""The main journey in headless Chromium: sign in, set the virtual domain, create an app,
upload a package (with the progress bar), see it listed, download the .amr."""
import os
import time
import zipfile

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from conftest import OUTPUT, PASSWORD
from zips import large, sample


def shot(driver, name):
    driver.save_screenshot(os.path.join(OUTPUT, name + ".png"))


def sign_in(driver, server, base=None):
    driver.get((base or server.url) + "/apps")
    assert "/login" in driver.current_url
    driver.find_element(By.ID, "name").send_keys("admin")
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    shot(driver, "01-login")
    driver.find_element(By.CSS_SELECTOR, "button[type=submit].primary").click()
    WebDriverWait(driver, 10).until(EC.url_contains("/apps"))


def test_console_journey(server, browser, tmp_path):
    d = browser
    wait = WebDriverWait(d, 20)
    sign_in(d, server)
    assert "H5 apps" in d.page_source

    # Virtual domain: a bad value is explained next to the field, then saved once.
    d.get(server.url + "/settings")
    d.find_element(By.ID, "virtualDomainField").send_keys("https://Bad.example")
    d.find_element(By.ID, "confirmDomain").click()
    d.find_element(By.ID, "saveDomain").click()
    err = wait.until(EC.presence_of_element_located((By.ID, "error-virtualDomain")))
    assert "without scheme" in err.text
    field = d.find_element(By.ID, "virtualDomainField")
    field.clear()
    field.send_keys("h5app.example.com")
    d.find_element(By.ID, "confirmDomain").click()
    d.find_element(By.ID, "saveDomain").click()
    value = wait.until(EC.presence_of_element_located((By.ID, "virtual-domain-value")))
    assert value.text == "h5app.example.com"
    assert not d.find_elements(By.ID, "virtualDomainField"), "read-only once saved"
    d.find_element(By.ID, "generateKey").click()
    wait.until(EC.presence_of_element_located((By.ID, "key-fingerprint")))
    shot(d, "02-settings")

    # Create an HTML5 app: a reserved ID is refused next to the field.
    d.get(server.url + "/apps")
    d.find_element(By.ID, "create-app").click()
    d.find_element(By.ID, "id").send_keys("66666612")
    d.find_element(By.ID, "name").send_keys("Checkout")
    d.find_element(By.ID, "submit-app").click()
    assert "reserved" in wait.until(EC.presence_of_element_located((By.ID, "error-id"))).text
    assert d.find_element(By.ID, "name").get_attribute("value") == "Checkout"
    shot(d, "03-create-app-error")
    d.find_element(By.ID, "id").clear()
    d.find_element(By.ID, "id").send_keys("20171228")
    d.find_element(By.ID, "submit-app").click()
    wait.until(EC.url_contains("/apps/20171228"))
    shot(d, "04-app")

    # Add an offline package: a hostile zip first, then a real one with the progress bar.
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("20171228/../../etc/passwd", "x")
    d.find_element(By.ID, "add-package").click()
    fill_package_form(d, str(evil), "1.0.0.1")
    err = wait.until(EC.presence_of_element_located((By.ID, "error-file")))
    assert "“..”" in err.text
    assert d.find_element(By.ID, "androidMin").get_attribute("value") == "10.0", "typed values survive a refusal"
    shot(d, "05-package-refused")

    big = large(str(tmp_path / "big.zip"), 48)
    d.get(server.url + "/apps/20171228/packages/new")
    fill_package_form(d, big, "1.0.0.1")
    bar = WebDriverWait(d, 30, poll_frequency=0.02).until(EC.visibility_of_element_located((By.ID, "upload-progress")))
    shot(d, "06-uploading")
    assert bar.is_displayed()
    WebDriverWait(d, 120).until(EC.url_contains("/apps/20171228/packages/1.0.0.1"))
    assert "To be released" in d.find_element(By.ID, "package-status").text
    assert "www/index.html" in d.find_element(By.ID, "files-table").text
    shot(d, "07-package")

    d.get(server.url + "/apps/20171228")
    table = d.find_element(By.ID, "packages-table").text
    assert "1.0.0.1" in table and "To be released" in table
    shot(d, "08-app-with-package")

    # A second, small package, then download its .amr from the package page.
    d.find_element(By.ID, "add-package").click()
    fill_package_form(d, sample(str(tmp_path / "ok.zip")), "1.0.0.2", main="/www/index.html")
    WebDriverWait(d, 60).until(EC.url_contains("/packages/1.0.0.2"))
    d.find_element(By.ID, "download-amr").click()
    path = os.path.join(d.downloads, "20171228_1.0.0.2.amr")
    deadline = time.time() + 30
    while not os.path.exists(path) and time.time() < deadline:
        time.sleep(0.2)
    with zipfile.ZipFile(path) as amr:
        names = amr.namelist()
    assert names == ["20171228.tar", "CERT.json", "SIGN.json", "manifest.json"]


def fill_package_form(d, zip_path, version, main=""):
    d.find_element(By.ID, "version").clear()
    d.find_element(By.ID, "version").send_keys(version)
    d.find_element(By.ID, "file").send_keys(zip_path)
    if not d.find_element(By.ID, "android").is_selected():
        d.find_element(By.ID, "android").click()
    d.find_element(By.ID, "androidMin").clear()
    d.find_element(By.ID, "androidMin").send_keys("10.0")
    if main:
        d.find_element(By.ID, "mainUrl").clear()   # a new version starts from the newest one's settings
        d.find_element(By.ID, "mainUrl").send_keys(main)
    d.find_element(By.ID, "confirm").click()
    d.find_element(By.ID, "submit-package").click()
