import CourierCore
import HummingbirdBcrypt
import NIOConcurrencyHelpers
import NIOPosix

/// Bcrypt on a thread of its own with a short queue: a burst of sign-ins waits there (or is
/// told to come back) instead of taking the threads that serve files and pages.
public final class PasswordHasher: Sendable {
    static let pool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        return pool
    }()
    let waiting = NIOLockedValueBox(0)
    let maxWaiting: Int

    public init(maxWaiting: Int = 8) { self.maxWaiting = maxWaiting }

    public func verify(_ password: String, hash: String) async throws -> Bool {
        try await run { Bcrypt.verify(password, hash: hash) }
    }

    public func hash(_ password: String, cost: UInt8 = 12) async throws -> String {
        try await run { Bcrypt.hash(password, cost: cost) }
    }

    func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async throws -> T {
        let admitted = waiting.withLockedValue { n -> Bool in
            guard n < maxWaiting else { return false }
            n += 1
            return true
        }
        guard admitted else {
            throw Busy("Too many people are signing in at this moment. Try again in a few seconds.", retryAfter: 2)
        }
        defer { waiting.withLockedValue { $0 -= 1 } }
        return try await Self.pool.runIfActive(work)
    }
}
