import Foundation

public enum PackageType: String, CaseIterable, Codable, Sendable {
    case normal, global
}

public enum DownloadPolicy: String, CaseIterable, Codable, Sendable {
    case wifi, all
}

public enum InstallPolicy: String, CaseIterable, Codable, Sendable {
    case lazy, preload
}

/// Where a package stands in its release (SPEC §5).
public enum PackageStatus: String, Codable, Sendable {
    case toBeReleased, grayReleasing, officialReleasing, paused, finished, awaitingApproval, rejected

    public var label: String {
        switch self {
        case .toBeReleased: "To be released"
        case .grayReleasing: "Grayscale releasing"
        case .officialReleasing: "Official releasing"
        case .paused: "Paused"
        case .finished: "Release finished"
        case .awaitingApproval: "Awaiting approval"
        case .rejected: "Release rejected"
        }
    }
}

/// A package's settings after every rule of SPEC §2 held.
public struct PackageSettings: Sendable, Equatable {
    public let version: PackageVersion
    public let type: PackageType
    public let range: ClientRange
    public let mainUrl: String?
    public let extendInfo: String   // canonical JSON object text, "{}" when empty
    public let downloadPolicy: DownloadPolicy
    public let installPolicy: InstallPolicy
    /// The checked values of the settings without a column of their own (`PackageField.hasColumn`).
    public let more: [String: String]

    /// Every setting's checked value by `PackageField` key (flags as `true` or empty).
    public var values: [String: String] {
        Self.values(version: version.description, type: type, range: range, mainUrl: mainUrl, extendInfo: extendInfo,
                    downloadPolicy: downloadPolicy, installPolicy: installPolicy, more: more)
    }

    /// The same from the settings with a column of their own and `more`, the others (a stored
    /// package reads its columns through this too).
    public static func values(version: String, type: PackageType, range: ClientRange, mainUrl: String?, extendInfo: String,
                              downloadPolicy: DownloadPolicy, installPolicy: InstallPolicy, more: [String: String]) -> [String: String] {
        var v = more
        v["version"] = version; v["type"] = type.rawValue
        v["android"] = range.android == nil ? "" : "true"; v["androidMin"] = range.android?.min ?? ""; v["androidMax"] = range.android?.max ?? ""
        v["ios"] = range.ios == nil ? "" : "true"; v["iosMin"] = range.ios?.min ?? ""; v["iosMax"] = range.ios?.max ?? ""
        v["mainUrl"] = mainUrl ?? ""; v["extendInfo"] = extendInfo
        v["downloadPolicy"] = downloadPolicy.rawValue; v["installPolicy"] = installPolicy.rawValue
        return v
    }
}

/// What is already known about the app a package is added to.
public struct AppFacts: Sendable {
    public var fixedType: PackageType?       // set once the app has a package
    public var highestVersion: PackageVersion?
    public init(fixedType: PackageType?, highestVersion: PackageVersion?) {
        self.fixedType = fixedType
        self.highestVersion = highestVersion
    }

    /// An app's versions only go up: a new package's version is above every one it has.
    /// (Checked on the form, and again in the transaction that records the package.)
    public func checkNext(_ version: PackageVersion) throws(FieldError) {
        if let highestVersion, version <= highestVersion {
            throw FieldError("version", "The version must be greater than \(highestVersion), the app's highest version.")
        }
    }

    /// The first package fixes an app's resource package type.
    public func checkType(_ type: PackageType) throws(FieldError) {
        if let fixedType, fixedType != type {
            throw FieldError("type", "This app's packages are \(fixedType.rawValue); its resource package type cannot change.")
        }
    }

    /// Both, as a store checks them before recording a package.
    public func check(_ version: PackageVersion, _ type: PackageType) throws(FieldError) {
        try checkNext(version)
        try checkType(type)
    }
}

