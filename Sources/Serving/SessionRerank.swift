import EventData

/// An event of the user's current session, sent with a feed request (fresher than the nightly
/// feeds): the pin and what the user did with it.
public struct SessionEvent: Sendable, Codable, Equatable {
    public var pin: Int64
    /// `impression`, `closeup`, `click`, `save` or `hide`.
    public var type: String

    public init(pin: Int64, type: String) {
        self.pin = pin
        self.type = type
    }
}

/// Re-ranks a precomputed feed with the session's fresh events:
/// - pins the user already met in the session (any event) or hid leave the feed;
/// - every remaining pin scores
///       −rank / n  +  α · cos(pin, mean of the session's engaged pins)  −  β · cos(pin, mean of hidden pins)
///   (engaged = closeup, click, save; cosines of content embeddings), so the nightly order is
///   kept unless the session says otherwise. Pins without a known embedding keep their rank
///   term only. Deterministic: ties go to the earlier pin.
public struct SessionRerank: Sendable {
    /// Weight of the similarity to the session's engaged pins (interest now).
    public var alpha: Float
    /// Weight of the similarity to the session's hidden pins (negative feedback).
    public var beta: Float

    public init(alpha: Float = 0.5, beta: Float = 0.5) {
        self.alpha = alpha
        self.beta = beta
    }

    /// Event types a session may send.
    public static let types: Set<String> = Set(EventType.allCases.map(\.name))

    /// The re-ranked feed (at most `k` pins). `embedding(pin)` returns a pin's content embedding
    /// (d values) or nil when unknown.
    public func rerank(
        feed: [Int64], session: [SessionEvent], k: Int, embedding: (Int64) -> [Float]?
    ) -> [Int64] {
        let met = Set(session.map(\.pin))
        let engaged = session.filter { ["closeup", "click", "save"].contains($0.type) }.compactMap { embedding($0.pin) }
        let hidden = session.filter { $0.type == "hide" }.compactMap { embedding($0.pin) }
        func mean(_ rows: [[Float]]) -> [Float]? {
            guard let first = rows.first else { return nil }
            var m = [Float](repeating: 0, count: first.count)
            for r in rows where r.count == m.count { for j in m.indices { m[j] += r[j] / Float(rows.count) } }
            return m
        }
        func cosine(_ a: [Float], _ b: [Float]) -> Float {
            guard a.count == b.count else { return 0 }
            var dot: Float = 0, na: Float = 0, nb: Float = 0
            for j in a.indices { dot += a[j] * b[j]; na += a[j] * a[j]; nb += b[j] * b[j] }
            return na > 0 && nb > 0 ? dot / (na * nb).squareRoot() : 0
        }
        let interest = mean(engaged), dislike = mean(hidden)
        let n = Float(max(1, feed.count))
        var scored: [(score: Float, rank: Int, pin: Int64)] = []
        for (rank, pin) in feed.enumerated() where !met.contains(pin) {
            var score = -Float(rank) / n
            if let e = embedding(pin) {
                if let interest { score += alpha * cosine(e, interest) }
                if let dislike { score -= beta * cosine(e, dislike) }
            }
            scored.append((score, rank, pin))
        }
        scored.sort { ($0.score, -$0.rank) > ($1.score, -$1.rank) }
        return scored.prefix(k).map(\.pin)
    }
}
