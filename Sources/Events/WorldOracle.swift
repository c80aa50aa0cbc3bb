import EventData
import Foundation
import Linalg

/// The synthetic world's truth: what the generator knows about a user and the true outcome
/// probabilities of showing them any pin at any feed position. A feed is judged by the saves
/// it would earn under these, beside popularity's and the oracle's own feed.
///
/// Everything is replayed from the seeded streams (a user's interests from the user's stream,
/// a pin's quality from the pin's), so no table is stored and any rank can ask about any user.
extension WorldGenerator {
    /// A user's long-term interests: up to three topics with weights 0.6, 0.3, 0.1.
    public struct UserTruth: Sendable, Equatable {
        public var user: Int
        public var interests: [Int]
        public var weights: [Double]

        /// The long-term weight of `topic` (0 when not an interest).
        public func weight(of topic: Int) -> Double {
            interests.firstIndex(of: topic).map { weights[$0] } ?? 0
        }
    }

    /// Marginal probabilities of each outcome of one impression.
    public struct OutcomeProbabilities: Sendable, Equatable {
        public var closeup: Double, click: Double, save: Double, hide: Double
    }

    /// A user's profile draws, in the order the generator makes them (country, device, sign-up
    /// time, interests), from the user's stream `r`.
    func drawProfile(_ u: Int, _ r: inout RandomStream) -> (
        country: Int32, device: Device, signupMs: Int64, truth: UserTruth
    ) {
        let p = parameters
        let country = Self.countries[min(Self.countries.count - 1, Int(r.exponential(rate: 0.6)))]
        let dv = r.uniform()
        let device: Device = dv < 0.45 ? .ios : dv < 0.85 ? .android : dv < 0.98 ? .web : .other
        let signup = p.startMs - 1 - Int64(r.uniform() * Double(3 * 365 * WorldParameters.dayMs))
        // Long-term interests: three topics (Zipf-popular topics are chosen more often).
        let topicZipf = ZipfDistribution(n: p.topics, exponent: 0.8)
        var interests = [Int]()
        while interests.count < min(3, p.topics) {
            let t = (topicZipf.sample(&r) - 1 + Int(Sharding.hash(Int64(u)) % UInt64(p.topics))) % p.topics
            if !interests.contains(t) { interests.append(t) }
        }
        let weights = Array([0.6, 0.3, 0.1].prefix(interests.count))
        return (country, device, signup, UserTruth(user: u, interests: interests, weights: weights))
    }

    /// User `u`'s long-term interests, replayed from the user's stream.
    public func truth(ofUser u: Int) -> UserTruth {
        var r = RandomStream(seed: parameters.seed, rank: Stream.user.rawValue, index: UInt64(u))
        return drawProfile(u, &r).truth
    }

    /// The latent quality of pin `i` (a standard normal; part of the truth).
    public func pinQuality(_ i: Int) -> Double { quality(ofPin: i) }

    /// True outcome probabilities of showing pin `pin` to `user` at feed position `position`
    /// (0-based) in a session whose short-term topic is `sessionTopic`: relevance from the
    /// long-term and session interest and the pin's quality; examination falls with position.
    public func outcomeProbabilities(
        _ user: UserTruth, pin: Int, position: Int, sessionTopic: Int, quality given: Double? = nil
    ) -> OutcomeProbabilities {
        let topic = topic(ofPin: pin)
        let affinity =
            3 * user.weight(of: topic) + 1.5 * (topic == sessionTopic ? 1 : 0) + 0.5 * (given ?? quality(ofPin: pin))
        let exam = 1 / Foundation.pow(1 + Double(position), 0.6)
        let closeup = exam * Self.sigmoid(affinity - 2.5)
        return OutcomeProbabilities(
            closeup: closeup, click: closeup * 0.4 * Self.sigmoid(affinity - 1),
            save: closeup * 0.3 * Self.sigmoid(affinity - 2), hide: exam * 0.05 * (1 - Self.sigmoid(affinity - 1)))
    }

    /// The probability that a new session of `user` has short-term topic `topic`: the
    /// stationary law of the generator's session drift (0.6 a long-term interest, 0.25 the
    /// previous session's topic, 0.15 any topic), 0.8 · weight(topic) + 0.2 / topics.
    public func sessionTopicProbability(_ user: UserTruth, topic: Int) -> Double {
        0.8 * user.weight(of: topic) + 0.2 / Double(parameters.topics)
    }

