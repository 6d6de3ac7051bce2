/// A user-ID regular expression of a safe subset, matched against the whole ID in time linear in the ID's length.
///
/// Whitelists used to be matched with NSRegularExpression, which backtracks: `(\w+\s?)+b` against forty
/// letters and a "!" stalled the server for minutes. Here the expression compiles to a Thompson NFA that is
/// simulated over a set of states (a Pike VM without captures): each input scalar visits each instruction at
/// most once, and nothing recurses on the input. Nested quantifiers are still refused when an expression is
/// saved: they are the classic ReDoS shape, refusing them keeps expressions safe for any other engine that
/// reads them, and it keeps the expansion of `{n,m}` small.
///
/// Semantics follow NSRegularExpression for whole matches on ASCII, with these choices: `\d \w \s` are ASCII
/// (`[0-9]`, `[A-Za-z0-9_]`, `[ \t\n\r\f\v]`); `.` is any scalar but a line terminator (`\n \v \f \r`,
/// U+0085, U+2028, U+2029), as NSRegularExpression's; a leading `(?i)` folds ASCII letters only.
public struct SafePattern: Sendable, Equatable {
    public let text: String
    private let program: [Instruction]
    private let sets: [ScalarSet]

    static let maxBytes = 1000
    static let maxCount = 100
    /// With 20 expressions a list and user IDs matched up to `Whitelist.maxMatchedScalars`, this
    /// bounds one list's work per request to about 20 × 2,000 × 129 steps.
    static let maxInstructions = 2000
    static let maxGroupDepth = 50

    /// Compiles `text`; throws FieldError(field, message) with a sentence a person can act on, quoting the expression.
    public init(_ text: String, field: String = "values") throws(FieldError) {
        guard !text.isEmpty else {
            throw FieldError(field, "The expression is empty; write one that matches whole user IDs, like qa-tester-\\d+.")
        }
        var parser = Parser(text: text, field: field)
        guard text.utf8.count <= Self.maxBytes else {
            throw FieldError(field, "\(parser.quoted) is longer than \(Self.maxBytes) bytes; split it into several shorter expressions.")
        }
        let tree = try parser.parse()
        let size = Compiler.size(of: tree) + 1
        guard size <= Self.maxInstructions else {
            throw FieldError(field, "\(parser.quoted) is too large once its repetitions are expanded (\(size > Self.maxInstructions * 2 ? "over \(Self.maxInstructions * 2)" : "\(size)") instructions; at most \(Self.maxInstructions)); use fewer or smaller {n,m} counts.")
        }
        var compiler = Compiler()
        compiler.program.reserveCapacity(size)
        compiler.emit(tree)
        compiler.program.append(.match)
        self.text = text
        self.program = compiler.program
        self.sets = compiler.sets
    }

    public static func == (a: SafePattern, b: SafePattern) -> Bool { a.text == b.text }

    /// Does the whole of `s` match (like an expression anchored at both ends)?
    public func matchesWhole(_ s: String) -> Bool {
        var steps = 0
        return matchesWhole(s, steps: &steps)
    }

    /// The most steps `matchesWhole` can take for an input of `scalars` Unicode scalars: each position
    /// (before the first scalar and after each one) visits each instruction at most once.
    public func stepBound(scalars: Int) -> Int { program.count * (scalars + 1) }

    /// The most steps matching can take per character of the subject (its program's size).
    public var cost: Int { program.count }

    /// The same, adding the VM's steps to `steps`: thread-state visits, an instruction entered at an input position.
    public func matchesWhole(_ s: String, steps: inout Int) -> Bool {
        let n = program.count
        // One scratch block: the stamp of the position each instruction was last visited at (so it is visited
        // once per position, which also stops empty loops like `(a|)*`), two thread lists and the closure stack.
        return withUnsafeTemporaryAllocation(of: Int.self, capacity: 4 * n) { scratch -> Bool in
            let stamp = scratch.baseAddress!
            stamp.initialize(repeating: -1, count: n)
            var current = stamp + n, next = stamp + 2 * n
            let stack = stamp + 3 * n
            var currentCount = 0, position = 0
            addThreads(from: 0, at: 0, stamp: stamp, stack: stack, list: current, count: &currentCount, steps: &steps)
            for scalar in s.unicodeScalars {
                if currentCount == 0 { return false }
                position += 1
                var nextCount = 0
                for i in 0..<currentCount {
                    let pc = current[i]
                    if accepts(program[pc], scalar.value) {
                        addThreads(from: pc + 1, at: position, stamp: stamp, stack: stack, list: next, count: &nextCount, steps: &steps)
                    }
                }
                swap(&current, &next)
                currentCount = nextCount
            }
            return stamp[n - 1] == position  // `.match` is always the last instruction
        }
    }

