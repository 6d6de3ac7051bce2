import ArgumentParser
import CourierClient
import Foundation

/// `courier device` (SPEC §10): the client library on a desktop, to see a release as a phone
/// with a given profile does. Exit codes with `--once`: 0 nothing failed, 3 a package failed
/// verification, 4 the server could not be reached.
struct Device: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check, download, verify and install Courier's packages as a device would.",
        discussion: "With --once: one forced round, then exit 0 (nothing failed; a package waiting for Wi-Fi is not a failure), 3 (a package failed verification), 4 (the server could not be reached) or 5 (the server answered with an error, or a download or install failed).",
        subcommands: [Run.self, Status.self, Broken.self, Seed.self], defaultSubcommand: Run.self)

    struct Folder: ParsableArguments {
        @Option(help: "The device's data folder (default ./device).") var data = "./device"
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "run", abstract: "Check and install (the default).")
        @Option(help: "Courier's address, e.g. http://127.0.0.1:8080.") var server: String
        @Option(name: .customLong("public-key"), help: "The signing key's public PEM (the Configuration page offers it); repeat to pin several.")
        var publicKey: [String] = []
        @Flag(name: .customLong("allow-sha1"), help: "Accept CERT.json (SHA-1) for packages without SIGN.json.") var allowSHA1 = false
        @OptionGroup var folder: Folder
        @Option(name: .customLong("proxy-port"), help: "The local proxy's port (default 8181).") var proxyPort = 8181
        @Option(help: "android or ios.") var platform = "android"
        @Option(name: .customLong("client-version")) var clientVersion = "99.0"
        @Option(name: .customLong("device-id"), help: "Default: made once and kept in the data folder.") var deviceId: String?
        @Option(name: .customLong("user-id")) var userId = ""
        @Option var model = ""
        @Option(name: .customLong("os-version")) var osVersion = ""
        @Option(help: "WIFI, 4G, 5G, …") var network = "WIFI"
        @Option var city = ""
        @Flag(help: "One forced round, then exit.") var once = false
        @Flag(help: "One JSON object a line instead of words.") var json = false

        func run() async throws {
            guard let url = URL(string: server), ["http", "https"].contains(url.scheme ?? ""), url.host != nil else {
                throw ValidationError("Give --server as an http:// or https:// address.")
            }
            let pems = try publicKey.map { path in
                guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ValidationError("\(path) cannot be read.") }
                return text
            }
            let keys: PinnedKeys
            do { keys = try PinnedKeys(pems: pems, allowSHA1: allowSHA1) } catch { throw ValidationError("\(error)") }
            let store: PackageStore
            do { store = try PackageStore(root: folder.data) } catch { throw ValidationError("\(error)") }
            let id = try deviceId ?? Self.deviceID(folder.data)
            let device = CourierDevice(server: url, profile: DeviceProfile(platform: platform, clientVersion: clientVersion, deviceId: id,
                                                                          userId: userId, model: model, osVersion: osVersion,
                                                                          network: network, city: city),
                                       keys: keys, store: store)
            // On a terminal, a download shows how far it is on one redrawn line.
            let line = !json && isatty(2) == 1 ? ProgressLine() : nil
            let out = Output(json: json, progress: line)
            if let line {
                device.progress = { app, version, have, total in
                    line.show("\(app) \(version): downloading, \(API.mb(Int64(have))) of \(API.mb(Int64(total))) (\(have * 100 / max(total, 1)) %)")
                }
            }
            if keys.isEmpty { out.say("No --public-key given: packages are installed without checking their signature.", ["warning": "unsigned"]) }
            out.say("Device \(id) (\(platform) \(clientVersion), network \(network)\(city.isEmpty ? "" : ", \(city)")) asks \(server).",
                    ["event": "start", "deviceId": id])
            let report = await device.check(force: true)
            out.round(report)
            if once {
                if report.unreachable != nil { throw ExitCode(4) }
                if report.verifyFailed { throw ExitCode(3) }
                if report.answeredWithError != nil || report.failed { throw ExitCode(5) }
                return
            }
            let proxy = try DeviceProxy(device: device, port: proxyPort, output: out)
            try await proxy.run {
                while !Task.isCancelled {
                    try? await Task.sleep(nanoseconds: 5_000_000_000)
                    // `courier device broken APP` run beside this process leaves its request here.
                    for app in Broken.requests(folder.data) {
                        if let given = try? await device.broken(app) {
                            out.say("\(app) \(given): given up (reported broken); " + (store.state.apps[app]?.installed.map { "\($0) is back." } ?? "nothing else is installed."),
                                    ["event": "trial_failed", "appId": app, "version": given])
                        }
                    }
                    let round = await device.check()
                    // Quiet while nothing happens: a round is told when it did or failed something.
                    if round.checked, round.lines.contains(where: { $0.outcome != .alreadyInstalled && $0.outcome != .stillWaitingForOpen })
                        || round.unreachable != nil || round.answeredWithError != nil || !round.refused.isEmpty { out.round(round) }
                }
            }
        }

        /// A device ID made once and kept in the data folder.
        static func deviceID(_ folder: String) throws -> String {
            let path = folder + "/device-id"
            if let text = try? String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), !text.isEmpty {
                return text
            }
            let id = "device-" + UUID().uuidString.lowercased()
            try id.write(toFile: path, atomically: true, encoding: .utf8)
            return id
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "What is installed, on trial and given up.")
        @OptionGroup var folder: Folder
        @Flag(help: "{\"apps\":[{\"id\",\"installed\",\"onTrial\",\"previous\",\"givenUp\"}]}") var json = false

        func run() throws {
            let state: DeviceState
            do { state = try PackageStore.readState(root: folder.data) } catch { throw ValidationError("\(error)") }   // changes nothing
            let apps = state.apps.filter { $0.value.installed != nil || $0.value.pending != nil || !$0.value.givenUp.isEmpty }
                .sorted { $0.key < $1.key }
            if json {
                let list: [[String: Any]] = apps.map { id, a in
                    ["id": id, "installed": a.installed as Any? ?? NSNull(), "onTrial": a.onTrial, "previous": a.previous as Any? ?? NSNull(),
                     "givenUp": a.givenUp]
                }
                let data = try JSONSerialization.data(withJSONObject: ["apps": list], options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
                return
            }
            if apps.isEmpty { print("Nothing is installed in \(folder.data).") }
            for (id, a) in apps {
                var line = "\(id): " + (a.installed.map { "\($0) installed" } ?? "nothing installed")
                if a.onTrial { line += ", on trial (opened \(a.opens) time\(a.opens == 1 ? "" : "s") without loading)" }
                if let p = a.previous { line += "; \(p) kept until the trial passes" }
                if let p = a.pending { line += "; \(p) downloaded, installs when opened" }
                if !a.givenUp.isEmpty { line += "; given up: \(a.givenUp.joined(separator: ", "))" }
                print(line)
            }
        }
    }

    struct Seed: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Install from a preset h5_json.json and the .amr files shipped beside it, offline (as an app build does).",
            discussion: "Exit 0 when every package installed, 3 when one failed verification, 5 when one could not be installed.")
        @OptionGroup var folder: Folder
        @Option(name: .customLong("public-key"), help: "The signing key's public PEM; repeat to pin several.") var publicKey: [String] = []
        @Option(help: "The folder holding {appId}-{version}.amr or {appId}.amr (default: the preset's folder).") var packages: String?
        @Flag(help: "One JSON object a line instead of words.") var json = false
        @Argument(help: "The preset file (h5_json.json).") var preset: String

        func run() async throws {
            guard let data = FileManager.default.contents(atPath: preset) else { throw ValidationError("\(preset) cannot be read.") }
            let pems = try publicKey.map { path in
                guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ValidationError("\(path) cannot be read.") }
                return text
            }
            let keys: PinnedKeys
            let store: PackageStore
            do {
                keys = try PinnedKeys(pems: pems)
                store = try PackageStore(root: folder.data)
            } catch { throw ValidationError("\(error)") }
            let device = CourierDevice(server: URL(string: "http://localhost")!, profile: DeviceProfile(deviceId: (try? Run.deviceID(folder.data)) ?? ""),
                                       keys: keys, store: store)
            let report = await device.seed(preset: data, packages: packages ?? URL(fileURLWithPath: preset).deletingLastPathComponent().path)
            Output(json: json).round(report)
            if report.verifyFailed { throw ExitCode(3) }
            if report.failed || report.answeredWithError != nil { throw ExitCode(5) }
        }
    }

    struct Broken: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Play the host reporting the installed version of APP broken: its trial fails.")
        @OptionGroup var folder: Folder
        @Argument(help: "The app ID.") var app: String

        /// Requests left for a running device (one file per app), taken as they are read.
        static func requests(_ folder: String) -> [String] {
            let dir = folder + "/broken"
            let apps = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.utf8.count == 8 && $0.allSatisfy(\.isNumber) }
            for app in apps { unlink(dir + "/" + app) }
            return apps.sorted()
        }

        func run() async throws {
            guard app.utf8.count == 8, app.allSatisfy(\.isNumber) else { throw ValidationError("APP is an 8-digit app ID.") }
            if PackageStore.isInUse(root: folder.data) {
                // A device runs on this folder: it takes the request within 5 seconds (its next turn).
                try? FileManager.default.createDirectory(atPath: folder.data + "/broken", withIntermediateDirectories: true)
                FileManager.default.createFile(atPath: folder.data + "/broken/" + app, contents: Data())
                print("The device running on \(folder.data) gives up \(app)'s installed version within 5 seconds (it says so in its output).")
                return
            }
            let store: PackageStore
            do { store = try PackageStore(root: folder.data) } catch { throw ValidationError("\(error)") }
            guard let given = try store.giveUp(app) else { throw ValidationError("\(app) has nothing installed in \(folder.data).") }
            let back = store.state.apps[app]?.installed
            print("\(app) \(given) is given up (trial failed); " + (back.map { "\($0) is back." } ?? "nothing else was installed.")
                  + " The next check reports it.")
            store.queueEvent(["deviceId": (try? String(contentsOfFile: folder.data + "/device-id", encoding: .utf8))?
                                .trimmingCharacters(in: .whitespacesAndNewlines) ?? "", "appId": app, "version": given, "event": "trial_failed"])
        }
    }
}

