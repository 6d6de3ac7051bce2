"""Team and trust in Chromium (issue 9): first-run setup; the administrator adds a developer and a
reviewer and asks for approval of official releases; the developer uploads a package and
requests an official release; clients do not see it until the reviewer approves; the audit
page lists each step. Screenshots are kept in test-output/."""
import os
import shutil
import tempfile

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

from conftest import OUTPUT, Server, gone, setup_address
from test_journey import fill_package_form
from test_release import update
from zips import sample


def shot(d, name):
    d.save_screenshot(os.path.join(OUTPUT, name + ".png"))


def sign_in(d, server, name, password):
    d.delete_all_cookies()
    d.get(server.url + "/login")
    d.find_element(By.ID, "name").send_keys(name)
    d.find_element(By.ID, "password").send_keys(password)
    d.find_element(By.CSS_SELECTOR, "button[type=submit].primary").click()
    WebDriverWait(d, 10).until(EC.url_contains("/apps"))
    assert name in d.find_element(By.CSS_SELECTOR, "header").text


def add_user(d, server, name, role):
    d.get(server.url + "/users")
    d.find_element(By.ID, "new-name").send_keys(name)
    Select(d.find_element(By.ID, "new-role")).select_by_value(role)
    d.find_element(By.ID, "new-password").send_keys(name + "-password-1")
    d.find_element(By.ID, "add-user-button").click()
    WebDriverWait(d, 10).until(EC.presence_of_element_located((By.ID, "user-" + name)))


def first_administrator(d, data):
    """First-run setup through the address the server printed: root becomes the administrator."""
    d.get(setup_address(data))
    d.find_element(By.ID, "name").send_keys("root")
    d.find_element(By.ID, "password").send_keys("root-password-1")
    d.find_element(By.ID, "password2").send_keys("root-password-1")
    d.find_element(By.ID, "create-admin").click()
    WebDriverWait(d, 20).until(EC.url_contains("/apps"))


def test_a_developer_asks_and_a_reviewer_approves(browser, tmp_path):
    data = tempfile.mkdtemp(prefix="courier-e2e-")
    server = Server(data).start()
    d = browser
    wait = WebDriverWait(d, 20)
    try:
        first_administrator(d, data)

        # The administrator: two people, the virtual domain, and official releases need approval.
        add_user(d, server, "dev", "developer")
        add_user(d, server, "rita", "reviewer")
        shot(d, "40-team-users")
        d.get(server.url + "/settings")
        d.find_element(By.ID, "virtualDomainField").send_keys("h5app.example.com")
        d.find_element(By.ID, "confirmDomain").click()
        d.find_element(By.ID, "saveDomain").click()
        wait.until(EC.presence_of_element_located((By.ID, "virtual-domain-value")))
        d.find_element(By.ID, "officialNeedsApproval").click()
        save = d.find_element(By.ID, "saveApproval")
        save.click()
        wait.until(gone(save))
        assert "approval rules are saved" in wait.until(EC.presence_of_element_located((By.ID, "notice"))).text
        assert d.find_element(By.ID, "officialNeedsApproval").is_selected()
        shot(d, "41-team-approval-setting")

        # The developer: an app, a package, an official release that waits.
        sign_in(d, server, "dev", "dev-password-1")
        assert not d.find_elements(By.ID, "nav-users"), "a developer does not manage users"
        d.find_element(By.ID, "create-app").click()
        d.find_element(By.ID, "id").send_keys("20171228")
        d.find_element(By.ID, "name").send_keys("Checkout")
        d.find_element(By.ID, "submit-app").click()
        wait.until(EC.url_contains("/apps/20171228"))
        d.find_element(By.ID, "add-package").click()
        fill_package_form(d, sample(str(tmp_path / "p.zip")), "1.0.0.1", main="/www/index.html")
        WebDriverWait(d, 60).until(EC.url_contains("/packages/1.0.0.1"))
        d.find_element(By.ID, "create-release-task").click()
        d.find_element(By.ID, "type-official").click()
        d.find_element(By.ID, "description").send_keys("# Checkout 1.0.0.1\n\nFirst release.")
        d.find_element(By.ID, "create-task").click()
        wait.until(EC.alert_is_present()).accept()   # an official release asks first
        status = wait.until(EC.presence_of_element_located((By.ID, "task-status")))
        assert status.text == "Awaiting approval"
        assert "dev asked for approval" in d.find_element(By.ID, "approval-request").text
        assert not d.find_elements(By.ID, "decide-form"), "a developer cannot approve"
        task_url = d.current_url
        shot(d, "42-team-awaiting-approval")
        assert update(server, "u-1") == [], "clients are not offered it yet"

        # The reviewer: the Approvals page, a rejection needs a reason, then the approval.
        sign_in(d, server, "rita", "rita-password-1")
        d.find_element(By.ID, "nav-approvals").click()
        row = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#approvals-table tbody tr")))
        assert "20171228" in row.text and "dev" in row.text
        shot(d, "43-team-approvals")
        row.find_element(By.LINK_TEXT, "Review").click()
        wait.until(EC.presence_of_element_located((By.ID, "decide-form")))
        reject = d.find_element(By.ID, "reject")
        reject.click()   # without a comment: the page says so before any dialog
        assert "Say why" in wait.until(EC.presence_of_element_located((By.ID, "error-comment"))).text
        assert not EC.alert_is_present()(d), "no dialog for a rejection that cannot be sent"
        d.find_element(By.ID, "comment").send_keys("Checked on **staging**.")
        approve = d.find_element(By.ID, "approve")
        approve.click()
        wait.until(EC.alert_is_present()).accept()
        wait.until(gone(approve))
        decision = wait.until(EC.presence_of_element_located((By.ID, "approval-decision")))
        assert "Approved by rita" in decision.text
        assert d.find_element(By.CSS_SELECTOR, "#approval-comment strong").text == "staging"
        assert d.find_element(By.ID, "task-status").text == "Official releasing"
        assert d.current_url.split("?")[0] == task_url.split("?")[0]
        shot(d, "44-team-approved")
        assert update(server, "u-1") == ["1.0.0.1"], "approved: offered from the next request"

        # The audit page lists each step, and the chain holds.
        d.get(server.url + "/audit")
        table = d.find_element(By.ID, "audit-table").text
        for step in ("user.create", "settings.approval", "app.create", "package.add", "task.create", "task.approve"):
            assert step in table, step
        assert "rita" in table and "dev" in table and "root" in table
        shot(d, "45-team-audit")
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)
