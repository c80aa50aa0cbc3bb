import EventData
import Events
import Foundation
import Testing

@Suite("The world's truth (oracle)")
struct WorldOracleTests {
    @Test(
        "every impression's stored true probabilities are the oracle's for its user, pin, position and a session topic")
    func storedProbabilitiesAreTheOracles() {
        let g = WorldGenerator(smallWorld(users: 80, powerEvery: 0))
        let e = g.users(Array(0..<80)).events
        let type = e.uint8["event_type"]!, user = e.i64("user_id"), pin = e.i64("pin_id"), pos = e.int32["position"]!
        let pc = e.float32["p_closeup"]!, ps = e.float32["p_save"]!, ph = e.float32["p_hide"]!
        var checked = 0, sameTopic = 0
        for i in 0..<e.count where type[i] == EventType.impression.rawValue {
            let truth = g.truth(ofUser: Int(user[i]))
            let topic = g.topic(ofPin: Int(pin[i]))
            // The session topic is not stored: the pin's topic or another one give the two values.
            let same = g.outcomeProbabilities(truth, pin: Int(pin[i]), position: Int(pos[i]), sessionTopic: topic)
            let other = g.outcomeProbabilities(
                truth, pin: Int(pin[i]), position: Int(pos[i]), sessionTopic: (topic + 1) % g.parameters.topics)
            func matches(_ o: WorldGenerator.OutcomeProbabilities) -> Bool {
                Float(o.closeup) == pc[i] && Float(o.save) == ps[i] && Float(o.hide) == ph[i]
            }
            #expect(matches(same) || matches(other), "event \(i)")
            if matches(same) && !matches(other) { sameTopic += 1 }
            checked += 1
        }
        #expect(checked > 5_000)
        // Half the slots come from the session topic, so many impressions match it.
        #expect(Double(sameTopic) / Double(checked) > 0.3, "\(sameTopic) of \(checked)")
    }

    @Test("the expected probability mixes the session-topic law; it sums to one over topics")
    func expectation() {
        let g = WorldGenerator(smallWorld())
        let truth = g.truth(ofUser: 7)
        let total = (0..<g.parameters.topics).reduce(0.0) { $0 + g.sessionTopicProbability(truth, topic: $1) }
        #expect(abs(total - 1) < 1e-12)
        let pin = truth.interests[0]  // pin i has topic i mod topics: this one is the main interest
        let same = g.outcomeProbabilities(truth, pin: pin, position: 2, sessionTopic: g.topic(ofPin: pin))
        let other = g.outcomeProbabilities(truth, pin: pin, position: 2, sessionTopic: -1)
        let q = g.sessionTopicProbability(truth, topic: g.topic(ofPin: pin))
        let expected = g.expectedOutcomeProbabilities(truth, pin: pin, position: 2)
        #expect(abs(expected.save - (q * same.save + (1 - q) * other.save)) < 1e-15)
        #expect(expected.save > other.save && expected.save < same.save)
    }

    @Test("oracle top pins equal a brute-force sort of every visible pin, without the excluded ones")
    func oracleTopPinsAgainstBruteForce() {
        let g = WorldGenerator(smallWorld())
        let day = 3
        let ranking = WorldGenerator.OracleRanking(world: g, day: day)
        for u in [0, 1, 17, 99] {
            let truth = g.truth(ofUser: u)
            let excluded: Set<Int64> = Set((0..<40).map { Int64($0 * 7 + u) })
            let fast = g.oracleTopPins(truth, ranking: ranking, count: 100, excluding: excluded)
            let all = (0..<g.visiblePinCount(onDay: day)).filter { !excluded.contains(Int64($0)) }
            let brute = all.map { ($0, g.expectedOutcomeProbabilities(truth, pin: $0, position: 0).save) }
                .sorted { ($1.1, $0.0) < ($0.1, $1.0) }.prefix(100).map { Int64($0.0) }
            #expect(fast == Array(brute), "user \(u)")
            #expect(Set(fast).isDisjoint(with: excluded))
        }
    }
}