    private func accepts(_ instruction: Instruction, _ v: UInt32) -> Bool {
        switch instruction {
        case .scalar(let expected): v == expected
        case .set(let index): sets[index].contains(v)
        case .any: !(0x0A...0x0D).contains(v) && v != 0x85 && v != 0x2028 && v != 0x2029
        case .split, .jump, .match: false
        }
    }

    /// Adds `start` and everything reachable from it without consuming input; consuming instructions
    /// (and `.match`) go to `list`. An explicit stack, so deep programs cannot overflow the thread's stack.
    private func addThreads(from start: Int, at position: Int, stamp: UnsafeMutablePointer<Int>, stack: UnsafeMutablePointer<Int>,
                            list: UnsafeMutablePointer<Int>, count: inout Int, steps: inout Int) {
        guard stamp[start] != position else { return }
        stamp[start] = position
        steps += 1
        stack[0] = start
        var top = 1
        while top > 0 {
            top -= 1
            let pc = stack[top]
            switch program[pc] {
            case .jump(let target):
                if stamp[target] != position { stamp[target] = position; steps += 1; stack[top] = target; top += 1 }
            case .split(let first, let second):
                if stamp[second] != position { stamp[second] = position; steps += 1; stack[top] = second; top += 1 }
                if stamp[first] != position { stamp[first] = position; steps += 1; stack[top] = first; top += 1 }
            default:
                list[count] = pc
                count += 1
            }
        }
    }
}

// MARK: - Program

private enum Instruction: Sendable {
    case scalar(UInt32)
    case set(Int)  // an index into `sets`
    case any
    case split(Int, Int)
    case jump(Int)
    case match
}

/// A set of scalars: sorted, disjoint ranges, with a bitmap for ASCII since user IDs are mostly ASCII.
private struct ScalarSet: Sendable {
    private var ranges: [ClosedRange<UInt32>] = []
    private var asciiLow: UInt64 = 0, asciiHigh: UInt64 = 0

    static let digit: [ClosedRange<UInt32>] = [0x30...0x39]
    static let word: [ClosedRange<UInt32>] = [0x30...0x39, 0x41...0x5A, 0x5F...0x5F, 0x61...0x7A]
    static let space: [ClosedRange<UInt32>] = [0x09...0x0D, 0x20...0x20]

    /// Case folding comes before negation, so `(?i)[^k]` refuses both k and K, as NSRegularExpression does.
    init(_ items: [ClosedRange<UInt32>], negated: Bool = false, foldingCase: Bool = false) {
        var all = items
        if foldingCase {
            for r in items {
                for (letters, shift) in [(UInt32(0x41)...0x5A, 0x20), (0x61...0x7A, -0x20)] where r.overlaps(letters) {
                    let part = r.clamped(to: letters)
                    all.append(UInt32(Int(part.lowerBound) + shift)...UInt32(Int(part.upperBound) + shift))
                }
            }
        }
        for r in all.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = ranges.last, r.lowerBound <= last.upperBound + 1 {
                ranges[ranges.count - 1] = last.lowerBound...max(last.upperBound, r.upperBound)
            } else {
                ranges.append(r)
            }
        }
        if negated {
            var complement: [ClosedRange<UInt32>] = []
            var from: UInt32 = 0
            for r in ranges {
                if r.lowerBound > from { complement.append(from...(r.lowerBound - 1)) }
                from = r.upperBound + 1
            }
            if from <= 0x10FFFF { complement.append(from...0x10FFFF) }
            ranges = complement
        }
        for r in ranges where r.lowerBound < 128 {
            for v in r.lowerBound...min(r.upperBound, 127) {
                if v < 64 { asciiLow |= 1 << v } else { asciiHigh |= 1 << (v - 64) }
            }
        }
    }

    var members: [ClosedRange<UInt32>] { ranges }

    func contains(_ v: UInt32) -> Bool {
        if v < 64 { return asciiLow >> v & 1 == 1 }
        if v < 128 { return asciiHigh >> (v - 64) & 1 == 1 }
        var low = 0, high = ranges.count
        while low < high {
            let mid = (low + high) / 2
            if ranges[mid].upperBound < v { low = mid + 1 } else { high = mid }
        }
        return low < ranges.count && ranges[low].contains(v)
    }
}

