import Foundation

/// The ranker's features of one (user, candidate pin, feed request): one implementation for the
/// training rows of `ranker train --data`, the nightly ranking of every user's candidates, and
/// serving. Everything is as of the request time t, from events strictly before it.
///
/// - sparse fields (`fieldNames`, hashed): the pin's category, surface, device, country, hour;
/// - dense (`denseNames`): log1p(pin age in days), log1p(the user's engagements), the pin's
///   impressions (log1p), smoothed closeup and save rates (before the request's day, over every
///   user), the two-tower score u(t)·p, the cosines of the pin with the user's decayed and
///   recent engagement means, and the share of the user's engagements in the pin's category;
/// - content: the pin's PinSage vector;
/// - position: the logged slot (training only; scoring uses the position-free path).
public enum FeedFeatures {
    public static let fieldNames = ["category", "surface", "device", "country", "hour"]
    public static let denseNames = [
        "log_pin_age_days", "log_user_engagements", "log_pin_impressions", "pin_closeup_rate", "pin_save_rate",
        "two_tower_score", "long_term_cosine", "short_term_cosine", "category_share",
    ]
    /// Smoothing of the pin rates: (events + m · prior) / (impressions + m).
    public static let smoothing = 20.0
    /// The features' version, stored with a ranker trained on them (`RankerArtifact.Provenance`)
    /// and checked before ranking: change it whenever a feature's meaning changes.
    public static let version =
        "feed-features-1 sparse=\(fieldNames.joined(separator: ",")) dense=\(denseNames.joined(separator: ",")) m=\(Int(smoothing))"

    /// A pin's engagement counts over every user before a day.
    public struct PinStats: Sendable, Equatable {
        public var impressions: Int64 = 0, closeups: Int64 = 0, saves: Int64 = 0
        public init(impressions: Int64 = 0, closeups: Int64 = 0, saves: Int64 = 0) {
            self.impressions = impressions
            self.closeups = closeups
            self.saves = saves
        }
    }

    /// What the features read about the user at the request.
    public struct User: Sendable {
        public var country: Int32 = -1, device: UInt8 = 255
        /// Engagements before the request, and how many of them fell in each category.
        public var engagements = 0
        public var categoryCounts: [Int32: Int] = [:]
        /// Unit two-tower vector at the request, the decayed and the recent engagement means (d
        /// each; empty when unknown).
        public var towerVector: [Float] = [], longTerm: [Float] = [], shortTerm: [Float] = []
        public init() {}
    }

    /// What the features read about the candidate pin.
    public struct Pin: Sendable {
        public var category: Int32, createdAt: Int64
        /// The pin's PinSage vector (d).
        public var vector: ArraySlice<Float>
        public var stats: PinStats
        public init(category: Int32, createdAt: Int64, vector: ArraySlice<Float>, stats: PinStats) {
            self.category = category
            self.createdAt = createdAt
            self.vector = vector
            self.stats = stats
        }
    }

    /// Global closeup and save rates per impression, the rates' prior.
    public struct Prior: Sendable, Equatable {
        public var closeup: Double, save: Double
        public init(closeup: Double, save: Double) {
            self.closeup = closeup
            self.save = save
        }
    }

    /// Appends one row to `data` (ids, dense, content; position, group and labels are the
    /// caller's). `data.fields`, `denseWidth` and `contentWidth` must match these features.
    public static func append(
        user: User, pin: Pin, surface: UInt8, time: Int64, prior: Prior, into data: inout CTRData
    ) {
        precondition(data.fields == fieldNames.count && data.denseWidth == denseNames.count)
        precondition(
            data.contentWidth == pin.vector.count, "content width \(data.contentWidth), pin vector \(pin.vector.count)")
        let hour = (time / 3_600_000) % 24
        data.ids += [Int64(pin.category), Int64(surface), Int64(user.device), Int64(user.country), hour]
        let ageDays = max(0, Double(time - pin.createdAt) / 86_400_000)
        let s = pin.stats, m = smoothing
        let shown = Double(s.impressions)
        let share = user.engagements > 0 ? Double(user.categoryCounts[pin.category] ?? 0) / Double(user.engagements) : 0
        data.dense += [
            Float(log1p(ageDays)), Float(log1p(Double(user.engagements))), Float(log1p(shown)),
            Float((Double(s.closeups) + m * prior.closeup) / (shown + m)),
            Float((Double(s.saves) + m * prior.save) / (shown + m)),
            cosine(user.towerVector, pin.vector), cosine(user.longTerm, pin.vector), cosine(user.shortTerm, pin.vector),
            Float(share),
        ]
        data.content += pin.vector
    }

