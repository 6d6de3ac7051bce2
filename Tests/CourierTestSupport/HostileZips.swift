/// Every hostile or broken archive of SPEC §2 for app 20171228, with a fragment of the
/// refusal a person should read. Shared by the archive tests and the upload-route tests.
public func hostileZips() -> [(name: String, bytes: [UInt8], says: String)] {
    func zip(_ entries: [ZipBuilder.Entry]) -> [UInt8] { ZipBuilder(entries).bytes() }
    var link = ZipBuilder.Entry("20171228/www/passwd", "/etc/passwd")
    link.unixMode = 0o120777
    var encrypted = ZipBuilder.Entry("20171228/www/a.js", "x")
    encrypted.flags = 1
    var badCRC = ZipBuilder.Entry("20171228/www/a.js", String(repeating: "a", count: 1000))
    badCRC.declaredCRC = 0xDEAD_BEEF
    var cut = ZipBuilder.Entry("20171228/www/a.js", (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 5) })
    cut.payload = { Array($0.prefix($0.count / 2)) }
    var bzip = ZipBuilder.Entry("20171228/www/a.js", "x", method: 0)
    bzip.method = 12
    let full = samplePackage().bytes()
    return [
        ("zip slip", zip([.init("20171228/../../etc/passwd", "x")]), "“..”"),
        ("absolute path", zip([.init("/20171228/www/a.js", "x")]), "absolute"),
        ("backslash", zip([.init("20171228\\www\\a.js", "x")]), "backslash"),
        ("symlink", zip([link]), "symbolic link"),
        ("duplicate names", zip([.init("20171228/www/a.js", "1"), .init("20171228/www/a.js", "2")]), "more than once"),
        ("wrong top-level directory", zip([.init("20180101/www/a.js", "x")]), "different app ID"),
        ("extra top-level directory", zip([.init("20171228/www/a.js", "x"), .init("extra/a.js", "x")]), "“extra/”"),
        ("file at the top level", zip([.init("20171228/www/a.js", "x"), .init("readme.txt", "x")]), "top level"),
        ("encrypted entry", zip([encrypted]), "encrypted"),
        ("unsupported compression", zip([bzip]), "compression method 12"),
        ("bad CRC", zip([badCRC]), "CRC"),
        ("truncated archive", Array(full.prefix(full.count / 2)), "truncated"),
        ("not a zip", Array("<html>not a zip</html>".utf8), "not a zip"),
        ("deflate that ends early", zip([cut]), "ends early"),
        ("zip bomb", zip([.init("20171228/www/zeros.bin", [UInt8](repeating: 0, count: 8 << 20))]), "zip bomb"),
        ("too many entries", zip((0...20_000).map { .init("20171228/f\($0)", "", method: 0) }), "20001 entries"),
        ("URL-unsafe name", zip([.init("20171228/www/my page.html", "x")]), "URL encoding"),
    ]
}
