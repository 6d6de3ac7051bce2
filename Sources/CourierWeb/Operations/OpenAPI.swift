import CourierCore
import Foundation
import HTTPTypes

/// The JSON API described as OpenAPI 3.1 (`GET /api/v1/openapi.json`, no token). Paths come from
/// the same `Route` values the router registers, and each operation's scope from the route
/// table, so the document cannot name a path the server does not answer (a test checks both ways).
enum OpenAPI {
    typealias Schema = [String: Any]

    struct Operation {
        enum Body { case json(Schema), multipart(Schema), pem }
        let method: HTTPRequest.Method
        let route: Route
        let summary: String
        var body: Body? = nil
        var status = 200
        var answer: Schema? = nil
        var query: [(String, String)] = []
    }

    static func ref(_ name: String) -> Schema { ["$ref": "#/components/schemas/\(name)"] }
    static var string: Schema { ["type": "string"] }
    static var integer: Schema { ["type": "integer"] }
    static var number: Schema { ["type": "number"] }
    static var boolean: Schema { ["type": "boolean"] }
    static func array(_ items: Schema) -> Schema { ["type": "array", "items": items] }
    static func object(_ properties: [String: Schema], required: [String] = []) -> Schema {
        var o: Schema = ["type": "object", "properties": properties]
        if !required.isEmpty { o["required"] = required }
        return o
    }
    static func nullable(_ type: String) -> Schema { ["type": [type, "null"]] }

