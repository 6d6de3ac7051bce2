// libFuzzer target: the batch-import form (SPEC §6) — a multipart body (boundary "B") with
// `files` parts named {appId}.zip and a row's edit fields — through the same rules the server
// applies: the import's limits, each file's name, layout and version, and the row's fields.
// Beyond not trapping: one row per file; a row without an error names its app, type, version
// and files; a second file for an app is refused on its own row; versions follow the rule;
// the edit fields give settings or field errors that say something.
import CFuzzer
import CourierArchive
import CourierCore
import Foundation

struct Parts: MultipartSink {
    var parts: [(name: String, filename: String?, bytes: [UInt8])] = []
    mutating func begin(name: String, filename: String?) throws { parts.append((name, filename, [])) }
    mutating func data(_ bytes: UnsafeRawBufferPointer) throws { parts[parts.count - 1].bytes += bytes }
    mutating func end() throws {}
}

let dir = NSTemporaryDirectory() + "fuzz-import-\(getpid())"
try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
let known = AppFacts(fixedType: .normal, highestVersion: PackageVersion(parts: [1, 0, 0, 1]))
let facts = ["20171228": known]
let global = GlobalLocation(host: "mcube.example.com", appKey: "53E5279071442_test")

func fuzz(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let bytes else { return 0 }
    var parser = MultipartParser(boundary: "B")
    var sink = Parts()
    do {
        try parser.feed(UnsafeRawBufferPointer(start: bytes, count: count), into: &sink)
        try parser.finish(into: &sink)
    } catch {
        return 0
    }
    let fileParts = sink.parts.filter { $0.filename != nil }
    do {
        try BatchImportRules.checkAll(sizes: fileParts.map { Int64($0.bytes.count) })
    } catch {
        precondition(!error.message.isEmpty)
        precondition(fileParts.isEmpty || fileParts.count > BatchImportRules.maxFiles
                     || fileParts.reduce(0) { $0 + $1.bytes.count } > BatchImportRules.maxTotalBytes)
        return 0
    }
    var files: [(name: String, path: String, size: Int64)] = []
    for (i, part) in fileParts.enumerated() {
        let path = dir + "/\(i).zip"
        _ = FileManager.default.createFile(atPath: path, contents: Data(part.bytes))
        files.append((part.filename ?? "", path, Int64(part.bytes.count)))
    }
    defer { for f in files { unlink(f.path) } }
    let rows = BatchImportRules.inspect(files, facts: facts, global: global)
    precondition(rows.count == files.count, "one row per file")
    var ok = Set<String>()
    for (row, file) in zip(rows, files) {
        if let error = row.error {
            precondition(!error.isEmpty)
            continue
        }
        guard let id = row.appId, let version = row.version, row.type != nil else { preconditionFailure("a ready row names its app, type and version") }
        precondition(row.fileCount > 0, "a ready row has files")
        precondition((file.name as NSString).lastPathComponent.hasPrefix(id), "the app is the file's name")
        precondition(ok.insert(id).inserted, "a second file for \(id) was not refused")
        precondition(row.newApp == (facts[id] == nil))
        precondition(version == (facts[id]?.highestVersion?.nextPatch() ?? BatchImportRules.firstVersion), "version rule")
    }
    // The row's edit fields, as the Edit form sends them.
    var draft = PackageDraft()
    for part in sink.parts where part.filename == nil {
        let text = String(decoding: part.bytes, as: UTF8.self)
        guard let field = PackageField.named[part.name] else { continue }
        draft[field.key] = field.isFlag ? (text == "true" ? "true" : "") : text
    }
    do {
        let s = try draft.validate(for: known)
        precondition(s.version > PackageVersion(parts: [1, 0, 0, 1]) && s.type == .normal)
        precondition(s.range.android != nil || s.range.ios != nil)
    } catch {
        precondition(!error.errors.isEmpty && error.errors.allSatisfy { !$0.message.isEmpty && !$0.field.isEmpty }, "a refusal names its field")
    }
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv, { fuzz($0, $1) }))
