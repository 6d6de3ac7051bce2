import CourierCore
import Crypto
import _CryptoExtras
import Foundation

/// The RSA key that signs `.amr` files (PKCS#1 v1.5 over SHA-1 and SHA-256 of the tar).
public struct SigningKey: @unchecked Sendable {
    let key: _RSA.Signing.PrivateKey

    /// Accepts a PEM RSA private key (PKCS#1 or PKCS#8) of 2048 to 4096 bits.
    public init(pem: String, field: String = "privateKey") throws {
        let text = pem.trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.contains("-----BEGIN"), text.contains("PRIVATE KEY-----") else {
            throw FieldError(field, "Paste or upload an RSA private key in PEM format (it starts with -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----).")
        }
        guard let key = try? _RSA.Signing.PrivateKey(unsafePEMRepresentation: text) else {
            throw FieldError(field, "The key could not be read: it must be an unencrypted RSA private key in PEM format.")
        }
        guard (2048...4096).contains(key.keySizeInBits) else {
            throw FieldError(field, "The key has \(key.keySizeInBits) bits; use an RSA key of 2048 to 4096 bits.")
        }
        self.key = key
    }

    public static func generate() throws -> SigningKey {
        try SigningKey(pem: _RSA.Signing.PrivateKey(keySize: .bits2048).pemRepresentation)
    }

    public var privateKeyPEM: String { key.pemRepresentation }
    public var publicKeyPEM: String { key.publicKey.pemRepresentation }
    public var bits: Int { key.keySizeInBits }

    /// SHA-256 of the public key's DER (SubjectPublicKeyInfo), as colon-separated hex.
    public var fingerprint: String {
        SHA256.hash(data: key.publicKey.derRepresentation).map { String(format: "%02X", $0) }.joined(separator: ":")
    }

    func signatures(sha1: Insecure.SHA1Digest, sha256: SHA256Digest) throws -> (cert: String, sign: String) {
        let cert = try key.signature(for: sha1, padding: .insecurePKCS1v1_5)
        let sign = try key.signature(for: sha256, padding: .insecurePKCS1v1_5)
        return (cert.rawRepresentation.base64EncodedString(), sign.rawRepresentation.base64EncodedString())
    }
}