    /// True outcome probabilities for the next home-feed request of `user`, whose session topic
    /// is not known yet: the expectation over `sessionTopicProbability`.
    /// With `quality`, the pin's latent quality is replaced by that value (e.g. 0, its prior
    /// mean: what the user's interests alone predict).
    public func expectedOutcomeProbabilities(
        _ user: UserTruth, pin: Int, position: Int, quality given: Double? = nil
    ) -> OutcomeProbabilities {
        let topic = topic(ofPin: pin)
        let same = outcomeProbabilities(user, pin: pin, position: position, sessionTopic: topic, quality: given)
        let other = outcomeProbabilities(
            user, pin: pin, position: position, sessionTopic: topic == 0 ? 1 : 0, quality: given)
        let q = parameters.topics > 1 ? sessionTopicProbability(user, topic: topic) : 1
        func mix(_ a: Double, _ b: Double) -> Double { q * a + (1 - q) * b }
        return OutcomeProbabilities(
            closeup: mix(same.closeup, other.closeup), click: mix(same.click, other.click),
            save: mix(same.save, other.save), hide: mix(same.hide, other.hide))
    }

    /// The pins visible at the start of day `day` (the catalogue before it): ids `0 ..< n`.
    public func visiblePinCount(onDay day: Int) -> Int { visiblePins(onDay: day) }

    /// The oracle set: the `count` pins visible on `day` with the highest expected true save
    /// probability for `user` at the top slot, leaving out `excluded` (e.g. pins already seen),
    /// best first (ties to the smaller id).
    ///
    /// The expected save probability depends on a pin only through its topic and quality and
    /// grows with quality, so each topic's pins are visited in order of quality (`ranking`, built
    /// once per day by `OracleRanking`) and merged: cost O(count · topics), not O(pins).
    public func oracleTopPins(
        _ user: UserTruth, ranking: OracleRanking, count: Int, excluding excluded: Set<Int64> = []
    ) -> [Int64] {
        let topics = parameters.topics
        var next = [Int](repeating: 0, count: topics)
        func advance(_ t: Int) {
            while next[t] < ranking.byTopic[t].count && excluded.contains(Int64(ranking.byTopic[t][next[t]])) {
                next[t] += 1
            }
        }
        func score(_ t: Int) -> Double {
            guard next[t] < ranking.byTopic[t].count else { return -1 }
            return expectedOutcomeProbabilities(user, pin: ranking.byTopic[t][next[t]], position: 0).save
        }
        var heads = (0..<topics).map { t -> Double in
            advance(t)
            return score(t)
        }
        var out: [Int64] = []
        while out.count < count {
            var best = -1
            for t in 0..<topics where heads[t] >= 0 {
                if best < 0 || heads[t] > heads[best]
                    || (heads[t] == heads[best] && ranking.byTopic[t][next[t]] < ranking.byTopic[best][next[best]])
                {
                    best = t
                }
            }
            guard best >= 0 else { break }
            out.append(Int64(ranking.byTopic[best][next[best]]))
            next[best] += 1
            advance(best)
            heads[best] = score(best)
        }
        return out
    }

    /// Each topic's pins visible on a day, by quality (best first; ties to the smaller id).
    public struct OracleRanking: Sendable {
        public let day: Int
        /// `byTopic[t]`: pin ids of topic t.
        public let byTopic: [[Int]]

        /// Ranks the pins visible on `day` of `world`. Memory: one Int per visible pin.
        public init(world: WorldGenerator, day: Int) {
            self.day = day
            let n = world.visiblePins(onDay: day), topics = world.parameters.topics
            var byTopic = [[Int]](repeating: [], count: topics)
            var quality = [Double](repeating: 0, count: n)
            for i in 0..<n {
                quality[i] = world.quality(ofPin: i)
                byTopic[world.topic(ofPin: i)].append(i)
            }
            self.byTopic = byTopic.map { pins in pins.sorted { (-quality[$0], $0) < (-quality[$1], $1) } }
        }
    }
}
