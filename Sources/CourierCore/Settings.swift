/// Host names: the virtual domain and the global resource host.
public enum DomainName {
    public static func validate(_ text: String, field: String, label: String = "virtual domain", example host: String? = nil) throws(FieldError) -> String {
        let name = text.trimmingCharacters(in: .whitespaces)
        let example = "for example \(host ?? "h5app.example.com")"
        guard !name.isEmpty else { throw FieldError(field, "Enter the \(label), \(example).") }
        if name.contains("://") || name.contains("/") || name.contains(":") {
            throw FieldError(field, "Enter only the host name of the \(label), without scheme, port or path, \(example).")
        }
        if name.hasSuffix(".") { throw FieldError(field, "Remove the trailing dot from the \(label).") }
        guard name.utf8.count <= 253 else { throw FieldError(field, "The \(label) is longer than 253 characters.") }
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2 else {
            throw FieldError(field, "The \(label) needs at least two labels separated by dots, \(example).")
        }
        for l in labels {
            let ok = (1...63).contains(l.utf8.count)
                && l.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }
                && l.first != "-" && l.last != "-"
            guard ok else {
                throw FieldError(field, "“\(l)” is not a valid label of the \(label): use 1–63 lowercase letters, digits or hyphens, not starting or ending with a hyphen.")
            }
        }
        return name
    }
}

/// The app key of global resources: `{appId}_{workspaceId}`, e.g. `53E5279071442_test`.
public enum AppKey {
    public static func validate(_ text: String, field: String = "appKey") throws(FieldError) -> String {
        let key = text.trimmingCharacters(in: .whitespaces)
        let parts = key.split(separator: "_", maxSplits: 1, omittingEmptySubsequences: false)
        func ok(_ s: Substring) -> Bool {
            !s.isEmpty && s.utf8.count <= 64 && s.utf8.allSatisfy {
                ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D
            }
        }
        guard parts.count == 2, ok(parts[0]), ok(parts[1]) else {
            throw FieldError(field, "The app key is {appId}_{workspaceId}: letters, digits or hyphens on each side of one underscore, for example 53E5279071442_test.")
        }
        return key
    }
}
