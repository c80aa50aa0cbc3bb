import EventData
import Events
import Foundation

/// Ranking examples from the synthetic world (`WorldGenerator`, the world of `mosaic generate`):
/// one example per impression, labelled save and closeup (same user, pin and session, at or
/// after the impression: `ImpressionLabels`), with the generator's true probabilities kept as
/// the oracle.
///
/// Features are point-in-time as of the feed REQUEST (`FeatureTime.request`, the default): the
/// time of the first impression of the impression's session, when the ranker scored the feed —
/// not the time the slot was displayed. Features as of the display time
/// (`FeatureTime.impression`) include the same feed's engagements on earlier slots (closeups,
/// saves, hides a few seconds before), which the ranker cannot know when it scores the feed and
/// which encode the slot: the deeper the slot, the more and the more recent such events (time
/// bucket 0). DIN/SIM then learn position through the sequences, and nulling the position tower
/// no longer removes the position bias from scores.
///
/// Features (only what was known before the request):
/// - sparse fields: user, pin, pin category, surface, device, country, hour of day;
/// - dense: log1p(pin age in days), log1p(the user's engagement events so far),
///   log1p(the pin's impressions so far, over all users);
/// - content: the pin's content embedding;
/// - position: the logged feed slot (capped at `positionBuckets − 1`), for the position tower;
/// - sequences: the user's closeup/click/save/hide events (`SequenceSource`); with `skipEvents`
///   also skips — impressions without any engagement in their session — as events of type
///   `impression` (their own type embedding; hides stay their own, strong, negative type). A
///   skip is known only once its session is over; with features taken at the request, only
///   earlier sessions' skips are before an example's time.
/// Split by time: the last `testDays` days test, the `validDays` before valid, the rest train.
public struct WorldExamples: Sendable {
    /// The time every feature of an impression is taken at (strictly before it).
    public enum FeatureTime: String, Sendable, CaseIterable {
        /// The feed request: the first impression of the session (what serving knows).
        case request
        /// The impression's own display time (leaks the slot through in-feed engagements).
        case impression
    }
    public var train: CTRData, valid: CTRData, test: CTRData
    /// True P(save), P(closeup) of each test example (tasks × count), and the position-free
    /// relevance P(closeup) / examination(position).
    public var oracle: [[Float]]
    public var relevance: [Float]
    /// Logged position of each test example.
    public var testPositions: [Int]
    public static let fieldNames = ["user", "pin", "category", "surface", "device", "country", "hour"]
    public static let denseNames = ["log_pin_age_days", "log_user_events", "log_pin_impressions"]

