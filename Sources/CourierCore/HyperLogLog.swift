import Foundation

/// Counts distinct devices in a fixed 4 KB (SPEC §5, adoption): 4,096 registers, a standard
/// error of 1.04 / √4096 ≈ 1.6 %. Two sketches merge by taking each register's maximum, so the
/// same devices counted on two nodes, or flushed twice, are counted once.
public struct HyperLogLog: Sendable, Equatable {
    public static let precision = 12
    public static let registerCount = 1 << precision
    /// The relative standard error, for saying it on the page.
    public static let standardError = 1.04 / Double(registerCount).squareRoot()

    public private(set) var registers: [UInt8]

    public init() { registers = [UInt8](repeating: 0, count: Self.registerCount) }

    /// Registers as stored (base64 of 4,096 bytes); nil when they are not that.
    public init?(base64 text: String) {
        guard let data = Data(base64Encoded: text), data.count == Self.registerCount, data.allSatisfy({ $0 <= 64 - Self.precision + 1 }) else {
            return nil
        }
        registers = [UInt8](data)
    }

    public var base64: String { Data(registers).base64EncodedString() }

    /// A 64-bit hash of a device ID (FNV-1a, then the splitmix64 finalizer so that similar IDs spread).
    public static func hash(_ device: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in device.utf8 { h ^= UInt64(b); h = h &* 0x0000_0100_0000_01B3 }
        h ^= h >> 30; h = h &* 0xbf58_476d_1ce4_e5b9
        h ^= h >> 27; h = h &* 0x94d0_49bb_1331_11eb
        h ^= h >> 31
        return h
    }

    /// Where a hash lands: its register and the value it raises that register to. Worked out once
    /// per device when the same device goes into several sketches (the update API's counting).
    public struct Place: Sendable, Equatable {
        public let index: Int
        public let rank: UInt8

        public init(hash h: UInt64) {
            index = Int(h >> UInt64(64 - HyperLogLog.precision))
            let rest = h << UInt64(HyperLogLog.precision)
            rank = UInt8(min(rest.leadingZeroBitCount, 64 - HyperLogLog.precision) + 1)
        }
    }

    /// Adds a device by its hash; true when the sketch changed.
    @discardableResult
    public mutating func insert(hash h: UInt64) -> Bool {
        let place = Place(hash: h)
        guard registers[place.index] < place.rank else { return false }
        registers[place.index] = place.rank
        return true
    }

    @discardableResult
    public mutating func insert(_ device: String) -> Bool { insert(hash: Self.hash(device)) }

    public mutating func merge(_ other: HyperLogLog) {
        for i in 0..<Self.registerCount where other.registers[i] > registers[i] { registers[i] = other.registers[i] }
    }

    /// Merges registers held elsewhere (`registerCount` of them).
    public mutating func merge(registers other: UnsafeBufferPointer<UInt8>) {
        precondition(other.count == Self.registerCount)
        for i in 0..<Self.registerCount where other[i] > registers[i] { registers[i] = other[i] }
    }

    public var isEmpty: Bool { !registers.contains { $0 != 0 } }

    /// The estimated number of distinct devices inserted.
    public var estimate: Int {
        let m = Double(Self.registerCount)
        var sum = 0.0, zeros = 0
        for r in registers {
            sum += 1 / Double(UInt64(1) << UInt64(r))
            if r == 0 { zeros += 1 }
        }
        let alpha = 0.7213 / (1 + 1.079 / m)
        let raw = alpha * m * m / sum
        if raw <= 2.5 * m, zeros > 0 { return Int((m * log(m / Double(zeros))).rounded()) }
        return Int(raw.rounded())
    }
}
