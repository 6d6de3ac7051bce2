import CourierCore
import XCTest

/// Issue 19: the release task's life as one pure state machine; every transition.
final class TaskStateTests: XCTestCase {
    let open = ApprovalRules(official: false, gray: false)
    let reviewed = ApprovalRules(official: true, gray: true)

    func gray(_ status: ReleaseTask.Status = .releasing, mode: ModeName = .percentage, approval: ApprovalState = .none,
              for subject: ApprovalSubject = .none) -> TaskState {
        TaskState(type: .gray, mode: mode, status: status, approval: approval, approvalFor: subject)
    }
    func official(_ status: ReleaseTask.Status = .releasing, rolledBack: Bool = false, approval: ApprovalState = .none,
                  for subject: ApprovalSubject = .none) -> TaskState {
        TaskState(type: .official, status: status, rolledBack: rolledBack, approval: approval, approvalFor: subject)
    }
    func allowed(_ s: TaskState, _ op: TaskOperation, role: Role? = nil, own: Bool = false) -> Bool {
        s.refusal(op, role: role, ownRequest: own) == nil
    }

    func testPauseResumeAndFinish() {
        XCTAssertEqual(gray().after(.pause, rules: open).status, .paused)
        XCTAssertFalse(allowed(gray(.paused), .pause))
        XCTAssertEqual(gray(.paused).after(.resume, rules: open).status, .releasing)
        XCTAssertFalse(allowed(gray(), .resume))
        XCTAssertEqual(gray(.paused).refusal(.resume), nil)
        XCTAssertFalse(allowed(gray(.paused, approval: .awaiting, for: .widening), .resume), "a widening waits: no resuming past the reviewer")
        for status in ReleaseTask.Status.allCases {
            XCTAssertEqual(allowed(gray(status), .finish), !status.hasEnded, "finish from \(status)")
            XCTAssertEqual(allowed(gray(status), .delete), status.hasEnded, "delete from \(status)")
        }
        let withdrawn = gray(.awaitingApproval, approval: .awaiting, for: .release).after(.finish, rules: reviewed)
        XCTAssertEqual(withdrawn.status, .finished)
        XCTAssertEqual(withdrawn.approval, .withdrawn, "finishing a waiting task withdraws the request")
        XCTAssertTrue(withdrawn.neverReleased)
    }

    func testPromotion() {
        let direct = gray(.paused).after(.promote, rules: open)
        XCTAssertEqual(direct.type, .official)
        XCTAssertNil(direct.mode)
        XCTAssertEqual(direct.status, .releasing)
        let waits = gray(.paused).after(.promote, rules: reviewed)
        XCTAssertEqual(waits.type, .gray, "the grayscale goes on while the promotion waits")
        XCTAssertEqual(waits.status, .paused)
        XCTAssertTrue(waits.promotionWaits)
        XCTAssertFalse(allowed(waits, .promote), "asked once")
        XCTAssertFalse(allowed(official(), .promote))
        XCTAssertFalse(allowed(gray(.awaitingApproval, approval: .awaiting, for: .release), .promote))
        XCTAssertFalse(allowed(gray(.finished), .promote))
        let approved = waits.after(.approve, rules: reviewed)
        XCTAssertEqual(approved.type, .official)
        XCTAssertEqual(approved.status, .paused, "resuming stays its owner's step")
        let refused = waits.after(.reject, rules: reviewed)
        XCTAssertEqual(refused.type, .gray)
        XCTAssertEqual(refused.status, .paused, "a refused promotion leaves the grayscale as it was")
        XCTAssertEqual(refused.approval, .rejected)
    }

    func testRollbackOnceAndOnlyOfWhatWasReleasedOfficially() {
        for status in ReleaseTask.Status.allCases {
            XCTAssertEqual(allowed(official(status), .rollback), [.releasing, .paused, .finished].contains(status), "\(status)")
            XCTAssertFalse(allowed(gray(status), .rollback))
        }
        let back = official().after(.rollback, rules: open)
        XCTAssertTrue(back.rolledBack)
        XCTAssertEqual(back.status, .finished)
        XCTAssertFalse(allowed(back, .rollback), "once")
        XCTAssertFalse(allowed(official(.finished, approval: .withdrawn, for: .release), .rollback), "never released")
        XCTAssertTrue(allowed(official(.finished, approval: .approved, for: .release), .rollback))
    }

