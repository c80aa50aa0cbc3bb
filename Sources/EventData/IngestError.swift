/// A whole-file problem that stops an import: the file, the line, and a named reason
/// (`empty_file`, `missing_header`, `unknown_column`, `missing_column`, `duplicate_column`,
/// `unreadable`, `reject_rate_exceeded`).
public struct IngestError: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var row: Int64
    public var reason: String
    public var message: String
    public init(file: String, row: Int64, reason: String, message: String) {
        self.file = file
        self.row = row
        self.reason = reason
        self.message = message
    }
    public var description: String { "\(file):\(row): \(reason): \(message)" }
}
