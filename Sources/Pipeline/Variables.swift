import Foundation

/// The variables a pipeline expands in its specs (`${NAME}`): the DAG's `set` lines, overridden by
/// `--set NAME=value`, plus `RUN` (the night's folder), `NIGHT` (its id) and `ROOT`; and, for one
/// stage, the `KEY=value` lines of its `.env` inputs (written by an earlier stage, e.g. `mosaic
/// cut --out`).
public struct Variables: Sendable, Equatable {
    public var values: [String: String]

    public init(_ values: [String: String] = [:]) { self.values = values }

    /// `text` with every `${NAME}` replaced. Throws naming `context` and the variable when one is
    /// unknown (unless `keepUnknown`, which leaves it as written: a plan printed before an
    /// earlier stage has written the value).
    public func expand(_ text: String, context: String, keepUnknown: Bool = false) throws -> String {
        var out = ""
        var rest = Substring(text)
        while let open = rest.range(of: "${") {
            out += rest[..<open.lowerBound]
            guard let close = rest[open.upperBound...].firstIndex(of: "}") else {
                throw PipelineError("\(context): '${' without a closing '}' in '\(text)'")
            }
            let name = String(rest[open.upperBound..<close])
            if let v = values[name] {
                out += v
            } else if keepUnknown {
                out += "${\(name)}"
            } else {
                throw PipelineError(
                    "\(context): unknown variable ${\(name)} (known: \(values.keys.sorted().joined(separator: ", "))); "
                        + "set it in the DAG, with --set \(name)=…, or in a .env input")
            }
            rest = rest[rest.index(after: close)...]
        }
        return out + rest
    }

    /// The `KEY=value` lines of an env file (as `mosaic cut --out` writes).
    public static func readEnvFile(_ path: String) throws -> [String: String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw PipelineError("\(path): cannot read the variables file (did the stage that writes it run?)")
        }
        var out: [String: String] = [:]
        for (i, line) in text.split(separator: "\n").enumerated() {
            let t = line.trimmingCharacters(in: .whitespaces)
            if t.isEmpty || t.hasPrefix("#") { continue }
            guard let eq = t.firstIndex(of: "=") else { throw PipelineError("\(path):\(i + 1): expected KEY=value") }
            out[String(t[..<eq])] = String(t[t.index(after: eq)...])
        }
        return out
    }

    /// Splits a command line into arguments as a shell would for words, single and double
    /// quotes (no globbing, no other expansion).
    public static func splitArguments(_ text: String, context: String) throws -> [String] {
        var args: [String] = []
        var current = ""
        var inWord = false
        var quote: Character? = nil
        for c in text {
            if let q = quote {
                if c == q { quote = nil } else { current.append(c) }
            } else if c == "\"" || c == "'" {
                quote = c
                inWord = true
            } else if c == " " || c == "\t" {
                if inWord { args.append(current) }
                current = ""
                inWord = false
            } else {
                current.append(c)
                inWord = true
            }
        }
        if quote != nil { throw PipelineError("\(context): unclosed quote in '\(text)'") }
        if inWord { args.append(current) }
        return args
    }
}
