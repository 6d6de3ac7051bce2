import CCmark
import Foundation

/// Release notes: CommonMark rendered by cmark in its default safe mode, which replaces raw
/// HTML and `javascript:`/`vbscript:`/`data:` links (never pass CMARK_OPT_UNSAFE).
public enum Markdown {
    public static func html(_ markdown: String) -> String {
        let bytes = Array(markdown.utf8)
        guard let out = cmark_markdown_to_html(bytes.map { CChar(bitPattern: $0) }, bytes.count, CMARK_OPT_DEFAULT) else { return "" }
        defer { free(out) }
        return String(cString: out)
    }
}
