/// A file part of a multipart upload, already on disk.
public struct UploadedFile: Sendable {
    public let field: String
    public let filename: String
    public let path: String
    public let size: UInt64

    public init(field: String, filename: String, path: String, size: UInt64) {
        self.field = field; self.filename = filename; self.path = path; self.size = size
    }
}
