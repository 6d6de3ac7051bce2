import CourierCore
import Foundation


/// The single row of console settings.
public struct SettingsRecord: Codable, Sendable {
    public var id = 1
    public var virtualDomain: String?
    public var globalHost: String?
    public var appKey: String?
    public var signingKeyPEM: String?
    public var signingKeyFingerprint: String?
    /// Official releases (new, or promoted) wait for a reviewer (SPEC §7).
    public var officialNeedsApproval = false
    /// New grayscale tasks wait for a reviewer too.
    public var grayNeedsApproval = false
    /// The least number of seconds between a device's update checks (SPEC §4, `config.updateReqRate`).
    public var updateReqRate = SettingsRecord.defaultUpdateReqRate
    public static let defaultUpdateReqRate = 1800
    public static let updateReqRateRange = 0...86400
    public init() {}

}

public struct UserRecord: Codable, Sendable {
    public var id: Int64?
    public var name: String
    public var passwordHash: String
    public var role: Role
    public var createdAt: Date
    /// A disabled user cannot sign in; their sessions and tokens stop working at once.
    public var disabled = false

    public init(name: String, passwordHash: String, role: Role) {
        self.name = name
        self.passwordHash = passwordHash
        self.role = role
        createdAt = Date()
    }
}

public struct SessionRecord: Codable, Sendable {
    public init(idHash: String, userId: Int64, csrfToken: String, expiresAt: Date) {
        self.idHash = idHash; self.userId = userId; self.csrfToken = csrfToken; self.expiresAt = expiresAt
    }
    /// SHA-256 of the cookie value: a leaked database does not give live sessions.
    public var idHash: String
    public var userId: Int64
    public var csrfToken: String
    public var expiresAt: Date
}

public struct APITokenRecord: Codable, Sendable {
    public init(id: Int64?, userId: Int64, tokenHash: String, scopes: String, createdAt: Date) {
        self.id = id; self.userId = userId; self.tokenHash = tokenHash; self.scopes = scopes; self.createdAt = createdAt
    }
    public var id: Int64?
    public var userId: Int64
    public var tokenHash: String
    public var scopes: String          // comma-separated: read, upload, release
    public var createdAt: Date
    /// What the token is for ("CI of the checkout app"), shown in the list.
    public var name = ""
    public var expiresAt: Date?
    /// Kept to the minute: the API writes it at most once a minute per token.
    public var lastUsedAt: Date?
    public var revokedAt: Date?
    public var revokedBy: String?
    public var scopeSet: Set<TokenScope> { TokenScope.parse(scopes) ?? [] }

    /// Why the token no longer opens the API, or nil while it does.
    public func refusal(now: Date = Date()) -> String? {
        if let revokedAt { return "This API token was revoked on \(Self.day(revokedAt)); create a new one on the API tokens page." }
        if let expiresAt, expiresAt <= now { return "This API token expired on \(Self.day(expiresAt)); create a new one on the API tokens page." }
        return nil
    }

    static func day(_ date: Date) -> String { String(ISO8601DateFormatter().string(from: date).prefix(10)) }
}

public struct AppRecord: Codable, Sendable {
    public var id: String
    public var name: String
    public var type: PackageType?      // fixed by the first package
    public var createdAt: Date
    public init(id: AppID, name: String) {
        self.id = id.rawValue
        self.name = name
        createdAt = Date()
    }

    /// An app as a store reads it back.
    package init(stored id: String, name: String, type: PackageType?, createdAt: Date) {
        self.id = id; self.name = name; self.type = type; self.createdAt = createdAt
    }
}

public struct PackageRecord: Codable, Sendable {
    public var id: Int64?
    public var appId: String
    public var version: String
    public var versionKey: String      // zero-padded, sorts like the version
    public var type: PackageType
    public var androidMin: String?
    public var androidMax: String?
    public var iosMin: String?
    public var iosMax: String?
    public var mainUrl: String?
    public var extendInfo = "{}"
    public var downloadPolicy = DownloadPolicy.wifi
    public var installPolicy = InstallPolicy.lazy
    public var status = PackageStatus.toBeReleased
    public var blob = ""               // SHA-256 of the .amr: its name in the blob store
    public var size: Int64 = 0
    public var md5 = ""
    public var tarOffset: Int64 = 0
    public var tarSize: Int64 = 0
    public var fileCount = 0
    public var createdAt = Date()
    public var createdBy: String
    /// The checked values of the settings without a column of their own, as a JSON object.
    public var moreSettings = "{}"


