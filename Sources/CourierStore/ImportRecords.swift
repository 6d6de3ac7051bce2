import CourierCore
import Foundation

/// A batch import (SPEC §6): its files wait under `imports/{key}/` until it is submitted or
/// expires; its rows say what each file will become.
public struct ImportRecord: Codable, Sendable {
    public init(id: Int64?, key: String, createdBy: String, createdAt: Date, expiresAt: Date) {
        self.id = id; self.key = key; self.createdBy = createdBy; self.createdAt = createdAt; self.expiresAt = expiresAt
    }
    public var id: Int64?
    /// Names the folder of its files (chosen before the row exists, so a crash leaves no doubt).
    public var key: String
    public var createdBy: String
    public var createdAt = Date()
    public var expiresAt: Date
    /// `open` (editable, submittable), `submitting` (a submission is running), `done`.
    public var status = "open"

    public static let lifetime: TimeInterval = 24 * 3600
}

/// One file of an import.
public struct ImportRowRecord: Codable, Sendable {
    public var importId: Int64
    public var n: Int
    public var fileName: String
    public var appId: String?
    public var newApp: Bool
    public var type: String?
    public var fileCount: Int
    public var size: Int64
    /// The package's fields (SPEC §2) as JSON of `PackageDraft`; the version among them.
    public var fields: String
    /// Why it cannot be created (at inspection or at the last submission); nil when ready.
    public var error: String?
    /// Refused when it arrived (a bad name, a hostile zip…): it has no file and never will be created.
    public var refused: Bool
    /// Set in the transaction that creates its package.
    public var packageId: Int64?

    public var draft: PackageDraft {
        get { (try? JSONDecoder().decode(PackageDraft.self, from: Data(fields.utf8))) ?? PackageDraft() }
        set { fields = String(decoding: (try? JSONEncoder().encode(newValue)) ?? Data("{}".utf8), as: UTF8.self) }
    }
    public var created: Bool { packageId != nil }

    public init(importId: Int64, n: Int, fileName: String, appId: String?, newApp: Bool, type: String?, fileCount: Int, size: Int64,
                draft: PackageDraft, error: String?) {
        self.importId = importId; self.n = n; self.fileName = fileName; self.appId = appId; self.newApp = newApp; self.type = type
        self.fileCount = fileCount; self.size = size; self.fields = "{}"; self.error = error; self.packageId = nil
        self.refused = error != nil
        self.draft = draft
    }
}

/// The import row a package is created for.
public struct ImportRowKey: Sendable {
    public let importId: Int64
    public let n: Int
    public init(importId: Int64, n: Int) { self.importId = importId; self.n = n }
}