    /// Builds the examples of a world with `parameters` (every rank builds the whole world:
    /// it is small; training splits each step's batch over ranks).
    public static func build(
        _ parameters: WorldParameters, positionBuckets: Int = 32, validDays: Int = 2, testDays: Int = 2,
        featureTime: FeatureTime = .request, skipEvents: Bool = false
    ) -> WorldExamples {
        let gen = WorldGenerator(parameters)
        let block = gen.users(Array(0..<parameters.users))
        let events = block.events
        let pins = gen.pins(Array(0..<parameters.totalPins))
        let dim = parameters.dimension
        let pinCategory = pins.int32["category"]!, pinCreated = pins.i64("created_at_ms")
        let pinEmbedding = pins.float32["embedding"]!
        let uid = events.i64("user_id"), pin = events.i64("pin_id"), ts = events.i64("timestamp_ms")
        let type = events.uint8["event_type"]!, pos = events.int32["position"]!, surface = events.uint8["surface"]!
        let pSave = events.float32["p_save"]!, pCloseup = events.float32["p_closeup"]!
        let session = events.i64("session_id")
        let labels = ImpressionLabels.compute(events)
        let users = block.users
        let device = users.uint8["device"]!, country = users.int32["country"]!
        var userIndex: [Int64: Int] = [:]
        for (i, u) in users.i64("user_id").enumerated() { userIndex[u] = i }

        // Histories: engagement events (not impressions) and, with `skipEvents`, impressions
        // without engagement, per user in time order.
        var offsets = [0]
        var hPin: [Int64] = [], hType: [UInt8] = [], hTime: [Int64] = [], hCat: [Int32] = []
        let ranges = Splits.userRanges(events)
        var rangeOfUser = [Range<Int>](repeating: 0..<0, count: users.count)
        for (u, rows) in ranges { rangeOfUser[userIndex[u]!] = rows }
        for u in 0..<users.count {
            for i in rangeOfUser[u] where type[i] != EventType.impression.rawValue || (skipEvents && labels[i] == 0) {
                hPin.append(pin[i]); hType.append(type[i]); hTime.append(ts[i]); hCat.append(pinCategory[Int(pin[i])])
            }
            offsets.append(hPin.count)
        }
        let impressions = (0..<events.count).filter { type[$0] == EventType.impression.rawValue }
        // Feature time of each impression: its session's first impression (the feed request), or
        // its own time.
        var featureAt = [Int64](repeating: 0, count: events.count)
        if featureTime == .request {
            var first: [Int64: Int64] = [:]
            for i in impressions { first[session[i]] = min(first[session[i]] ?? .max, ts[i]) }
            for i in impressions { featureAt[i] = first[session[i]]! }
        } else {
            for i in impressions { featureAt[i] = ts[i] }
        }
        // Pin impressions so far: impressions (over all users) strictly before the feature time,
        // counted per pin by one sweep over impressions and queries in time order.
        let byTime = impressions.sorted { (ts[$0], $0) < (ts[$1], $1) }
        let queries = impressions.sorted { (featureAt[$0], $0) < (featureAt[$1], $1) }
        var seen = [Int](repeating: 0, count: parameters.totalPins)
        var popularity = [Int](repeating: 0, count: events.count)
        var k = 0
        for i in queries {
            while k < byTime.count, ts[byTime[k]] < featureAt[i] {
                seen[Int(pin[byTime[k]])] += 1
                k += 1
            }
            popularity[i] = seen[Int(pin[i])]
        }
        let dayMs: Int64 = 86_400_000
        let testCut = parameters.startMs + Int64(parameters.days - testDays) * dayMs
        let validCut = testCut - Int64(validDays) * dayMs
        struct Part {
            var ids: [Int64] = [], dense: [Float] = [], content: [Float] = [], pos: [Int] = [], groups: [Int64] = []
            var save: [Float] = [], closeup: [Float] = [], user: [Int] = [], time: [Int64] = [], cat: [Int32] = []
            var oSave: [Float] = [], oCloseup: [Float] = [], rel: [Float] = [], rawPos: [Int] = []
        }
        var parts = [Part(), Part(), Part()]
        let probe = SequenceSource(
            offsets: offsets, pin: hPin, type: hType, time: hTime, category: hCat, pinEmbedding: [], width: 0,
            exampleUser: [], exampleTime: [], exampleCategory: [])
        for i in impressions {
            // The split follows the impression's time; every feature the feature time.
            let u = userIndex[uid[i]]!, t = featureAt[i], p = Int(pin[i])
            let part = ts[i] < validCut ? 0 : ts[i] < testCut ? 1 : 2
            let hour = Int64((t / 3_600_000) % 24)
            parts[part].ids += [
                Int64(u), pin[i], Int64(pinCategory[p]), Int64(surface[i]), Int64(device[u]),
                Int64(country[u]), hour,
            ]
            let age = max(0, Double(t - pinCreated[p]) / Double(dayMs))
            let activity = probe.end(user: u, before: t) - offsets[u]
            parts[part].dense += [
                Float(log1p(age)), Float(log1p(Double(activity))), Float(log1p(Double(popularity[i]))),
            ]
            parts[part].content += pinEmbedding[p * dim..<(p + 1) * dim]
            parts[part].pos.append(min(Int(pos[i]), positionBuckets - 1))
            parts[part].rawPos.append(Int(pos[i]))
            parts[part].groups.append(uid[i])
            parts[part].save.append(ImpressionLabels.has(labels[i], .save) ? 1 : 0)
            parts[part].closeup.append(ImpressionLabels.has(labels[i], .closeup) ? 1 : 0)
            parts[part].user.append(u); parts[part].time.append(t); parts[part].cat.append(pinCategory[p])
            parts[part].oSave.append(pSave[i]); parts[part].oCloseup.append(pCloseup[i])
            parts[part].rel.append(pCloseup[i] * Float(pow(1 + Double(pos[i]), 0.6)))
        }
        func data(_ q: Int) -> CTRData {
            let x = parts[q]
            var d = CTRData(fields: fieldNames.count, ids: x.ids, labels: [x.save, x.closeup])
            d.denseWidth = denseNames.count; d.dense = x.dense
            d.contentWidth = dim; d.content = x.content
            d.positions = x.pos; d.groups = x.groups
            d.sequences = SequenceSource(
                offsets: offsets, pin: hPin, type: hType, time: hTime, category: hCat, pinEmbedding: pinEmbedding,
                width: dim, exampleUser: x.user, exampleTime: x.time, exampleCategory: x.cat)
            return d
        }
        return WorldExamples(
            train: data(0), valid: data(1), test: data(2), oracle: [parts[2].oSave, parts[2].oCloseup],
            relevance: parts[2].rel, testPositions: parts[2].rawPos)
    }
}