    /// A package as a store reads it back (its other fields set after).
    package init(stored appId: String, version: String, versionKey: String, type: PackageType, createdBy: String) {
        self.appId = appId; self.version = version; self.versionKey = versionKey; self.type = type; self.createdBy = createdBy
    }

    /// A package of `appId` with the validated settings of its form; the `.amr` facts (blob,
    /// sizes, offsets) are filled in once it is built.
    public init(appId: String, settings s: PackageSettings, createdBy: String) {
        self.appId = appId
        version = s.version.description
        versionKey = Self.versionKey(s.version)
        type = s.type
        androidMin = s.range.android?.min; androidMax = s.range.android?.max
        iosMin = s.range.ios?.min; iosMax = s.range.ios?.max
        mainUrl = s.mainUrl
        extendInfo = s.extendInfo
        downloadPolicy = s.downloadPolicy
        installPolicy = s.installPolicy
        moreSettings = String(decoding: (try? JSONEncoder().encode(s.more)) ?? Data("{}".utf8), as: UTF8.self)
        self.createdBy = createdBy
    }

    /// The stored settings without a column are not a JSON object of text: such a package is
    /// offered to nobody (the delivery snapshot refuses it rather than guess).
    /// So is one holding a setting this binary does not describe (a newer binary wrote it) or a
    /// value its check refuses: offering the package with that setting ignored would change
    /// what devices were told to do.
    public var moreSettingsUnreadable: Bool {
        guard let stored = try? JSONDecoder().decode([String: String].self, from: Data(moreSettings.utf8)) else { return true }
        return stored.contains { key, value in
            guard let field = PackageField.named[key], !field.hasColumn, let checked = try? field.check(value) else { return true }
            return checked != value
        }
    }

    /// Every setting's stored value by `PackageField` key (flags as `true` or empty). A setting
    /// stored before it was described, or whose stored value cannot be read, reads as its default.
    public var settingValues: [String: String] {
        let more = (try? JSONDecoder().decode([String: String].self, from: Data(moreSettings.utf8))) ?? [:]
        var v = PackageSettings.values(version: version, type: type, range: range, mainUrl: mainUrl, extendInfo: extendInfo,
                                       downloadPolicy: downloadPolicy, installPolicy: installPolicy,
                                       more: more.filter { PackageField.named[$0.key]?.hasColumn == false })
        for f in PackageField.all where v[f.key] == nil { v[f.key] = f.defaultValue }
        return v
    }

    public static func versionKey(_ v: PackageVersion) -> String {
        v.parts.map { String(repeating: "0", count: 5 - String($0).count) + String($0) }.joined(separator: ".")
    }
    public var packageVersion: PackageVersion { PackageVersion(parts: version.split(separator: ".").compactMap { Int($0) }) }
    public var range: ClientRange {
        ClientRange(android: androidMin.map { .init(min: $0, max: androidMax) },
                    ios: iosMin.map { .init(min: $0, max: iosMax) })
    }

    /// This package's settings as a form starts from them, for the app's next version (what
    /// `courier push` and batch import offer: a new version keeps the client range, policies,
    /// main URL and extended info unless someone changes them).
    public var nextVersionDraft: PackageDraft {
        var d = PackageDraft()
        for (key, value) in settingValues where key != "version" { d[key] = value }
        if d.extendInfo == "{}" { d.extendInfo = "" }
        return d
    }
}

public struct PackageFileRecord: Codable, Sendable {
    public var packageId: Int64
    public var path: String
    public var size: Int64
    public var sha256: String
    public var tarOffset: Int64
    public init(packageId: Int64, path: String, size: Int64, sha256: String, tarOffset: Int64) {
        self.packageId = packageId; self.path = path; self.size = size; self.sha256 = sha256; self.tarOffset = tarOffset
    }
}