    /// cos(a, b); 0 when either is empty or zero.
    static func cosine(_ a: [Float], _ b: ArraySlice<Float>) -> Float {
        guard a.count == b.count, !a.isEmpty else { return 0 }
        var dot: Float = 0, na: Float = 0, nb: Float = 0
        for (i, j) in zip(a.indices, b.indices) {
            dot += a[i] * b[j]
            na += a[i] * a[i]
            nb += b[j] * b[j]
        }
        return na > 0 && nb > 0 ? dot / (na.squareRoot() * nb.squareRoot()) : 0
    }

    /// An empty `CTRData` shaped for these features with tasks save and closeup.
    public static func emptyData(contentWidth: Int) -> CTRData {
        var d = CTRData(fields: fieldNames.count, ids: [], labels: [[], []])
        d.denseWidth = denseNames.count
        d.contentWidth = contentWidth
        return d
    }
}

extension FeedFeatures {
    /// One engagement of the user's current session (save, closeup or click) as the online
    /// update reads it: the pin's category and content vector (nil: unknown).
    public struct SessionEngagement: Sendable {
        public var category: Int32
        public var vector: [Float]?
        public init(category: Int32, vector: [Float]?) {
            self.category = category
            self.vector = vector
        }
    }

    /// Folds a session's engagements into rows computed before it (one user's candidates), as
    /// the serving shard does between two nightly runs. The user features the session changes are
    /// recomputed: log1p(engagements) (+1 per engagement), the category share (the row's category
    /// count, share · engagements, + the session's engagements in it, over the new total), and
    /// the short-term cosine: the mean of the stored cosine, weighted by the engagements still in
    /// the window of the last `shortLength`, and the cosine with the session's mean vector,
    /// weighted by the session's (an approximation of the cosine of the new window mean, whose
    /// vectors the rows do not keep). Everything else stays as stored.
    public static func applySession(_ session: [SessionEngagement], to data: inout CTRData, shortLength: Int = 5) {
        guard !session.isEmpty else { return }
        let f = fieldNames.count, w = denseNames.count, d = data.contentWidth
        let iE = denseNames.firstIndex(of: "log_user_engagements")!
        let iS = denseNames.firstIndex(of: "short_term_cosine")!
        let iC = denseNames.firstIndex(of: "category_share")!
        let known = session.compactMap(\.vector).filter { $0.count == d }
        var mean: [Float] = []
        if let first = known.first {
            mean = [Float](repeating: 0, count: first.count)
            for v in known { for j in mean.indices { mean[j] += v[j] / Float(known.count) } }
        }
        let s = session.count
        for r in 0..<data.count {
            let category = Int32(truncatingIfNeeded: data.ids[r * f])
            let e = max(0, Int(expm1(Double(data.dense[r * w + iE])).rounded()))
            let inCategory = Double(data.dense[r * w + iC]) * Double(e)
            let added = session.filter { $0.category == category }.count
            let total = e + s
            data.dense[r * w + iE] = Float(log1p(Double(total)))
            data.dense[r * w + iC] = Float((inCategory + Double(added)) / Double(total))
            if !mean.isEmpty {
                let fresh = min(known.count, shortLength)
                let old = min(min(e, shortLength), shortLength - fresh)
                let cosSession = cosine(mean, data.content[r * d..<(r + 1) * d])
                let stored = data.dense[r * w + iS]
                data.dense[r * w + iS] = (Float(old) * stored + Float(fresh) * cosSession) / Float(old + fresh)
            }
        }
    }
}