private indirect enum Node {
    case empty
    case scalar(UInt32)
    case set(ScalarSet)
    case any
    case sequence([Node])
    case alternation([Node])
    case repetition(Node, min: Int, max: Int?)  // max nil: unbounded
}

private struct Compiler {
    var program: [Instruction] = []
    var sets: [ScalarSet] = []

    /// Instructions `emit` produces for `node`, saturating so a huge expansion cannot overflow.
    static func size(of node: Node) -> Int {
        let cap = SafePattern.maxInstructions * 2
        switch node {
        case .empty: return 0
        case .scalar, .set, .any: return 1
        case .sequence(let items): return min(cap, items.reduce(0) { min(cap, $0 + size(of: $1)) })
        case .alternation(let branches): return min(cap, branches.reduce(2 * (branches.count - 1)) { min(cap, $0 + size(of: $1)) })
        case .repetition(let body, let low, let high):
            let s = size(of: body)
            guard let high else { return min(cap, low == 0 ? s + 2 : low * s + 1) }
            return min(cap, low * s + (high - low) * (s + 1))
        }
    }

    mutating func emit(_ node: Node) {
        switch node {
        case .empty: break
        case .scalar(let v): program.append(.scalar(v))
        case .set(let set): sets.append(set); program.append(.set(sets.count - 1))
        case .any: program.append(.any)
        case .sequence(let items): for item in items { emit(item) }
        case .alternation(let branches):
            var jumpsToEnd: [Int] = []
            for branch in branches.dropLast() {
                let split = program.count
                program.append(.match)  // patched below, once the branch's length is known
                emit(branch)
                jumpsToEnd.append(program.count)
                program.append(.match)
                program[split] = .split(split + 1, program.count)
            }
            emit(branches[branches.count - 1])
            for j in jumpsToEnd { program[j] = .jump(program.count) }
        case .repetition(let body, let low, let high):
            if let high {
                for _ in 0..<low { emit(body) }
                var optionals: [Int] = []
                for _ in low..<high {
                    optionals.append(program.count)
                    program.append(.match)
                    emit(body)
                }
                for split in optionals { program[split] = .split(split + 1, program.count) }
            } else if low == 0 {
                let loop = program.count
                program.append(.match)
                emit(body)
                program.append(.jump(loop))
                program[loop] = .split(loop + 1, program.count)
            } else {
                for _ in 0..<(low - 1) { emit(body) }
                let start = program.count
                emit(body)
                program.append(.split(start, program.count + 1))
            }
        }
    }
}

// MARK: - Parser

private struct Parsed {
    var node: Node
    var hasQuantifier = false
    var isGroup = false
    var isAnchor = false
}

private struct Parser {
    let text: String
    let field: String
    let scalars: [Unicode.Scalar]
    var pos = 0
    var bodyStart = 0
    var caseInsensitive = false
    var depth = 0

    static let subset = "an expression here may use letters, digits, . [ ] ( ) | * + ? {n,m} \\d \\w \\s (and a backslash before punctuation for the punctuation itself)"

    init(text: String, field: String) {
        self.text = text
        self.field = field
        self.scalars = Array(text.unicodeScalars)
    }

    var quoted: String { "“" + (scalars.count > 80 ? source(0..<77) + "…" : text) + "”" }
    func source(_ range: Range<Int>) -> String {
        var s = ""
        s.unicodeScalars.append(contentsOf: scalars[range])
        return s
    }
    func refuse(_ message: String) -> FieldError { FieldError(field, message) }
    func at(_ i: Int) -> Unicode.Scalar? { i < scalars.count ? scalars[i] : nil }

    mutating func parse() throws(FieldError) -> Node {
        if scalars.starts(with: "(?i)".unicodeScalars) { caseInsensitive = true; pos = 4 }
        bodyStart = pos
        let result = try parseAlternation()
        if pos < scalars.count {  // only a `)` stops the top level early
            throw refuse("\(quoted) has a “)” at character \(pos + 1) without a matching “(”; remove it or write \\) for a literal parenthesis.")
        }
        return result.node
    }

