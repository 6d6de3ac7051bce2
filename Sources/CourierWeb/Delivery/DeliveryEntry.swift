import CourierCore
import CourierStore
import Foundation
import NIOCore

/// One app entry in the client SDK's `h5_json.json` shape (SPEC §4): the preset file and the
/// update API answer share it.
enum DeliveryEntry {
    static func json(_ p: PackageRecord, app: AppRecord, settings: SettingsRecord, publicURL: String) -> [String: Any] {
        var entry: [String: Any] = [
            "app_id": p.appId, "name": app.name, "version": p.version,
            "package_url": publicURL + Paths.amr(p),
            "package_size": p.size, "package_md5": p.md5, "package_sha256": p.blob,
            "fallback_base_url": publicURL + Paths.fallbackBase(p),
            "vhost": Paths.vhost(p.appId, domain: settings.virtualDomain),
            "extend_info": (try? JSONSerialization.jsonObject(with: Data(p.extendInfo.utf8))) ?? [String: Any](),
            "install_type": p.installPolicy.rawValue,
            "auto_install": p.downloadPolicy == .all,
            "rollback": false,
        ]
        if let main = p.mainUrl { entry["main_url"] = main }
        // Settings sent as they are, under their own answer key.
        let values = p.settingValues
        for f in PackageField.all { if let key = f.answerKey, let v = values[f.key] { entry[key] = v } }
        return entry
    }

    /// One entry as JSON bytes, made once per snapshot; with `patch`, the entry for a client
    /// whose installed version is the patch's base (SPEC §3, §4).
    static func encoded(_ p: PackageRecord, app: AppRecord, settings: SettingsRecord, publicURL: String, rollback: Bool,
                        patch: PatchRecord? = nil) -> [UInt8] {
        var entry = json(p, app: app, settings: settings, publicURL: publicURL)
        entry["rollback"] = rollback
        if let patch, let blob = patch.blob {
            entry["patch"] = publicURL + Paths.patch(patch.appId, patch.version, from: patch.base)
            entry["patch_size"] = patch.size
            entry["patch_sha256"] = blob
            entry["patch_from"] = patch.base
        }
        return Array((try? JSONSerialization.data(withJSONObject: entry, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8))
    }

    /// `{"config":{…},"data":[…]}` around pre-encoded entries.
    static func answer(_ entries: [[UInt8]], updateReqRate: Int) -> ByteBuffer {
        var out = ByteBuffer()
        out.reserveCapacity(64 + entries.reduce(0) { $0 + $1.count + 1 })
        out.writeString(#"{"config":{"updateReqRate":\#(updateReqRate)},"data":["#)
        for (i, e) in entries.enumerated() {
            if i > 0 { out.writeInteger(UInt8(ascii: ",")) }
            out.writeBytes(e)
        }
        out.writeString("]}")
        return out
    }

    static func preset(_ entries: [[String: Any]], updateReqRate: Int) throws -> Data {
        try JSONSerialization.data(withJSONObject: ["config": ["updateReqRate": updateReqRate], "data": entries],
                                   options: [.sortedKeys, .withoutEscapingSlashes])
    }
}
