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

/// URLSession, streaming downloads to disk as they arrive (a package is never held whole), each
/// body bounded as it arrives, each exchange bounded in time as a whole, redirects not followed.
public struct URLSessionTransport: Transport {
    /// Silence allowed between two bytes.
    public let timeout: TimeInterval
    /// A whole check or event exchange; a download gets `downloadDeadline`.
    public let deadline: TimeInterval
    public let downloadDeadline: TimeInterval
    public init(timeout: TimeInterval = 30, deadline: TimeInterval = 60, downloadDeadline: TimeInterval = 3600) {
        self.timeout = timeout
        self.deadline = deadline
        self.downloadDeadline = downloadDeadline
    }

    func session(_ delegate: URLSessionDelegate, deadline: TimeInterval) -> URLSession {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.timeoutIntervalForResource = deadline
        return URLSession(configuration: configuration, delegate: delegate, delegateQueue: nil)
    }

    public func post(_ url: URL, json: Data, limit: Int) async throws -> (status: Int, body: Data) {
        var request = URLRequest(url: url, timeoutInterval: timeout)
        request.httpMethod = "POST"
        request.httpBody = json
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        let r = try await fetch(request, limit: limit)
        return (r.status, r.body)
    }

    /// GETs `url` (the online copy of a file): status, content type and at most `limit` bytes.
    public func get(_ url: URL, limit: Int) async throws -> (status: Int, contentType: String?, body: Data) {
        try await fetch(URLRequest(url: url, timeoutInterval: timeout), limit: limit)
    }

    func fetch(_ request: URLRequest, limit: Int) async throws -> (status: Int, contentType: String?, body: Data) {
        let sink = BufferSink(limit: limit)
        let session = session(sink, deadline: deadline)
        defer { session.finishTasksAndInvalidate() }
        return try await withCheckedThrowingContinuation { continuation in
            sink.done = { continuation.resume(with: $0) }
            session.dataTask(with: request).resume()
        }
    }

    public func download(_ url: URL, into fd: Int32, from offset: UInt64, limit: UInt64) async throws -> UInt64 {
        var request = URLRequest(url: url, timeoutInterval: timeout)
        if offset > 0 { request.setValue("bytes=\(offset)-", forHTTPHeaderField: "Range") }
        let sink = DownloadSink(fd: fd, offset: offset, limit: limit)
        let session = session(sink, deadline: downloadDeadline)
        defer { session.finishTasksAndInvalidate() }
        return try await withCheckedThrowingContinuation { continuation in
            sink.done = { continuation.resume(with: $0) }
            session.dataTask(with: request).resume()
        }
    }
}

/// Collects a response body up to a limit (cancelling past it), refusing redirects.
final class BufferSink: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    let limit: Int
    private var data = Data()
    private var status = 0
    private var contentType: String?
    private var failure: Error?
    var done: ((Result<(status: Int, contentType: String?, body: Data), Error>) -> Void)?

    init(limit: Int) { self.limit = limit }

    func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void) {
        completionHandler(nil)   // the redirect itself is the answer: never fetched from elsewhere
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        let http = response as? HTTPURLResponse
        status = http?.statusCode ?? 0
        contentType = http?.value(forHTTPHeaderField: "Content-Type")
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive chunk: Data) {
        guard failure == nil else { return }
        guard data.count + chunk.count <= limit else {
            failure = ClientFailure(.downloadFailed, "The answer is over \(limit) bytes.")
            dataTask.cancel()
            return
        }
        data.append(chunk)
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        if let failure { done?(.failure(failure)) } else if let error { done?(.failure(error)) } else { done?(.success((status, contentType, data))) }
        done = nil
    }
}

/// Writes a response body to a file as it arrives: after `206` from the asked offset, after
/// `200` from the start (the server ignored the range), and refuses anything else or more than
/// the limit.
final class DownloadSink: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void) {
        completionHandler(nil)
    }

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
