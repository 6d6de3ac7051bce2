import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// How the client talks to Courier: a small seam over URLSession, so a host can bring its own
/// HTTP stack (and tests can cut a download midway).
public protocol Transport: Sendable {
    /// POSTs JSON; answers the status and at most `limit` bytes of body.
    func post(_ url: URL, json: Data, limit: Int) async throws -> (status: Int, body: Data)
    /// Appends `url`'s bytes from `offset` to the open file `fd` (asking with `Range` when
    /// `offset` is not 0), never past `limit` bytes in all. Answers the file's new length.
    func download(_ url: URL, into fd: Int32, from offset: UInt64, limit: UInt64) async throws -> UInt64
}

/// URLSession, streaming downloads to disk as they arrive (a package is never held whole).
public struct URLSessionTransport: Transport {
    public let timeout: TimeInterval
    public init(timeout: TimeInterval = 30) { self.timeout = timeout }

    public func post(_ url: URL, json: Data, limit: Int) async throws -> (status: Int, body: Data) {
        var request = URLRequest(url: url, timeoutInterval: timeout)
        request.httpMethod = "POST"
        request.httpBody = json
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        let session = URLSession(configuration: .ephemeral)
        defer { session.finishTasksAndInvalidate() }
        let (data, response) = try await session.data(for: request)
        guard data.count <= limit else { throw ClientFailure(.downloadFailed, "The server's answer is over \(limit) bytes.") }
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, data)
    }

    public func download(_ url: URL, into fd: Int32, from offset: UInt64, limit: UInt64) async throws -> UInt64 {
        var request = URLRequest(url: url, timeoutInterval: timeout)
        if offset > 0 { request.setValue("bytes=\(offset)-", forHTTPHeaderField: "Range") }
        let sink = DownloadSink(fd: fd, offset: offset, limit: limit)
        let session = URLSession(configuration: .ephemeral, delegate: sink, delegateQueue: nil)
        defer { session.finishTasksAndInvalidate() }
        return try await withCheckedThrowingContinuation { continuation in
            sink.done = { continuation.resume(with: $0) }
            session.dataTask(with: request).resume()
        }
    }
}

/// Writes a response body to a file as it arrives: after `206` from the asked offset, after
/// `200` from the start (the server ignored the range), and refuses anything else or more than
/// the limit.
final class DownloadSink: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    let fd: Int32
    let limit: UInt64
    let asked: UInt64
    private(set) var length: UInt64
    private var failure: Error?
    var done: ((Result<UInt64, Error>) -> Void)?

    init(fd: Int32, offset: UInt64, limit: UInt64) {
        self.fd = fd
        asked = offset
        length = offset
        self.limit = limit
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        let http = response as? HTTPURLResponse
        switch http?.statusCode {
        case 206 where asked > 0:
            let range = http?.value(forHTTPHeaderField: "Content-Range") ?? ""
            guard range.hasPrefix("bytes \(asked)-") else {
                failure = ClientFailure(.downloadFailed, "The server resumed the download at another offset (\(range.prefix(40))).")
                return completionHandler(.cancel)
            }
        case 200:
            // The whole file again: start over.
            guard ftruncate(fd, 0) == 0, lseek(fd, 0, SEEK_SET) == 0 else {
                failure = ClientFailure(.installFailed, "The download could not be restarted on disk.")
                return completionHandler(.cancel)
            }
            length = 0
        default:
            failure = ClientFailure(.downloadFailed, "The package download was answered \(http?.statusCode ?? 0).")
            return completionHandler(.cancel)
        }
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        guard failure == nil else { return }
        guard length + UInt64(data.count) <= limit else {
            failure = ClientFailure(.downloadFailed, "The package is larger than the answer said (\(limit) bytes).")
            dataTask.cancel()
            return
        }
        do {
            try data.withUnsafeBytes { try TarExtractor.writeAll(fd, $0, path: "the download") }
            length += UInt64(data.count)
        } catch {
            failure = error
            dataTask.cancel()
        }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        let result: Result<UInt64, Error>
        if let failure { result = .failure(failure) } else if let error {
            result = .failure(ClientFailure(.downloadFailed, "The download was interrupted at \(length) bytes: \(error.localizedDescription)"))
        } else {
            result = .success(length)
        }
        done?(result)
        done = nil
    }
}