/// One line on a terminal's standard error that a download redraws; whatever is said next
/// clears it first.
final class ProgressLine: @unchecked Sendable {
    private let lock = NSLock()
    private var shown = false

    func show(_ text: String) {
        lock.withLock {
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + text).utf8))
            shown = true
        }
    }

    func clear() {
        lock.withLock {
            if shown { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
            shown = false
        }
    }
}

/// What the device says: words for people, or one JSON object a line.
struct Output: Sendable {
    let json: Bool
    var progress: ProgressLine?

    func say(_ words: String, _ fields: [String: Any]) {
        progress?.clear()
        // What a server sent (names, messages) reaches a terminal: no control characters.
        let words = String(String.UnicodeScalarView(words.unicodeScalars.map {
            $0.properties.generalCategory == .control ? "?" : $0
        }))
        var line = words
        if json {
            var object = fields
            object["message"] = words
            guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
            line = String(decoding: data, as: UTF8.self)
        }
        // Unbuffered: a person (or a test) reading the output sees each line as it happens.
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    func round(_ r: RoundReport) {
        if let why = r.unreachable { return say("Could not check: \(why)", ["event": "unreachable", "error": why]) }
        if let why = r.answeredWithError { return say(why, ["event": "serverError", "error": why]) }
        for refused in r.refused { say(refused, ["event": "refused"]) }
        if r.lines.isEmpty { say("Up to date: nothing new for this device.", ["event": "upToDate"]) }
        for line in r.lines {
            let what = "\(line.appId) \(line.version)"
            // Which download it took: a patch from the installed version, or the whole package.
            var how = ""
            var fetched: [String: Any] = [:]
            switch line.download {
            case .patch(let from, let bytes, let full)?:
                how = " (a patch from \(from): \(Self.size(bytes)) instead of \(Self.size(full)))"
                fetched = ["download": "patch", "patchFrom": from, "downloadBytes": bytes]
            case .full(let bytes)?:
                fetched = ["download": "full", "downloadBytes": bytes]
            case nil:
                break
            }
            func with(_ fields: [String: Any]) -> [String: Any] { fields.merging(fetched) { a, _ in a } }
            switch line.outcome {
            case .installed(let by, let rollback):
                say("\(what): \(rollback ? "rolled back to this version" : "installed")" + (by.map { ", verified by \($0)" } ?? ", unsigned") + how,
                    with(["event": rollback ? "rollback" : "installed", "appId": line.appId, "version": line.version, "verifiedBy": by as Any? ?? NSNull()]))
            case .stillWaitingForOpen:
                say("\(what): downloaded earlier; installs when the app is opened (lazy).", ["event": "pending", "appId": line.appId, "version": line.version])
            case .waitingForOpen:
                say("\(what): downloaded\(how); installs when the app is opened (lazy).",
                    with(["event": "pending", "appId": line.appId, "version": line.version]))
            case .heldBackForWiFi:
                say("\(what): waits for Wi-Fi (the package asks for it).", ["event": "heldBack", "appId": line.appId, "version": line.version])
            case .alreadyInstalled:
                say("\(what): already installed.", ["event": "alreadyInstalled", "appId": line.appId, "version": line.version])
            case .givenUp:
                say("\(what): given up on this device (its trial failed); not installed again.", ["event": "givenUp", "appId": line.appId, "version": line.version])
            case .failed(let f):
                say("\(what): \(f.kind.rawValue.replacingOccurrences(of: "_", with: " ")): \(f.message)",
                    with(["event": f.kind.rawValue, "appId": line.appId, "version": line.version, "error": f.message]))
            }
        }
    }

    static func size(_ bytes: UInt64) -> String {
        bytes < 1_000_000 ? String(format: "%.1f KB", Double(bytes) / 1000) : String(format: "%.1f MB", Double(bytes) / 1_000_000)
    }
}
