"""The console as its three people use it (issue 16), in Chromium, without typing an address after
signing in: a developer releases a grayscale version and finds it again from the apps list; the
reviewer goes from the Approvals badge to the request, sees the package's settings and what is
live, and approves; the developer then pauses and rolls back from the package page. After each
step the client update API answers as a phone would be answered. Screenshots: test-output/5x-*."""
import os
import shutil
import tempfile

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from conftest import OUTPUT, Server, gone
from test_journey import fill_package_form
from test_release import update
from test_team import add_user, first_administrator, sign_in
from zips import sample


def shot(d, name):
    d.save_screenshot(os.path.join(OUTPUT, name + ".png"))


def follow(wait, element):
    """Clicks a link or button and waits for the next page."""
    element.click()
    wait.until(gone(element))


def click(d, wait, element_id):
    follow(wait, d.find_element(By.ID, element_id))


def confirm(d, wait, button_id, expect):
    """Presses an operation's button, reads its question, accepts, and waits for the task page."""
    button = d.find_element(By.ID, button_id)
    button.click()
    alert = wait.until(EC.alert_is_present())
    question = alert.text
    alert.accept()
    wait.until(gone(button))
    assert expect in question, question
    return question


def test_release_find_review_and_roll_back_without_typing_an_address(browser, tmp_path):
    data = tempfile.mkdtemp(prefix="courier-e2e-")
    server = Server(data).start()
    d = browser
    wait = WebDriverWait(d, 20)
    try:
        first_administrator(d, data)
        add_user(d, server, "dev", "developer")
        add_user(d, server, "rita", "reviewer")
        assert "approves or rejects" in d.find_element(By.ID, "role-summaries").text
        click(d, wait, "nav-settings")
        d.find_element(By.ID, "virtualDomainField").send_keys("h5app.example.com")
        d.find_element(By.ID, "confirmDomain").click()
        d.find_element(By.ID, "saveDomain").click()   # the checkbox asked: no dialog
        wait.until(EC.presence_of_element_located((By.ID, "virtual-domain-value")))
        d.find_element(By.ID, "officialNeedsApproval").click()
        click(d, wait, "saveApproval")

        # The developer: an app, a package, a grayscale release to 50 % of devices.
        sign_in(d, server, "dev", "dev-password-1")
        click(d, wait, "create-app")
        d.find_element(By.ID, "id").send_keys("20171228")
        d.find_element(By.ID, "name").send_keys("Checkout")
        d.find_element(By.ID, "submit-app").click()
        assert "was created" in wait.until(EC.presence_of_element_located((By.ID, "notice"))).text
        d.find_element(By.ID, "add-package").click()
        fill_package_form(d, sample(str(tmp_path / "p.zip")), "1.0.0.1", main="/www/index.html")
        assert "Version 1.0.0.1 was added" in WebDriverWait(d, 60).until(EC.presence_of_element_located((By.ID, "notice"))).text
        assert "No release task yet" in d.find_element(By.ID, "no-tasks").text
        click(d, wait, "create-release-task")
        assert not d.find_element(By.ID, "percentage").is_displayed(), "only the chosen mode's fields show"
        d.find_element(By.ID, "mode-percentage").click()
        assert d.find_element(By.ID, "percentage").is_displayed()
        assert not d.find_element(By.ID, "endTime").is_displayed()
        d.find_element(By.ID, "percentage").send_keys("100")
        d.find_element(By.ID, "description").send_keys("Checkout for everyone, in steps.")
        d.find_element(By.ID, "percentage").clear()
        d.find_element(By.ID, "percentage").send_keys("50")
        shot(d, "50-walk-task-form")
        click(d, wait, "create-task")
        notice = wait.until(EC.presence_of_element_located((By.ID, "notice")))
        assert "Task 1 created: a grayscale release of 1.0.0.1" in notice.text
        shot(d, "51-walk-task-created")

        # Found again from the apps list: the status links the task.
        click(d, wait, "nav-apps")
        row = d.find_element(By.ID, "app-20171228")
        assert "Grayscale releasing" in row.text and "1.0.0.1" in row.text
        shot(d, "52-walk-apps-list")
        follow(wait, row.find_element(By.CSS_SELECTOR, "a.status"))
        assert d.find_element(By.ID, "task-status").text == "Grayscale releasing"
        confirm(d, wait, "op-promote", "It will wait for a reviewer")
        waiting = d.find_element(By.ID, "notice")
        assert "awaiting approval" in waiting.text and "waiting" in waiting.get_attribute("class")
        shot(d, "53-walk-promotion-waits")

        # The reviewer: the badge, the request with its settings and what is live, the approval.
        sign_in(d, server, "rita", "rita-password-1")
        badge = d.find_element(By.ID, "nav-approvals-count")
        assert badge.text == "1"
        click(d, wait, "nav-approvals")
        facts = d.find_element(By.ID, "approval-1-facts").text
        assert "10.0 – any later version" in facts and "/www/index.html" in facts and "Official now: none" in facts, facts
        assert "Approving makes 1.0.0.1 an official release" in facts and "not only the 50 % of devices" in facts, facts
        shot(d, "54-walk-approvals")
        click(d, wait, "review-1")
        review = d.find_element(By.ID, "review").text
        assert "Official now" in review and "none: clients are offered no official version" in review, review
        assert "Wi-Fi only" in review and "Lazy (install when first opened)" in review, "the package's policies"
        main = d.find_element(By.ID, "open-main-page")
        assert main.get_attribute("href").endswith("/fallback/20171228/1.0.0.1/www/index.html")
        shot(d, "55-walk-review")
        d.find_element(By.ID, "reject").click()
        assert "Say why" in wait.until(EC.presence_of_element_located((By.ID, "error-comment"))).text, "checked before any dialog"
        d.find_element(By.ID, "comment").send_keys("Looks right on **staging**.")
        confirm(d, wait, "approve", "Approve task 1")
        assert "approved" in d.find_element(By.ID, "notice").text
        assert d.find_element(By.ID, "task-status").text == "Official releasing"
        assert update(server, "u-1") == ["1.0.0.1"], "approved: every client in range"
        assert not d.find_elements(By.ID, "nav-approvals-count"), "nothing waits any more"

        # The developer: from the apps list to the package, its tasks, pause and roll back.
        sign_in(d, server, "dev", "dev-password-1")
        row = d.find_element(By.ID, "app-20171228")
        assert "1.0.0.1" in row.find_elements(By.TAG_NAME, "td")[6].text, "live officially"
        follow(wait, row.find_element(By.LINK_TEXT, "1.0.0.1"))
        task_row = d.find_element(By.ID, "task-row-1")
        assert "Official releasing" in task_row.text and "Promotion to official approved by rita" in task_row.text
        shot(d, "56-walk-package-tasks")
        follow(wait, task_row.find_element(By.LINK_TEXT, "Task 1"))
        confirm(d, wait, "op-pause", "Pause task 1")
        assert d.find_element(By.ID, "task-status").text == "Paused"
        assert update(server, "u-2") == [], "paused: new devices are not offered it"
        confirm(d, wait, "op-rollback", "No earlier official version exists")
        assert d.find_element(By.ID, "task-status").text == "Rolled back"
        assert "no earlier official version exists, so clients that have it keep it" in d.find_element(By.ID, "review-effect").text
        assert update(server, "u-1", installed="1.0.0.1") == [], "nothing to go back to: devices keep what they have"
        shot(d, "57-walk-rolled-back")

        # The audit log, filtered by the app, holds the task's steps in sentences, linked.
        click(d, wait, "nav-audit")
        d.find_element(By.NAME, "app").send_keys("20171228")
        d.find_element(By.CSS_SELECTOR, "#audit-filter button").click()
        wait.until(EC.url_contains("app=20171228"))
        table = d.find_element(By.ID, "audit-table").text
        for words in ("Rolled back the official release (1.0.0.1).", "Paused the task (1.0.0.1).",
                      "Approved the promotion to official (1.0.0.1), asked for by dev.", "Created task 1"):
            assert words in table, words
        shot(d, "58-walk-audit-by-app")
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)
