/// Which part of an evaluation split a row belongs to.
public enum SplitPart: UInt8, Sendable {
    case train = 0, validation = 1, test = 2
}

/// Train/validation/test splits of a rank's events (a `Table` of `events` sorted by user, then
/// time, as every dataset run stores them). Both splits are per row and need no communication:
/// a user's events live on one shard.
public enum Splits {
    /// Each user's rows: `(user, rows)` in table order. Rows of a user must be contiguous.
    public static func userRanges(_ events: Table) -> [(user: Int64, rows: Range<Int>)] {
        let u = events.i64("user_id")
        var out: [(Int64, Range<Int>)] = []
        if u.isEmpty { return out }
        var s = 0
        for i in 1...max(1, u.count) where i == u.count || u[i] != u[s] {
            if i > s { out.append((u[s], s..<i)) }
            s = i
        }
        return out
    }

    /// By time: rows before `validationCutMs` train, rows in [validationCutMs, testCutMs)
    /// validation, rows at or after `testCutMs` test. With `validationCutMs == testCutMs` there is
    /// no validation part.
    public static func byTime(_ events: Table, validationCutMs: Int64, testCutMs: Int64) -> [SplitPart] {
        precondition(validationCutMs <= testCutMs)
        return events.i64("timestamp_ms").map { t in t < validationCutMs ? .train : t < testCutMs ? .validation : .test
        }
    }

    /// Leave-one-out per user over the interactions whose type is in `targets` (the SASRec /
    /// S3-Rec protocol): a user's last interaction is the test target, the one before it the
    /// validation target, earlier ones train. Other rows go to the part their time falls in
    /// (before the validation target: train; up to the test target: validation; after: test).
    /// Users with fewer than `minimumInteractions` interactions keep everything in train.
    ///
    /// Returns the part of every row and the target rows (validation, test) of each evaluated user.
    public static func leaveOneOut(
        _ events: Table, targets: Set<EventType> = [.save], minimumInteractions: Int = 3
    ) -> (parts: [SplitPart], targets: [(user: Int64, validation: Int, test: Int)]) {
        let type = events.uint8["event_type"]!, ts = events.i64("timestamp_ms")
        var parts = [SplitPart](repeating: .train, count: events.count)
        var out: [(Int64, Int, Int)] = []
        let targetCodes = Set(targets.map(\.rawValue))
        for (user, rows) in userRanges(events) {
            let interactions = rows.filter { targetCodes.contains(type[$0]) }
            guard interactions.count >= minimumInteractions else { continue }
            let test = interactions[interactions.count - 1], validation = interactions[interactions.count - 2]
            for i in rows {
                if i == test {
                    parts[i] = .test
                } else if i == validation {
                    parts[i] = .validation
                } else if targetCodes.contains(type[i]) {
                    parts[i] = i < validation ? .train : i < test ? .validation : .test
                } else {
                    parts[i] = ts[i] < ts[validation] ? .train : ts[i] < ts[test] ? .validation : .test
                }
            }
            out.append((user, validation, test))
        }
        return (parts, out)
    }
}
