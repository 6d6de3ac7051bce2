import Crypto
import _CryptoExtras
import Foundation

/// The public keys an app trusts to sign its packages (SPEC §10): several may be pinned, for key
/// rotation. `SIGN.json` (RSA PKCS#1 v1.5 over SHA-256 of the tar) is what is checked; `CERT.json`
/// (over SHA-1) only when the host allows it for old packages.
public struct PinnedKeys: @unchecked Sendable {
    let keys: [_RSA.Signing.PublicKey]
    /// Accept `CERT.json` (SHA-1) when a package has no `SIGN.json`.
    public let allowSHA1: Bool

    /// Reads PEM public keys ("-----BEGIN PUBLIC KEY-----", as the Configuration page offers it).
    public init(pems: [String], allowSHA1: Bool = false) throws {
        keys = try pems.map { pem in
            guard let key = try? _RSA.Signing.PublicKey(unsafePEMRepresentation: pem) else {
                throw ClientFailure(.setup, "A pinned key is not an RSA public key in PEM format.")
            }
            guard key.keySizeInBits >= 2048 else { throw ClientFailure(.setup, "A pinned key has \(key.keySizeInBits) bits; pin keys of 2048 bits or more.") }
            return key
        }
        self.allowSHA1 = allowSHA1
    }

    /// No key pinned: packages are installed unsigned (a development setup).
    public static let none = try! PinnedKeys(pems: [])

    public var isEmpty: Bool { keys.isEmpty }

    func verify(sha256: SHA256Digest, signature: Data) -> Bool {
        let s = _RSA.Signing.RSASignature(rawRepresentation: signature)
        return keys.contains { $0.isValidSignature(s, for: sha256, padding: .insecurePKCS1v1_5) }
    }

    func verify(sha1: Insecure.SHA1Digest, signature: Data) -> Bool {
        let s = _RSA.Signing.RSASignature(rawRepresentation: signature)
        return keys.contains { $0.isValidSignature(s, for: sha1, padding: .insecurePKCS1v1_5) }
    }
}

/// Why the client did not do something, in words, with the event it reports (SPEC §4).
public struct ClientFailure: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case downloadFailed = "download_failed"
        case verifyFailed = "verify_failed"
        case installFailed = "install_failed"
        /// A patch that did not give the version it claims: the full package is downloaded instead.
        case patchFailed = "patch_failed"
        /// The device's own setup (keys, data folder): nothing to report to the server.
        case setup
    }
    public let kind: Kind
    public let message: String
    public init(_ kind: Kind, _ message: String) { self.kind = kind; self.message = message }
    public var description: String { message }
}
