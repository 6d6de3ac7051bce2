import Foundation

/// Who the device is, as update checks say it (SPEC §4).
public struct DeviceProfile: Codable, Equatable, Sendable {
    public var platform: String
    public var clientVersion: String
    public var deviceId: String
    public var userId: String
    public var model: String
    public var osVersion: String
    public var network: String
    public var city: String

    public init(platform: String = "android", clientVersion: String = "99.0", deviceId: String, userId: String = "", model: String = "",
                osVersion: String = "", network: String = "WIFI", city: String = "") {
        self.platform = platform; self.clientVersion = clientVersion; self.deviceId = deviceId; self.userId = userId
        self.model = model; self.osVersion = osVersion; self.network = network; self.city = city
    }

    /// Wi-Fi, as the host says the device is connected (a package may ask to wait for it).
    public var onWiFi: Bool { network.uppercased() == "WIFI" }
}

/// One app's entry in an update answer or a preset file, read without trusting it: every field
/// has its type checked, versions and IDs their shape, URLs their scheme, sizes their range.
public struct PackageOffer: Equatable, Sendable {
    public let appId: String
    public let name: String
    public let version: String
    public let packageURL: URL
    public let size: UInt64
    public let sha256: String
    public let fallbackBase: URL?
    public let vhost: String?
    public let mainURL: String?
    /// `preload` installs once verified; `lazy` when the app is first opened.
    public let preload: Bool
    /// False: download only on Wi-Fi.
    public let anyNetwork: Bool
    public let rollback: Bool
    /// `extend_info.asyncReqRate`, the app's own check interval, when it gives one.
    public let asyncReqRate: Int?
    /// A patch from the installed version (SPEC §3), when the answer offers one that reads well.
    public var patch: PatchOffer? = nil
}

/// `patch`, `patch_size`, `patch_sha256`, `patch_from` of an answer's entry.
public struct PatchOffer: Equatable, Sendable {
    public let url: URL
    public let size: UInt64
    public let sha256: String
    public let from: String
}

/// An update answer (`{"config":{"updateReqRate"},"data":[…]}`), or why it is refused.
public struct UpdateAnswer: Equatable, Sendable {
    public let updateReqRate: Int?
    public let offers: [PackageOffer]
    /// Entries that could not be read, in words: they are passed over, never half-used.
    public let refused: [String]

    /// The largest answer read (an answer for 500 apps is far smaller).
    public static let maxBytes = 4 << 20

    public static func parse(_ data: Data) throws -> UpdateAnswer {
        guard data.count <= maxBytes else { throw ClientFailure(.downloadFailed, "The server's answer is over \(maxBytes >> 20) MB.") }
        guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let list = root["data"] as? [Any] else {
            throw ClientFailure(.downloadFailed, "The server's answer is not an update answer (no \"data\" list).")
        }
        let config = root["config"] as? [String: Any]
        var offers: [PackageOffer] = []
        var refused: [String] = []
        for item in list.prefix(1000) {
            do { offers.append(try offer(item)) } catch { refused.append("\(error)") }
        }
        return UpdateAnswer(updateReqRate: (config?["updateReqRate"] as? NSNumber).flatMap { rate($0) }, offers: offers, refused: refused)
    }

    static func rate(_ n: NSNumber) -> Int? {
        let v = n.doubleValue
        return v >= 0 && v <= 86400 && v == v.rounded() ? Int(v) : nil
    }

    static func offer(_ item: Any) throws -> PackageOffer {
        func bad(_ why: String) -> ClientFailure { ClientFailure(.downloadFailed, "An entry of the answer is refused: \(why)") }
        guard let e = item as? [String: Any] else { throw bad("it is not an object.") }
        guard let appId = e["app_id"] as? String, appId.utf8.count == 8, appId.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw bad("app_id is not 8 digits.")
        }
        guard let version = e["version"] as? String, isVersion(version) else { throw bad("the version of \(appId) is not four numbers.") }
        guard let text = e["package_url"] as? String, let url = URL(string: text), ["http", "https"].contains(url.scheme?.lowercased() ?? "") else {
            throw bad("the package URL of \(appId) \(version) is not an http(s) URL.")
        }
        guard let sizeNumber = e["package_size"] as? NSNumber, sizeNumber.doubleValue >= 1, sizeNumber.doubleValue <= Double(1 << 40),
              sizeNumber.doubleValue == sizeNumber.doubleValue.rounded() else {
            throw bad("the package size of \(appId) \(version) is not a positive whole number.")
        }
        guard let sha = e["package_sha256"] as? String, sha.utf8.count == 64, sha.allSatisfy(\.isHexDigit) else {
            throw bad("the SHA-256 of \(appId) \(version) is not 64 hex digits.")
        }
        let fallback = (e["fallback_base_url"] as? String).flatMap(URL.init(string:)).flatMap { ["http", "https"].contains($0.scheme?.lowercased() ?? "") ? $0 : nil }
        let main = (e["main_url"] as? String).flatMap { $0.hasPrefix("/") && !$0.contains("..") ? $0 : nil }
        let extend = e["extend_info"] as? [String: Any]
        let async = (extend?["asyncReqRate"] as? String).flatMap { Int($0) } ?? (extend?["asyncReqRate"] as? NSNumber).flatMap { rate($0) }
        var offer = PackageOffer(appId: appId, name: e["name"] as? String ?? appId, version: version, packageURL: url,
                                 size: UInt64(sizeNumber.doubleValue), sha256: sha.lowercased(), fallbackBase: fallback,
                                 vhost: e["vhost"] as? String, mainURL: main, preload: (e["install_type"] as? String) == "preload",
                                 anyNetwork: (e["auto_install"] as? Bool) ?? false, rollback: (e["rollback"] as? Bool) ?? false,
                                 asyncReqRate: async.flatMap { (0...86400).contains($0) ? $0 : nil })
        offer.patch = patch(e, of: offer)
        return offer
    }

    /// The entry's patch, or nil when it has none or one that does not read well (the full
    /// package is then used): the patch's address must be the package's own server and name
    /// this app, this version and the base it is from; its size below the package's.
    static func patch(_ e: [String: Any], of o: PackageOffer) -> PatchOffer? {
        guard !o.rollback, let text = e["patch"] as? String, let url = URL(string: text), let from = e["patch_from"] as? String, isVersion(from),
              url.scheme == o.packageURL.scheme, url.host == o.packageURL.host, url.port == o.packageURL.port,
              url.path == "/packages/\(o.appId)/\(o.version).patch-\(from).amr", url.query == nil,
              let size = e["patch_size"] as? NSNumber, size.doubleValue >= 1, size.doubleValue < Double(o.size), size.doubleValue == size.doubleValue.rounded(),
              let sha = e["patch_sha256"] as? String, sha.utf8.count == 64, sha.allSatisfy(\.isHexDigit) else { return nil }
        return PatchOffer(url: url, size: UInt64(size.doubleValue), sha256: sha.lowercased(), from: from)
    }

    /// Four numbers of at most five digits (SPEC §2).
    static func isVersion(_ v: String) -> Bool {
        let parts = v.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { !$0.isEmpty && $0.count <= 5 && $0.allSatisfy { $0.isASCII && $0.isNumber } }
    }
}
