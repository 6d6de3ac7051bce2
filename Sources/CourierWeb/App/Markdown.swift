import CCmark
import Foundation

/// Release notes: CommonMark rendered by cmark in its default safe mode, which replaces raw
/// HTML and `javascript:`/`vbscript:`/`data:` links (never pass CMARK_OPT_UNSAFE).
public enum Markdown {
    public static func html(_ markdown: String) -> String {
        let bytes = Array(markdown.utf8)
        guard let out = cmark_markdown_to_html(bytes.map { CChar(bitPattern: $0) }, bytes.count, CMARK_OPT_DEFAULT) else { return "" }
        defer { free(out) }
        // A link cmark made safe keeps an empty href, which still looks and acts like a link
        // (it reloads the page): such a link is left as plain text in an <a> without href.
        return String(cString: out).replacingOccurrences(of: #"<a href="""#, with: "<a")
    }
}