    mutating func parseAlternation() throws(FieldError) -> Parsed {
        var branches: [Node] = []
        var hasQuantifier = false
        while true {
            var items: [Node] = []
            while let c = at(pos), c != "|", c != ")" {
                let item = try parseQuantified()
                items.append(item.node)
                hasQuantifier = hasQuantifier || item.hasQuantifier
            }
            branches.append(items.isEmpty ? .empty : items.count == 1 ? items[0] : .sequence(items))
            guard at(pos) == "|" else { break }
            pos += 1
        }
        return Parsed(node: branches.count == 1 ? branches[0] : .alternation(branches), hasQuantifier: hasQuantifier)
    }

    static func isQuantifier(_ c: Unicode.Scalar?) -> Bool { c == "*" || c == "+" || c == "?" || c == "{" }

    mutating func parseQuantified() throws(FieldError) -> Parsed {
        let start = pos
        var nothingToRepeat: FieldError {
            refuse("In \(quoted), the “\(scalars[pos])” at character \(pos + 1) has nothing to repeat; put it after a character, class or group, or write \\\(scalars[pos]) for the character itself.")
        }
        if Self.isQuantifier(scalars[pos]) { throw nothingToRepeat }
        let atom = try parseAtom()
        guard Self.isQuantifier(at(pos)) else { return atom }
        if atom.isAnchor { throw nothingToRepeat }
        let quantifierStart = pos
        let (low, high) = try parseCount()
        if at(pos) == "?" { pos += 1 }  // lazy: only whole matches count here, so the same as greedy
        if Self.isQuantifier(at(pos)) {
            throw refuse("In \(quoted), the “\(scalars[pos])” at character \(pos + 1) follows another quantifier; use a single one (a repeated group with a quantifier inside is not accepted either).")
        }
        // An optional group (`?`, `{0,1}`) is taken once or not at all: it cannot blow up, and
        // `user(-\d+)?` is a common whitelist. Any other repeat of a group that repeats inside is refused.
        if atom.isGroup && atom.hasQuantifier && !(low == 0 && high == 1) {
            let advice = unnested(group: start..<quantifierStart, after: pos, low: low, unbounded: high == nil).map { "like \($0)" }
                ?? "for example by repeating one bracket class such as [\\w\\s]* instead of a group"
            throw refuse("\(quoted) repeats a group that itself repeats (a nested quantifier): such an expression can take exponential time; write it without nesting, \(advice).")
        }
        return Parsed(node: .repetition(atom.node, min: low, max: high), hasQuantifier: true)
    }

    mutating func parseCount() throws(FieldError) -> (Int, Int?) {
        let open = pos
        pos += 1
        switch scalars[open] {
        case "*": return (0, nil)
        case "+": return (1, nil)
        case "?": return (0, 1)
        default: break
        }
        let badBrace = refuse("In \(quoted), the “{” at character \(open + 1) does not start a count like {3}, {2,} or {2,5}; write \\{ for a literal brace.")
        guard let low = readNumber() else { throw badBrace }
        var high: Int? = low
        if at(pos) == "," { pos += 1; high = readNumber() }
        guard at(pos) == "}" else { throw badBrace }
        pos += 1
        let count = source(open..<pos)
        if max(low, high ?? 0) > SafePattern.maxCount {
            throw refuse("In \(quoted), the count \(count) is above \(SafePattern.maxCount); repeat at most \(SafePattern.maxCount) times, or use + or * for any number.")
        }
        if let high, low > high { throw refuse("In \(quoted), the count \(count) has its minimum above its maximum; write {\(high),\(low)}.") }
        return (low, high)
    }

    mutating func readNumber() -> Int? {
        var value: Int?
        while let c = at(pos), ("0"..."9").contains(c) {
            value = min(1_000_000, (value ?? 0) * 10 + Int(c.value - 0x30))
            pos += 1
        }
        return value
    }