    static var operations: [Operation] { [
        Operation(method: .get, route: .apiOpenAPI, summary: "This document."),
        Operation(method: .get, route: .apiSettings, summary: "The configuration.", answer: ref("Settings")),
        Operation(method: .put, route: .apiSettings, summary: "Set the virtual domain (once), the global resource location, the approval rules.",
                  body: .json(ref("Settings")), answer: ref("Settings")),
        Operation(method: .put, route: .apiSigningKey, summary: "Install an RSA private key (PEM); every package is re-signed.", body: .pem,
                  answer: object(["fingerprint": string, "resignedPackages": string])),
        Operation(method: .post, route: .apiGenerateKey, summary: "Generate and install a 2048-bit key.", status: 201,
                  answer: object(["fingerprint": string, "publicKey": string, "resignedPackages": string])),
        Operation(method: .get, route: .apiPublicKey, summary: "The signing key's public half, PEM (no token needed)."),
        Operation(method: .get, route: .apiApps, summary: "H5 apps, 100 a page.",
                  answer: object(["apps": array(ref("App")), "total": integer, "page": integer, "pageCount": integer]),
                  query: [("q", "Search in IDs and names."), ("page", "Page number, from 1.")]),
        Operation(method: .post, route: .apiApps, summary: "Create an H5 app.",
                  body: .json(object(["id": string, "name": string], required: ["id", "name"])), status: 201, answer: ref("App")),
        Operation(method: .get, route: .apiApp, summary: "An app with its packages, newest first.", answer: ref("App")),
        Operation(method: .post, route: .apiPackages, summary: "Add an offline package (multipart; the zip in `file`).",
                  body: .multipart(ref("PackageUpload")), status: 201, answer: ref("Package")),
        Operation(method: .post, route: .apiPackageTasks, summary: "Create a release task for a package version.",
                  body: .json(ref("TaskRequest")), status: 201, answer: ref("Task")),
        Operation(method: .get, route: .apiPackageDiff,
                  summary: "What changed from another version of the app to this one, file by file, and the patches to this version (SPEC §3).",
                  answer: object(["added": array(object(["path": string, "size": integer])), "removed": array(object(["path": string, "size": integer])),
                                  "changed": array(object(["path": string, "sizeFrom": integer, "sizeTo": integer])),
                                  "patches": array(object(["from": string, "size": integer]))]),
                  query: [("from", "The other version (required).")]),
        Operation(method: .post, route: .apiPackageRevoke,
                  summary: "Revoke a released version with a reason: never offered again; devices on it are sent back (rollback: true) to the newest version below that admits them.",
                  body: .json(object(["reason": string], required: ["reason"])), answer: ref("Package")),
        Operation(method: .get, route: .apiAdoption, summary: "Distinct devices per installed version over the last 24 hours (an estimate; standardError says how close).",
                  answer: object(["versions": array(object(["version": string, "devices": integer])), "since": string, "devices": integer,
                                  "standardError": number])),
        Operation(method: .get, route: .apiTask, summary: "A task with its client event counts.", answer: ref("Task")),
        Operation(method: .patch, route: .apiTask, summary: "Change a percentage task's share (raising keeps every admitted device).",
                  body: .json(object(["percentage": number], required: ["percentage"])), answer: ref("Task")),
        Operation(method: .delete, route: .apiTask, summary: "Delete a finished or rejected task.", status: 204),
        Operation(method: .post, route: .apiTaskOperation, summary: "pause, resume, finish, promote or rollback.", answer: ref("Task")),
        Operation(method: .get, route: .apiTaskHealth, summary: "Release health: devices per hour since the task began, the failure rate and its 95 % Wilson lower bound.",
                  answer: object(["hours": array(object(["at": string, "checks": integer, "downloads": integer, "installs": integer,
                                                         "verifyFailed": integer, "installFailed": integer, "trialFailed": integer, "rollbacks": integer])),
                                  "failureRate": nullable("number"), "failureRateLow": nullable("number"), "installs": integer, "failures": integer,
                                  "healthThreshold": nullable("number")])),
        Operation(method: .post, route: .apiSimulate,
                  summary: "The targeting simulator: an update request's body (optionally \"app\") → per app the version offered and, per unfinished task, why it admits or refuses the device. Changes nothing.",
                  body: .json(object(["platform": string, "clientVersion": string, "deviceId": string, "userId": string, "model": string,
                                      "osVersion": string, "network": string, "city": string,
                                      "apps": array(object(["id": string, "version": string])), "app": string], required: ["platform", "clientVersion"])),
                  answer: object(["apps": array(object(["id": string, "installed": nullable("string"), "offered": nullable("string"), "rollback": boolean,
                                                        "summary": string,
                                                        "tasks": array(object(["id": integer, "version": string, "admits": boolean, "reason": string]))]))])),
        Operation(method: .post, route: .apiTaskApprove, summary: "Approve what the task waits for (a reviewer who did not ask for it).",
                  body: .json(object(["comment": string])), answer: ref("Task")),
        Operation(method: .post, route: .apiTaskReject, summary: "Reject what the task waits for, saying why.",
                  body: .json(object(["comment": string], required: ["comment"])), answer: ref("Task")),
        Operation(method: .get, route: .apiWhitelists, summary: "Whitelists with their sizes.",
                  answer: object(["whitelists": array(ref("Whitelist"))])),
        Operation(method: .post, route: .apiWhitelists, summary: "Create a whitelist.",
                  body: .json(object(["name": string, "kind": ["enum": ["user", "device", "regex"]], "values": array(string)],
                                     required: ["name", "kind"])), status: 201, answer: ref("Whitelist")),
        Operation(method: .post, route: .apiWhitelistValues, summary: "Add values to a whitelist.",
                  body: .json(object(["values": array(string)], required: ["values"])), answer: object(["added": integer])),
        Operation(method: .delete, route: .apiWhitelist, summary: "Delete a whitelist no unfinished task uses.", status: 204),
        Operation(method: .get, route: .apiAudit, summary: "The audit log, newest first, 50 a page, and whether its hash chain holds.",
                  answer: object(["entries": array(object(["id": integer, "at": string, "user": string, "action": string,
                                                           "subject": string, "detail": string])),
                                  "page": integer, "pageCount": integer, "total": integer, "chainValid": boolean]),
                  query: [("app", "Only this app's changes."), ("user", "Only this person's."), ("kind", "Only this kind (e.g. task)."),
                          ("page", "Page number, from 1.")]),
        Operation(method: .post, route: .apiImports, summary: "Batch import: up to 100 zips named {appId}.zip (multipart, each a `file` part).",
                  body: .multipart(object(["file": array(["type": "string", "contentMediaType": "application/zip"])])), status: 201,
                  answer: ref("Import")),
        Operation(method: .get, route: .apiImport, summary: "A batch import and its rows.", answer: ref("Import")),
        Operation(method: .patch, route: .apiImportRow, summary: "Edit a row's package fields before submitting.",
                  body: .json(ref("PackageFields")), answer: ref("Import")),
        Operation(method: .post, route: .apiImportSubmit, summary: "Validate every row again and create the packages.", answer: ref("Import")),
    ] }

