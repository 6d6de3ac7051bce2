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
    // ZIP64 values near 2^64, where an unchecked `offset + 30` or `total + size` traps.
    func zip64Extra(_ values: [UInt64]) -> [UInt8] {
        let body = values.flatMap(ZipBuilder.le64)
        return [0x01, 0x00, UInt8(body.count), 0x00] + body
    }
    var farHeader = ZipBuilder.Entry("20171228/www/a.js", "x")
    farHeader.declaredOffset = 0xFFFF_FFFF
    farHeader.centralExtra = zip64Extra([UInt64.max - 15])
    var hugeSize = ZipBuilder.Entry("20171228/www/b.js", "y")
    hugeSize.declaredSize = 0xFFFF_FFFF
    hugeSize.declaredCompressedSize = 0xFFFF_FFFF
    hugeSize.centralExtra = zip64Extra([UInt64.max - 199, UInt64.max])   // passes the ratio check, overflows a sum
    // A ZIP64 end-record locator pointing near 2^64, inserted before an end record that asks for it.
    var farLocator = zip([.init("20171228/www/a.js", "x")])
    let eocd = farLocator.count - 22
    farLocator[eocd + 8] = 0xFF; farLocator[eocd + 9] = 0xFF; farLocator[eocd + 10] = 0xFF; farLocator[eocd + 11] = 0xFF
    farLocator.insert(contentsOf: [0x50, 0x4B, 0x06, 0x07, 0, 0, 0, 0] + ZipBuilder.le64(UInt64.max - 15) + [1, 0, 0, 0], at: eocd)
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
        ("ZIP64 local header offset near 2^64", zip([farHeader]), "outside the archive"),
        ("ZIP64 sizes near 2^64", zip([.init("20171228/www/a.js", "x"), hugeSize]), "1 GiB"),
        ("ZIP64 end-record locator near 2^64", farLocator, "ZIP64 end record is corrupt"),
    ]
}