extension PackageDraft {
    /// Checks every field rule that does not need the zip. All problems are reported at once.
    public func validate(for app: AppFacts) throws(FieldErrors) -> PackageSettings {
        var errors = FieldErrors()
        let version = errors.collect { () throws(FieldError) in try PackageVersion(validating: self.version) }
        if let version { _ = errors.collect { () throws(FieldError) in try app.checkNext(version) } }
        var type: PackageType?
        if let fixed = app.fixedType {
            type = fixed    // chosen with the first package, never changed after
        } else if let t = PackageType(rawValue: self.type) {
            type = t
        } else {
            errors.append(FieldError("type", "Choose the resource package type: normal or global."))
        }
        var range: ClientRange?
        do {
            range = try ClientRange.validate(android: android, androidMin: androidMin, androidMax: androidMax,
                                             ios: ios, iosMin: iosMin, iosMax: iosMax)
        } catch {
            error.errors.forEach { errors.append($0) }
        }
        var checked: [String: String] = [:]
        for f in PackageField.described {
            do throws(FieldError) { checked[f.key] = try f.check(self[f.key]) } catch { errors.append(error) }
        }
        guard errors.isEmpty, let version, let type, let range, let main = checked["mainUrl"], let info = checked["extendInfo"],
              let download = checked["downloadPolicy"].flatMap(DownloadPolicy.init), let install = checked["installPolicy"].flatMap(InstallPolicy.init) else {
            throw errors
        }
        let more = checked.filter { PackageField.named[$0.key]?.hasColumn == false }
        return PackageSettings(version: version, type: type, range: range, mainUrl: main.isEmpty ? nil : main,
                               extendInfo: info, downloadPolicy: download, installPolicy: install, more: more)
    }
}

public enum MainURL {
    /// Optional absolute path inside the package; whether it exists is checked against the zip.
    public static func validate(_ text: String, field: String = "mainUrl") throws(FieldError) -> String? {
        let path = text.trimmingCharacters(in: .whitespaces)
        if path.isEmpty { return nil }
        guard path.hasPrefix("/"), !path.hasSuffix("/"), !path.contains("//"), !path.contains("?"), !path.contains("#") else {
            throw FieldError(field, "The main entrance URL must be an absolute path to a file inside the package, for example /www/index.html.")
        }
        if path.split(separator: "/").contains(where: { $0 == ".." || $0 == "." }) {
            throw FieldError(field, "The main entrance URL must not contain . or .. segments.")
        }
        return path
    }
}

public enum ExtendedInfo {
    public static let maxBytes = 4096

    /// A JSON object of string or number values, at most 4 KiB; `asyncReqRate` an integer 0–86400.
    /// Returns the text as written ("{}" for blank input): clients receive it unchanged.
    public static func validate(_ text: String, field: String = "extendInfo") throws(FieldError) -> String {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty { return "{}" }
        guard trimmed.utf8.count <= maxBytes else {
            throw FieldError(field, "The extended info is \(trimmed.utf8.count) bytes; keep it within 4 KiB.")
        }
        guard trimmed.hasPrefix("{"), let object = try? JSONDecoder().decode([String: Scalar].self, from: Data(trimmed.utf8)) else {
            throw FieldError(field, "The extended info must be a JSON object whose values are strings or numbers, for example {\"asyncReqRate\":\"1800\"}.")
        }
        if let rate = object["asyncReqRate"] {
            let seconds: Double? = switch rate {
            case .string(let s): Int(s).map(Double.init)
            case .number(let n): n
            }
            guard let seconds, seconds == seconds.rounded(), (0...86400).contains(seconds) else {
                throw FieldError(field, "asyncReqRate must be a whole number of seconds from 0 to 86400 (0 = no limit).")
            }
        }
        return trimmed
    }

    enum Scalar: Decodable {
        case string(String), number(Double)
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self) { self = .string(s); return }
            // Decoding a Double refuses true/false, which is what we want.
            self = .number(try c.decode(Double.self))
        }
    }
}