    func testDecisions() {
        let waiting = official(.awaitingApproval, approval: .awaiting, for: .release)
        XCTAssertEqual(waiting.refusal(.approve, role: .reviewer, ownRequest: true),
                       .person("you created it or asked for its approval: another reviewer must decide."))
        XCTAssertNotNil(waiting.refusal(.approve, role: .developer), "a developer cannot approve")
        XCTAssertNil(waiting.refusal(.approve, role: .reviewer))
        XCTAssertNil(waiting.refusal(.reject, role: .admin))
        XCTAssertEqual(waiting.after(.approve, rules: reviewed).status, .releasing)
        XCTAssertEqual(waiting.after(.reject, rules: reviewed).status, .rejected)
        XCTAssertEqual(official().refusal(.approve), .state("it is not awaiting approval."))
        XCTAssertEqual(official(approval: .approved, for: .release).refusal(.reject), .state("it is not awaiting approval (it was approved)."))
        // A widening asked for while paused leaves the task paused either way.
        var widened = gray(.paused, approval: .approved, for: .release)
        widened.requestApproval(.widening)
        XCTAssertEqual(widened.status, .paused)
        XCTAssertEqual(widened.after(.approve, rules: reviewed).status, .paused)
        var live = gray(.releasing, approval: .approved, for: .release)
        live.requestApproval(.widening)
        XCTAssertEqual(live.status, .awaitingApproval, "a wider share is offered to nobody until approved")
        XCTAssertTrue(allowed(live, .changePercentage), "it may still be lowered")
        XCTAssertEqual(live.after(.approve, rules: reviewed).status, .releasing)
        XCTAssertEqual(live.after(.reject, rules: reviewed).status, .rejected, "the wider share refused: the task ends")
    }

    func testRolesAndUnreadableTasks() {
        XCTAssertNotNil(gray().refusal(.pause, role: .reviewer), "a reviewer changes nothing")
        XCTAssertNil(gray().refusal(.pause, role: .developer))
        var unreadable = gray(.releasing, approval: .awaiting, for: .promotion)
        unreadable.unreadable = "a rule on “carrier”"
        let allowedOps = TaskOperation.allCases.filter { allowed(unreadable, $0) }
        XCTAssertEqual(allowedOps, [.finish, .reject], "what cannot be read can only be ended or refused")
        XCTAssertTrue(unreadable.refusal(.approve)?.description.contains("rejected or finished") == true)
        unreadable.status = .finished
        XCTAssertTrue(allowed(unreadable, .delete))
    }

    func testPercentageChanges() {
        XCTAssertTrue(allowed(gray(.paused), .changePercentage))
        XCTAssertFalse(allowed(gray(mode: .whitelist), .changePercentage))
        XCTAssertFalse(allowed(gray(.finished), .changePercentage))
        XCTAssertFalse(allowed(gray(.awaitingApproval, approval: .awaiting, for: .release), .changePercentage), "not before the first approval")
        XCTAssertTrue(gray().wideningNeedsReviewer(reviewed))
        XCTAssertFalse(gray().wideningNeedsReviewer(open))
        XCTAssertFalse(gray(.finished).wideningNeedsReviewer(reviewed))
        XCTAssertFalse(official().wideningNeedsReviewer(reviewed))
    }

    func testWhichNewTasksWait() {
        let rules = ApprovalRules(official: true, gray: false)
        XCTAssertTrue(rules.newTaskWaits(.official))
        XCTAssertFalse(rules.newTaskWaits(.gray(.percentage(50), rules: [])))
        XCTAssertTrue(rules.newTaskWaits(.gray(.percentage(100), rules: [])), "100 % reaches everyone an official release would")
        XCTAssertTrue(ApprovalRules(official: false, gray: true).newTaskWaits(.gray(.whitelist([1]), rules: [])))
        XCTAssertFalse(ApprovalRules(official: false, gray: false).newTaskWaits(.official))
    }

    /// Every state × operation × rules: what the machine allows never un-ends a task, never
    /// turns an official release back into a grayscale one, and only a rollback rolls back.
    func testEveryTransitionKeepsTheInvariants() {
        var states: [TaskState] = []
        for type in TaskType.allCases {
            for status in ReleaseTask.Status.allCases {
                for rolledBack in [false, true] {
                    for approval in ApprovalState.allCases {
                        for subject in ApprovalSubject.allCases {
                            states.append(TaskState(type: type, mode: type == .gray ? .percentage : nil, status: status,
                                                    rolledBack: rolledBack, approval: approval, approvalFor: subject))
                        }
                    }
                }
            }
        }
        var transitions = 0
        for s in states {
            for op in TaskOperation.allCases {
                for rules in [open, reviewed] where s.refusal(op) == nil {
                    transitions += 1
                    let t = s.after(op, rules: rules)
                    if s.status.hasEnded { XCTAssertTrue(t.status.hasEnded, "\(op) un-ended \(s)") }
                    if s.type == .official { XCTAssertEqual(t.type, .official, "\(op) on \(s)") }
                    if t.rolledBack != s.rolledBack { XCTAssertEqual(op, .rollback) }
                    if op == .approve || op == .reject { XCTAssertNotEqual(t.approval, .awaiting) }
                    if t.type == .official && s.type == .gray { XCTAssertTrue(op == .promote || op == .approve) }
                }
            }
        }
        XCTAssertGreaterThan(transitions, 300)
    }
}