    static var components: Schema {
        // Every setting of `PackageField.all` but the platform checkboxes (an API caller sends a minimum).
        var packageFields: [String: Schema] = [:]
        var packageSettings: [String: Schema] = [:]
        for f in PackageField.all where !f.isFlag {
            packageFields[f.key] = f.choices.isEmpty ? string : ["enum": f.choices.map(\.value)]
            packageSettings[f.key] = f.optional ? nullable("string") : string
        }
        var upload = packageFields
        upload["file"] = ["type": "string", "contentMediaType": "application/zip"]
        return [
            "securitySchemes": ["token": ["type": "http", "scheme": "bearer",
                                          "description": "An API token from the API tokens page or `courier token create`."]],
            "schemas": [
                "Error": object(["error": object(["message": string, "field": string], required: ["message"])], required: ["error"]),
                "Settings": object(["virtualDomain": nullable("string"), "globalHost": nullable("string"), "appKey": nullable("string"),
                                    "signingKeyFingerprint": nullable("string"), "officialNeedsApproval": boolean, "grayNeedsApproval": boolean,
                                    "updateReqRate": ["type": "integer", "minimum": 0, "maximum": 86400],
                                    "webhookUrl": nullable("string"), "webhookSecret": ["type": "string", "description": "Answered once, by the PUT that set webhookUrl."]]),
                "App": object(["id": string, "name": string, "type": nullable("string"), "packages": array(ref("Package"))],
                              required: ["id", "name"]),
                "PackageFields": object(packageFields),
                "PackageUpload": object(upload, required: ["file", "version"]),
                "Package": object(packageSettings.merging(["appId": string, "status": string, "size": integer, "sha256": string,
                                   "md5": string, "files": integer, "amrUrl": string, "fallbackBaseUrl": string,
                                   "createdAt": ["type": "string", "format": "date-time"]], uniquingKeysWith: { _, fact in fact })),
                "Rule": object(["field": ["enum": TargetingRule.Field.allCases.map(\.rawValue)],
                                "op": ["enum": TargetingRule.Operator.allCases.map(\.rawValue)], "values": array(string)],
                               required: ["field", "op", "values"]),
                "TaskRequest": object(["type": ["enum": TaskType.allCases.map(\.rawValue)], "mode": ["enum": ModeName.allCases.map(\.rawValue)],
                                       "whitelistIds": array(integer), "endTime": ["type": "string", "format": "date-time"], "userCount": integer,
                                       "percentage": number, "rules": array(ref("Rule")), "description": string,
                                       "steps": array(object(["percentage": number, "promote": boolean, "afterMinutes": integer], required: ["afterMinutes"])),
                                       "healthThreshold": number], required: ["type"]),
                "Task": object(["id": integer, "appId": string, "version": string, "type": string, "mode": nullable("string"),
                                "status": ["enum": ReleaseTask.Status.allCases.map(\.rawValue)], "rolledBack": boolean,
                                "whitelistIds": array(integer), "endTime": nullable("string"), "userCount": nullable("integer"),
                                "admitted": nullable("integer"), "percentage": nullable("number"), "rules": array(ref("Rule")),
                                "description": string, "descriptionHtml": string, "events": ["type": "object", "additionalProperties": integer],
                                "createdBy": string, "createdAt": string,
                                "approval": object(["state": ["enum": ApprovalState.allCases.filter { $0 != .none }.map(\.rawValue)],
                                                    "request": ["enum": ApprovalSubject.allCases.filter { $0 != .none }.map(\.rawValue)], "requestedBy": string, "requestedAt": string,
                                                    "decidedBy": string, "decidedAt": string, "comment": string, "commentHtml": string])]),
                "Whitelist": object(["id": integer, "name": string, "kind": string, "count": integer]),
                "Import": object(["id": integer, "rows": array(object(["file": string, "appId": string, "version": string,
                                                                        "status": string, "error": nullable("string")]))]),
            ] as Schema,
        ]
    }

    /// The document; `permissions` says which scope each operation needs (from the route table).
    static func document(serverURL: String, permissions: [String: Permission]) -> Schema {
        var paths: [String: Schema] = [:]
        for op in operations {
            let path = op.route.pattern.split(separator: "/", omittingEmptySubsequences: false).map { part in
                part.hasPrefix(":") ? "{\(part.dropFirst())}" : String(part)
            }.joined(separator: "/")
            var o: Schema = ["summary": op.summary, "operationId": "\(op.method.rawValue.lowercased())\(op.route.pattern)"]
            var parameters: [Schema] = op.route.pattern.split(separator: "/").filter { $0.hasPrefix(":") }.map {
                ["name": String($0.dropFirst()), "in": "path", "required": true, "schema": string]
            }
            parameters += op.query.map { ["name": $0.0, "in": "query", "description": $0.1, "schema": string] }
            if !parameters.isEmpty { o["parameters"] = parameters }
            if let permission = permissions["\(op.method) \(op.route.pattern)"] {
                o["description"] = "Needs the `\(permission.scope.rawValue)` scope, and a role that may \(permission.rawValue)."
            } else {
                o["security"] = [Schema]()
            }
            switch op.body {
            case .json(let s): o["requestBody"] = ["required": true, "content": ["application/json": ["schema": s]]]
            case .multipart(let s): o["requestBody"] = ["required": true, "content": ["multipart/form-data": ["schema": s]]]
            case .pem: o["requestBody"] = ["required": true, "content": ["application/x-pem-file": ["schema": string]]]
            case nil: break
            }
            var ok: Schema = ["description": op.status == 204 ? "Done." : "The answer."]
            if let a = op.answer { ok["content"] = ["application/json": ["schema": a]] }
            let error: Schema = ["description": "Refused: the message says why; `field` names the field to blame.",
                                 "content": ["application/json": ["schema": ref("Error")]]]
            o["responses"] = [String(op.status): ok, "4XX": error]
            paths[path, default: [:]][op.method.rawValue.lowercased()] = o
        }
        return [
            "openapi": "3.1.0",
            "info": ["title": "Courier JSON API", "version": "1",
                     "description": "The console's twin for CI and scripts (SPEC §8). Every action runs the console's validation."],
            "servers": [["url": serverURL]],
            "security": [["token": [String]()]],
            "paths": paths,
            "components": components,
        ]
    }
}
