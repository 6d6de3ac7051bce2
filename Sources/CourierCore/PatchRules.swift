/// When Courier builds, offers and deletes patches (SPEC §3 "Patches"): the one place the
/// console, the API, the update answer and the builder ask.
public enum PatchRules {
    /// How many earlier versions each released version gets patches from (`--patch-bases N`).
    public static let defaultBases = 5

    /// The bases of `target`: the `count` highest versions below it that ever reached clients.
    public static func bases(of target: PackageVersion, reached: some Sequence<PackageVersion>, count: Int) -> [PackageVersion] {
        Array(Set(reached.filter { $0 < target }).sorted(by: >).prefix(max(0, count)))
    }

    /// Every (target, base) pair wanted now: each version offered now, from each of its bases.
    /// A stored patch outside this set is one no client can still use, and is deleted.
    public static func wanted(offered: some Sequence<PackageVersion>, reached: some Sequence<PackageVersion>,
                              count: Int) -> Set<Pair> {
        let reached = Array(reached)
        var pairs: Set<Pair> = []
        for target in Set(offered) {
            for base in bases(of: target, reached: reached, count: count) { pairs.insert(Pair(target: target, base: base)) }
        }
        return pairs
    }

    public struct Pair: Hashable, Sendable, Comparable {
        public let target: PackageVersion
        public let base: PackageVersion
        public init(target: PackageVersion, base: PackageVersion) {
            self.target = target
            self.base = base
        }
        public static func < (a: Pair, b: Pair) -> Bool { (a.target, a.base) < (b.target, b.base) }
    }

    /// A patch is offered only when it is smaller than half of the full `.amr`: past that, one
    /// download of the whole package costs a device little more, and verifies in one step.
    public static func worthOffering(patchSize: Int64, fullSize: Int64) -> Bool {
        patchSize >= 0 && patchSize < Int64.max / 2 && patchSize * 2 < fullSize
    }

    /// The share of the full download a device on the base fetches, in percent (100 without a patch worth offering).
    public static func share(patchSize: Int64?, fullSize: Int64) -> Double {
        guard let patchSize, fullSize > 0, worthOffering(patchSize: patchSize, fullSize: fullSize) else { return 100 }
        return Double(patchSize) * 100 / Double(fullSize)
    }
}
