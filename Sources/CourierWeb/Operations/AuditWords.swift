import CourierCore
import CourierStore
import Foundation

/// An audit row as a person reads it: a sentence, and a link to what it names. The stored
/// detail (JSON, covered by the hash chain) stays as it is for the CSV export and the API.
enum AuditWords {
    static func detail(_ r: AuditRecord) -> [String: String] {
        guard let data = r.detail.data(using: .utf8),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [:] }
        return object.compactMapValues { $0 as? String ?? ($0 as? NSNumber)?.stringValue }
    }

    /// The subject's words ("task 3", "app 20171228", "1.0.0.2 of 20171228").
    static func subject(_ r: AuditRecord) -> String {
        let parts = r.subject.split(separator: " ", maxSplits: 1).map(String.init)
        switch r.action.prefix { $0 != "." } {
        case "task" where r.action == "task.create":
            return (detail(r)["task"].map { "task \($0) " } ?? "") + (parts.count == 2 ? "(\(parts[0]) \(parts[1]))" : r.subject)
        case "task": return "task \(r.subject)"
        case "package": return parts.count == 2 ? "\(parts[0]) \(parts[1])" : r.subject
        case "whitelist" where r.action != "whitelist.create": return "whitelist \(r.subject)"
        case "token" where r.action == "token.revoke": return "token \(r.subject)"
        case "import": return "import \(parts.first ?? r.subject)"
        default: return r.subject
        }
    }

    /// Where the subject lives in the console, when it still can be found there.
    static func link(_ r: AuditRecord) -> String? {
        let d = detail(r)
        let parts = r.subject.split(separator: " ", maxSplits: 1).map(String.init)
        switch r.action {
        case "task.create": return d["task"].map { Route.task.path($0) }
        case "task.delete": return parts.count == 2 ? nil : d["app"].map { Route.app.path($0) }
        case _ where r.action.hasPrefix("task."): return Int64(r.subject) != nil ? Route.task.path(r.subject) : nil
        case "package.add": return parts.count == 2 ? Route.package.path(parts[0], parts[1]) : nil
        case "app.create", "app.rename": return Route.app.path(r.subject)
        case "whitelist.delete": return Route.whitelists.path()
        case "whitelist.create": return Route.whitelists.path()
        case _ where r.action.hasPrefix("whitelist."): return Int64(r.subject) != nil ? Route.whitelist.path(r.subject) : nil
        case _ where r.action.hasPrefix("settings."): return Route.settings.path()
        case _ where r.action.hasPrefix("user."): return Route.users.path()
        case _ where r.action.hasPrefix("token."): return Route.tokens.path()
        case _ where r.action.hasPrefix("import."): return parts.first.flatMap { Int64($0) }.map { Route.importPage.path(String($0)) }
        default: return nil
        }
    }

    /// What happened, in a sentence.
    static func sentence(_ r: AuditRecord) -> String {
        let d = detail(r)
        func v(_ key: String) -> String { d[key] ?? "?" }
        let version = d["version"].map { " (\($0))" } ?? ""
        switch r.action {
        case "app.create": return "Created the app, named “\(v("name"))”."
        case "app.rename": return "Renamed the app from “\(v("before"))” to “\(v("name"))”."
        case "package.add":
            return "Added the package: \(v("type")), \(count(d["files"], "file")), \(humanSize(Int64(d["size"] ?? "") ?? 0))."
        case "task.create":
            let kind = d["type"] == TaskType.official.rawValue ? "an official release" : "a grayscale release (\(modeWords(d["mode"])))"
            return "Created task \(v("task")): \(kind)" + (d["approval"] == ApprovalState.awaiting.rawValue ? ", awaiting approval." : ".")
        case "task.pause": return "Paused the task\(version)."
        case "task.resume": return "Resumed the task\(version)."
        case "task.finish":
            return "Finished the task\(version)" + (d["approval"] == ApprovalState.withdrawn.rawValue ? "; the request for approval was withdrawn." : ".")
        case "task.promote":
            return d["approval"] == ApprovalState.awaiting.rawValue ? "Asked for the task\(version) to be promoted to official; it awaits a reviewer."
                : "Promoted the task\(version) to an official release."
        case "task.rollback": return "Rolled back the official release\(version)."
        case "task.percentage":
            let from = Double(d["from"] ?? "").map { String(format: "%g %%", $0) } ?? "?"
            let to = Double(d["to"] ?? "").map { String(format: "%g %%", $0) } ?? "?"
            return "Changed the percentage\(version) from \(from) to \(to)" + (d["approval"] == ApprovalState.awaiting.rawValue ? "; the wider share awaits a reviewer." : ".")
        case "task.ramp":
            if let gate = d["gate"] { return "Paused the task\(version) by its health gate: \(gate)." }
            if let baseline = d["gateBaseline"] { return "The health gate counts from here\(version): \(baseline)." }
            let waits = d["approval"] == ApprovalState.awaiting.rawValue ? "; it awaits a reviewer." : "."
            return "Took ramp step \(v("step"))\(version)" + waits
        case "task.delete": return "Deleted the finished task\(version)."
        case "task.approve", "task.reject":
            let what = d["for"] == ApprovalSubject.promotion.rawValue ? "the promotion to official" : d["for"] == ApprovalSubject.widening.rawValue ? "the wider share" : "the release"
            let comment = (d["comment"] ?? "").isEmpty ? "" : " Comment: “\(d["comment"]!)”"
            return "\(r.action == "task.approve" ? "Approved" : "Rejected") \(what)\(version), asked for by \(v("requestedBy")).\(comment)"
        case "whitelist.create": return "Created the \(v("kind")) whitelist with \(count(d["values"], "value"))."
        case "whitelist.addValues":
            return "Added \(count(d["added"], "value"))." + (d["awaitingApproval"].map { " Tasks \($0) now wait for a reviewer." } ?? "")
        case "whitelist.removeValues": return "Removed \(count(d["removed"], "value"))."
        case "whitelist.delete": return "Deleted the whitelist “\(v("name"))”."
        case "settings.virtualDomain":
            return d["unchanged"] == "true" ? "Saved the virtual domain \(v("virtualDomain")) (unchanged)." : "Set the virtual domain to \(v("virtualDomain"))."
        case "settings.globalLocation": return "Set the global resource host to \(v("globalHost")) with app key \(v("appKey"))."
        case "settings.signingKey":
            return "Installed the signing key \(v("fingerprint").prefix(16))…; \(v("resignedPackages")) packages were signed again."
        case "settings.updateReqRate": return "Set the update check interval to \(v("after")) seconds (before: \(v("before")))."
        case "settings.approval": return "Set the approval rules: \(approvalWords(v("after"))) (before: \(approvalWords(v("before"))))."
        case "user.create": return "Created the user as \(v("role"))" + (d["via"] == "setup" ? " at first-run setup." : ".")
        case "user.role": return "Changed the role from \(v("before")) to \(v("role"))."
        case "user.disable": return "Disabled the user: their sessions ended and their tokens stopped working."
        case "user.enable": return "Enabled the user."
        case "user.resetPassword":
            return "Reset the password; the user's sessions ended" + (d["tokensRevoked"].map { $0 == "0" ? "." : " and \($0) API tokens were revoked." } ?? ".")
        case "user.password": return "Changed their own password."
        case "token.create": return "Created API token \(v("token"))\((d["name"] ?? "").isEmpty ? "" : " “\(d["name"]!)”") with scopes \(v("scopes"))."
        case "token.revoke": return "Revoked the token\((d["name"] ?? "").isEmpty ? "" : " “\(d["name"]!)”") of \(v("user"))."
        case "import.create": return "Uploaded a batch import of \(count(d["files"], "zip")), \(v("ready")) ready."
        case "import.editRow": return "Edited a row of the import (version \(v("version")))."
        case "import.submit": return "Submitted the import."
        default:
            let rest = d.filter { $0.key != "app" }.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            return rest.isEmpty ? "\(r.action)." : "\(r.action): \(rest)."
        }
    }

    /// "1 file", "3 files", "? files".
    static func count(_ n: String?, _ noun: String) -> String { n == "1" ? "1 \(noun)" : "\(n ?? "?") \(noun)s" }

    /// "official=true gray=false" as words.
    static func approvalWords(_ rules: String) -> String {
        let on = Dictionary(rules.split(separator: " ").compactMap { pair -> (String, Bool)? in
            let kv = pair.split(separator: "=")
            return kv.count == 2 ? (String(kv[0]), kv[1] == "true") : nil
        }, uniquingKeysWith: { a, _ in a })
        switch (on["official"] ?? false, on["gray"] ?? false) {
        case (true, true): return "official and grayscale releases need a reviewer"
        case (true, false): return "official releases need a reviewer"
        case (false, true): return "grayscale releases need a reviewer"
        case (false, false): return "no release needs a reviewer"
        }
    }

    static func modeWords(_ mode: String?) -> String {
        switch mode {
        case "whitelist": "whitelist"
        case "timeWindow": "time window"
        case "percentage": "percentage of devices"
        default: mode ?? "?"
        }
    }
}