    mutating func parseAtom() throws(FieldError) -> Parsed {
        let c = scalars[pos]
        switch c {
        case "(": return try parseGroup()
        case "[": pos += 1; return Parsed(node: .set(try parseBracket()))
        case ".": pos += 1; return Parsed(node: .any)
        case "\\":
            switch try parseEscape() {
            case .scalar(let v): return Parsed(node: literal(v))
            case .set(let set): return Parsed(node: .set(set))
            }
        case "^", "$":
            guard c == "^" ? pos == bodyStart : pos == scalars.count - 1 else {
                throw refuse("In \(quoted), “\(c)” is only accepted at the very \(c == "^" ? "start" : "end") (the whole user ID must match anyway); write \\\(c) for the character itself.")
            }
            pos += 1
            return Parsed(node: .empty, isAnchor: true)
        case "]", "}":
            throw refuse("\(quoted) has a “\(c)” at character \(pos + 1) without a matching “\(c == "]" ? "[" : "{")”; write \\\(c) for the character itself.")
        default:
            pos += 1
            return Parsed(node: literal(c.value))
        }
    }

    func literal(_ v: UInt32) -> Node {
        caseInsensitive && ((0x41...0x5A).contains(v) || (0x61...0x7A).contains(v)) ? .set(ScalarSet([v...v], foldingCase: true)) : .scalar(v)
    }

    mutating func parseGroup() throws(FieldError) -> Parsed {
        let open = pos
        pos += 1
        if at(pos) == "?" {
            let form: String? = switch (at(pos + 1), at(pos + 2)) {
            case (":", _): nil
            case ("=", _), ("!", _): "a lookahead (?\(scalars[pos + 1])…), which is not supported: " + Self.subset
            case ("<", "="), ("<", "!"): "a lookbehind (?<\(scalars[pos + 2])…), which is not supported: " + Self.subset
            case ("<", _), ("P", _), ("'", _): "a named group; use a plain group ( … ) instead"
            case ("i", _): "“(?i” other than as a leading “(?i)”; put (?i) at the very start to ignore case in the whole expression"
            default: "“(?” forms other than (?: … ) and a leading (?i), which are not supported: " + Self.subset
            }
            if let form { throw refuse("\(quoted) uses \(form).") }
            pos += 2
        }
        depth += 1
        guard depth <= SafePattern.maxGroupDepth else {
            throw refuse("\(quoted) nests groups more than \(SafePattern.maxGroupDepth) deep; simplify it.")
        }
        var inner = try parseAlternation()
        depth -= 1
        guard at(pos) == ")" else {
            throw refuse("\(quoted) has a “(” at character \(open + 1) without a matching “)”; close the group or write \\( for a literal parenthesis.")
        }
        pos += 1
        inner.isGroup = true
        return inner
    }

    enum Escape { case scalar(UInt32), set(ScalarSet) }

    mutating func parseEscape() throws(FieldError) -> Escape {
        pos += 1
        guard let c = at(pos) else {
            throw refuse("\(quoted) ends with a lone backslash; write \\\\ for a backslash.")
        }
        pos += 1
        switch c {
        case "d", "D": return .set(ScalarSet(ScalarSet.digit, negated: c == "D"))
        case "w", "W": return .set(ScalarSet(ScalarSet.word, negated: c == "W"))
        case "s", "S": return .set(ScalarSet(ScalarSet.space, negated: c == "S"))
        case "1"..."9": throw refuse("\(quoted) uses a backreference (\\\(c)), which is not supported: " + Self.subset + ".")
        case "p", "P": throw refuse("\(quoted) uses a Unicode property (\\\(c){…}), which is not supported: " + Self.subset + ".")
        default:
            guard c.isASCII, c.value >= 0x20, c.value < 0x7F, !c.properties.isAlphabetic, !("0"..."9").contains(c) else {
                throw refuse("\(quoted) uses \\\(c), which is not supported: " + Self.subset + ".")
            }
            return .scalar(c.value)
        }
    }

    /// After the `[`. Stricter than NSRegularExpression where its class syntax has surprises (nested classes, `&&`, `--`).
    mutating func parseBracket() throws(FieldError) -> ScalarSet {
        let open = pos - 1
        let negated = at(pos) == "^"
        if negated { pos += 1 }
        let contentStart = pos
        var items: [ClosedRange<UInt32>] = []
        let unclosed = refuse("\(quoted) has a “[” at character \(open + 1) without a matching “]”; close the class or write \\[ for a literal bracket.")
        while true {
            guard let c = at(pos) else { throw unclosed }
            if c == "]" {
                guard pos > contentStart else {
                    throw refuse("\(quoted) has an empty class “[\(negated ? "^" : "")]” at character \(open + 1); list the characters it allows, like [a-z], and write \\] for a literal bracket.")
                }
                pos += 1
                return ScalarSet(items, negated: negated, foldingCase: caseInsensitive)
            }
            let itemStart = pos
            let item = try parseClassItem(first: pos == contentStart)
            guard at(pos) == "-", at(pos + 1) != "]" else { items += item; continue }
            pos += 1
            let hyphenOnly = refuse("In \(quoted), the “-” at character \(pos) does not join two characters; write \\- for a literal hyphen.")
            guard at(pos) != nil else { throw unclosed }
            guard item.count == 1, item[0].count == 1, scalars[itemStart] != "-", at(pos) != "-" else { throw hyphenOnly }
            let end = try parseClassItem(first: false)
            guard end.count == 1, end[0].count == 1 else { throw hyphenOnly }
            let (low, high) = (item[0].lowerBound, end[0].lowerBound)
            guard low <= high else {
                throw refuse("In \(quoted), the range \(source(itemStart..<pos)) starts after it ends; write it the other way round.")
            }
            items.append(low...high)
        }
    }

    mutating func parseClassItem(first: Bool) throws(FieldError) -> [ClosedRange<UInt32>] {
        let c = scalars[pos]
        switch c {
        case "\\":
            switch try parseEscape() {
            case .scalar(let v): return [v...v]
            case .set(let set): return set.members
            }
        case "[":
            throw refuse("\(quoted) has a “[” inside a class at character \(pos + 1); write \\[ for a literal bracket (classes inside classes are not supported).")
        case "&" where at(pos + 1) == "&":
            throw refuse("\(quoted) has “&&” inside a class at character \(pos + 1); write \\& for a literal ampersand (class intersection is not supported).")
        case "-" where !first && at(pos + 1) != "]":
            throw refuse("In \(quoted), the “-” at character \(pos + 1) does not join two characters; write \\- for a literal hyphen.")
        default:
            pos += 1
            return [c.value...c.value]
        }
    }

    /// A rewrite without nesting, for the simple shape `(x+y?…)+` of single characters and classes; nil otherwise.
    /// Not always equivalent — the message offers it as "like".
    func unnested(group: Range<Int>, after: Int, low: Int, unbounded: Bool) -> String? {
        guard unbounded, low <= 1 else { return nil }
        var i = group.lowerBound + (scalars[group.lowerBound + 1] == "?" ? 3 : 1)
        let end = group.upperBound - 1  // the `)`
        var tokens: [(whole: String, inner: String, mandatory: Bool)] = []
        while i < end {
            let whole: String, inner: String
            switch scalars[i] {
            case "\\": whole = source(i..<i + 2); inner = whole; i += 2
            case "[":
                var j = i + 1
                while scalars[j] != "]" { j += scalars[j] == "\\" ? 2 : 1 }
                inner = source(i + 1..<j)
                guard !inner.hasPrefix("^"), !inner.hasPrefix("-"), !inner.hasSuffix("-") else { return nil }
                whole = source(i..<j + 1)
                i = j + 1
            case "(", ")", "|", ".": return nil
            default:
                whole = source(i..<i + 1)
                inner = whole == "-" || whole == "^" ? "\\" + whole : whole
                i += 1
            }
            var mandatory = true
            if i < end, Self.isQuantifier(scalars[i]) {
                guard scalars[i] != "{" else { return nil }  // `(a{2})+` is not `a+`
                mandatory = scalars[i] == "+"
                i += 1
                if i < end, scalars[i] == "?" { i += 1 }
            }
            tokens.append((whole, inner, mandatory))
        }
        guard let firstToken = tokens.first else { return nil }
        let atLeastOnce = low >= 1 && tokens.contains { $0.mandatory }
        var wholes: [String] = [], inners: [String] = []
        for t in tokens where !wholes.contains(t.whole) { wholes.append(t.whole); inners.append(t.inner) }
        let replacement = wholes.count == 1 ? wholes[0] + (atLeastOnce ? "+" : "*")
            : low >= 1 && firstToken.mandatory ? firstToken.whole + "[" + inners.joined() + "]*"
            : "[" + inners.joined() + "]" + (atLeastOnce ? "+" : "*")
        return source(0..<group.lowerBound) + replacement + source(after..<scalars.count)
    }
}
