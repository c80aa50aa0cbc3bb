import Foundation

/// A self-contained XHTML page (well-formed XML: an XML parser reads it) with tables and
/// inline SVG charts: no script, no font, no request to the network. Sections carry ids, so a
/// reader (or a test) finds each by `id`.
public struct HTMLReport {
    public let title: String
    var body: [String] = []

    public init(title: String) { self.title = title }

    /// Text with &, <, >, " escaped for XML.
    public static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }

    /// A number as the report shows it: 4 significant decimals, "–" for nil or not finite.
    public static func format(_ v: Double?) -> String {
        guard let v, v.isFinite else { return "–" }
        return abs(v) >= 1000 || v == v.rounded() && abs(v) >= 10
            ? String(format: "%.0f", v) : String(format: "%.4f", v)
    }

    /// Starts a section `<section id=…><h2>title</h2>`; closed by the next one or `render`.
    public mutating func section(id: String, title: String) {
        if body.contains(where: { $0.hasPrefix("<section") }) { body.append("</section>") }
        body.append("<section id=\"\(Self.escape(id))\"><h2>\(Self.escape(title))</h2>")
    }

    /// A paragraph of text; `warning` styles it as a warning.
    public mutating func paragraph(_ text: String, warning: Bool = false) {
        body.append(warning ? "<p class=\"warning\">\(Self.escape(text))</p>" : "<p>\(Self.escape(text))</p>")
    }

    /// A table; `flagged` rows (indices) are highlighted.
    public mutating func table(headers: [String], rows: [[String]], flagged: Set<Int> = []) {
        var t = "<table><thead><tr>" + headers.map { "<th>\(Self.escape($0))</th>" }.joined() + "</tr></thead><tbody>"
        for (i, r) in rows.enumerated() {
            t += (flagged.contains(i) ? "<tr class=\"warning\">" : "<tr>")
            // Numbers right-aligned, text left.
            t += r.map { Double($0) != nil ? "<td class=\"n\">\($0)</td>" : "<td>\(Self.escape($0))</td>" }.joined()
            t += "</tr>"
        }
        body.append(t + "</tbody></table>")
    }

    /// A horizontal bar chart (SVG) of `values` (≥ 0) labelled by `labels`, scaled to the
    /// largest; `highlight` bars (indices) drawn in another colour.
    public mutating func barChart(title: String, labels: [String], values: [Double], highlight: Set<Int> = []) {
        let rowHeight = 22.0, labelWidth = 300.0, barWidth = 360.0
        let height = rowHeight * Double(labels.count) + 30
        let top = max(values.filter(\.isFinite).max() ?? 0, 1e-12)
        var svg =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(labelWidth + barWidth + 80))\" height=\"\(Int(height))\" role=\"img\">"
        svg += "<title>\(Self.escape(title))</title>"
        svg += "<text x=\"0\" y=\"14\" font-size=\"13\" font-weight=\"bold\">\(Self.escape(title))</text>"
        for (i, (label, value)) in zip(labels, values).enumerated() {
            let y = 24 + rowHeight * Double(i)
            let w = value.isFinite ? max(0, value / top * barWidth) : 0
            let fill = highlight.contains(i) ? "#d95f02" : "#1b9e77"
            svg += "<text x=\"\(Int(labelWidth - 6))\" y=\"\(y + 14)\" font-size=\"12\" text-anchor=\"end\">"
            svg += "\(Self.escape(label))</text>"
            svg +=
                "<rect x=\"\(labelWidth)\" y=\"\(y + 3)\" width=\"\(String(format: "%.1f", w))\" height=\"15\" fill=\"\(fill)\"/>"
            svg += "<text x=\"\(String(format: "%.1f", labelWidth + w + 4))\" y=\"\(y + 14)\" font-size=\"11\">"
            svg += "\(Self.format(value))</text>"
        }
        body.append("<figure>" + svg + "</svg></figure>")
    }

    /// A reliability diagram (SVG): each non-empty bin's mean prediction against its observed
    /// rate on [0, 1]², point area by count, with the diagonal of perfect calibration.
    public mutating func reliabilityChart(title: String, _ r: ReliabilityDiagram) {
        let size = 260.0, pad = 36.0
        func x(_ v: Double) -> String { String(format: "%.1f", pad + v * size) }
        func y(_ v: Double) -> String { String(format: "%.1f", pad + (1 - v) * size) }
        let total = Double(max(r.bins.reduce(0) { $0 + $1.count }, 1))
        var svg =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(size + 2 * pad))\" height=\"\(Int(size + 2 * pad))\" role=\"img\">"
        svg += "<title>\(Self.escape(title))</title>"
        svg += "<text x=\"\(pad)\" y=\"16\" font-size=\"13\" font-weight=\"bold\">\(Self.escape(title))</text>"
        svg += "<rect x=\"\(pad)\" y=\"\(pad)\" width=\"\(size)\" height=\"\(size)\" fill=\"none\" stroke=\"#888\"/>"
        svg +=
            "<line x1=\"\(x(0))\" y1=\"\(y(0))\" x2=\"\(x(1))\" y2=\"\(y(1))\" stroke=\"#bbb\" stroke-dasharray=\"4 3\"/>"
        var points: [String] = []
        for b in r.bins where b.count > 0 {
            points.append("\(x(b.meanPredicted)),\(y(b.observedRate))")
            let radius = 2 + 8 * (Double(b.count) / total).squareRoot()
            svg +=
                "<circle cx=\"\(x(b.meanPredicted))\" cy=\"\(y(b.observedRate))\" r=\"\(String(format: "%.1f", radius))\" fill=\"#7570b3\"/>"
        }
        if points.count > 1 {
            svg += "<polyline points=\"\(points.joined(separator: " "))\" fill=\"none\" stroke=\"#7570b3\"/>"
        }
        svg += "<text x=\"\(pad + size / 2)\" y=\"\(pad + size + 26)\" font-size=\"11\" text-anchor=\"middle\">"
        svg += "mean predicted probability</text>"
        svg += "<text x=\"12\" y=\"\(pad + size / 2)\" font-size=\"11\" text-anchor=\"middle\" "
        svg += "transform=\"rotate(-90 12 \(pad + size / 2))\">observed rate</text>"
        body.append("<figure>" + svg + "</svg></figure>")
    }

    /// The page: XHTML with an inline style sheet.
    public func render() -> String {
        let style = """
            body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;margin:0.5em 0}\
            td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}td.n{text-align:right}\
            tr.warning td,p.warning{background:#fde0dd}figure{margin:0.5em 0}
            """
        var page = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE html>\n"
        page += "<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\"><head><meta charset=\"UTF-8\"/>"
        page += "<title>\(Self.escape(title))</title><style>\(style)</style></head><body>"
        page += "<h1>\(Self.escape(title))</h1>"
        page += body.joined(separator: "\n")
        if body.contains(where: { $0.hasPrefix("<section") }) { page += "</section>" }
        return page + "</body></html>\n"
    }
}
