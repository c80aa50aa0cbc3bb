/// Labels of feed impressions: what the user did with the pin after seeing it.
public enum ImpressionLabels {
    /// For every row of `events` (sorted by user, then time): for an impression, a bit mask of
    /// the engagement types (`1 << EventType.rawValue`) that the same user performed on the same
    /// pin in the same session at or after the impression (credited to the latest such
    /// impression only, when a pin was shown twice); 0 for other rows.
    public static func compute(_ events: Table) -> [UInt8] {
        let type = events.uint8["event_type"]!, pin = events.i64("pin_id"), session = events.i64("session_id")
        let ts = events.i64("timestamp_ms")
        var labels = [UInt8](repeating: 0, count: events.count)
        for (_, rows) in Splits.userRanges(events) {
            // Walk backwards: engagements seen so far are at or after the current row.
            struct Key: Hashable { let session: Int64, pin: Int64 }
            var after: [Key: (mask: UInt8, first: Int64)] = [:]
            for i in rows.reversed() {
                let k = Key(session: session[i], pin: pin[i])
                if type[i] == EventType.impression.rawValue {
                    // The engagement is credited to the latest impression before it only.
                    if let a = after[k], a.first >= ts[i] { labels[i] = a.mask; after[k] = nil }
                } else {
                    let old = after[k]
                    after[k] = ((old?.mask ?? 0) | UInt8(1) << type[i], min(old?.first ?? .max, ts[i]))
                }
            }
        }
        return labels
    }

    /// True when `mask` holds `type`.
    public static func has(_ mask: UInt8, _ type: EventType) -> Bool { mask & (1 << type.rawValue) != 0 }
}

/// Point-in-time user sequences for labelled examples: for each example (a row of a user's
/// events with its label timestamp), the user's long sequence — up to `longLength` most recent
/// events of `sequenceTypes` — and short sequence — the last `shortLength` of those — taken
/// strictly before the label's timestamp. Nothing at or after the label time is used, so a
/// model trained on these features sees only what was known when the impression was served.
public struct SequenceFeatureBuilder: Sendable {
    /// Most events in a long sequence (the SIM/DIN "lifelong" sequence).
    public var longLength: Int
    /// Most events in a short sequence (the session-level sequence).
    public var shortLength: Int
    /// Event types that enter sequences (impressions are excluded by default).
    public var sequenceTypes: Set<EventType>

    public init(
        longLength: Int = 2_000, shortLength: Int = 20,
        sequenceTypes: Set<EventType> = [.closeup, .click, .save, .hide]
    ) {
        self.longLength = longLength
        self.shortLength = shortLength
        self.sequenceTypes = sequenceTypes
    }

    /// Sequences of examples, flattened (CSR): example `e`'s long sequence is entries
    /// `longOffsets[e] ..< longOffsets[e + 1]` of `long*`, oldest first; likewise short.
    public struct Features: Sendable {
        /// The example's row in the events table and its label time (ms).
        public var exampleRow: [Int] = [], labelTimestamp: [Int64] = []
        /// `n + 1` offsets into the long arrays.
        public var longOffsets: [Int] = [0]
        public var longRow: [Int] = [], longPin: [Int64] = [], longType: [UInt8] = [], longTimestamp: [Int64] = []
        /// `n + 1` offsets into the short arrays.
        public var shortOffsets: [Int] = [0]
        public var shortRow: [Int] = [], shortPin: [Int64] = [], shortType: [UInt8] = [], shortTimestamp: [Int64] = []
        /// Number of examples.
        public var count: Int { exampleRow.count }
    }

    /// Builds features for `examples` (rows of `events`, which is sorted by user then time);
    /// examples come out in table order.
    /// Each example's label time is its own row's timestamp. Cost: O(rows + Σ sequence lengths).
    public func build(_ events: Table, examples: [Int]) -> Features {
        let type = events.uint8["event_type"]!, ts = events.i64("timestamp_ms"), pin = events.i64("pin_id")
        let codes = Set(sequenceTypes.map(\.rawValue))
        var f = Features()
        let wanted = Set(examples)
        for (_, rows) in Splits.userRanges(events) {
            let mine = rows.filter { wanted.contains($0) }
            if mine.isEmpty { continue }
            // The user's sequence events in time order.
            let seq = rows.filter { codes.contains(type[$0]) }
            let seqTs = seq.map { ts[$0] }
            for e in mine {
                let t = ts[e]
                // First sequence event at or after t: everything before it is strictly earlier.
                var lo = 0, hi = seq.count
                while lo < hi {
                    let mid = (lo + hi) / 2
                    if seqTs[mid] < t { lo = mid + 1 } else { hi = mid }
                }
                f.exampleRow.append(e)
                f.labelTimestamp.append(t)
                for j in max(0, lo - longLength)..<lo {
                    let i = seq[j]
                    f.longRow.append(i); f.longPin.append(pin[i]); f.longType.append(type[i]);
                    f.longTimestamp.append(ts[i])
                }
                f.longOffsets.append(f.longRow.count)
                for j in max(0, lo - shortLength)..<lo {
                    let i = seq[j]
                    f.shortRow.append(i); f.shortPin.append(pin[i]); f.shortType.append(type[i]);
                    f.shortTimestamp.append(ts[i])
                }
                f.shortOffsets.append(f.shortRow.count)
            }
        }
        return f
    }
}
