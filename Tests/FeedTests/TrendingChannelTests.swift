import Collective
import EventData
import Events
import Feed
import Testing

@Suite("Trending channel and candidate merge")
struct TrendingChannelTests {
    @Test(
        "candidates: slots in proportion to the user's engaged categories, best rate first, seen pins left out; cold start gets the best overall"
    )
    func candidatesFollowEngagement() {
        let channel = TrendingChannel(
            byCategory: [1: [10, 11, 12, 13], 2: [20, 21, 22], 3: [30]], overall: [20, 10, 30], prior: 0.01)
        // Engaged: category 1 three times, category 2 once, an unknown pin (−1).
        let list = channel.candidates(engagedCategories: [1, 2, 1, -1, 1], k: 4, exclude: [11])
        #expect(list == [10, 20, 12, 13])
        // Cold start: no engaged category → the best pins overall.
        #expect(channel.candidates(engagedCategories: [], k: 4, exclude: [10]) == [20, 30])
        #expect(channel.candidates(engagedCategories: [-1], k: 1, exclude: []) == [20])
        #expect(channel.candidates(engagedCategories: [3, 3], k: 4, exclude: []) == [30])
    }

    @Test("cold start by country and device, topped up from the country, then from everyone")
    func coldStartBySegment() {
        let fr = CountryCode.pack("FR")!, jp = CountryCode.pack("JP")!
        let channel = TrendingChannel(
            byCategory: [1: [10]], overall: [20, 10, 30],
            bySegment: [
                TrendingChannel.segment(country: fr, device: Device.ios.rawValue): [40, 41],
                TrendingChannel.segment(country: fr): [41, 42],
            ], prior: 0.01)
        let ios = UserProfile(country: fr, device: Device.ios.rawValue)
        #expect(channel.candidates(engagedCategories: [], k: 5, exclude: [42], profile: ios) == [40, 41, 20, 10, 30])
        let web = UserProfile(country: fr, device: Device.web.rawValue)
        #expect(channel.candidates(engagedCategories: [], k: 3, exclude: [], profile: web) == [41, 42, 20])
        let elsewhere = UserProfile(country: jp, device: Device.ios.rawValue)
        #expect(channel.candidates(engagedCategories: [], k: 2, exclude: [], profile: elsewhere) == [20, 10])
        #expect(
            channel.candidates(engagedCategories: [1], k: 2, exclude: [], profile: ios) == [10], "warm: by category")
    }

    @Test("the rate counts closeups: with weight 0 only saves rank the pins, with the default weight closeups do too")
    func closeupsSharpenTheRate() throws {
        // Pins 1 and 2 are shown 10 times each in category 7; pin 1 gets one save, pin 2 six
        // closeups and no save; pin 3 gets nothing; pin 4 one save and six closeups.
        var u = UserEvents(user: 1)
        func add(_ pin: Int64, _ type: EventType, _ n: Int) {
            for _ in 0..<n {
                u.pins.append(pin)
                u.types.append(type.rawValue)
                u.times.append(1_000)
            }
        }
        for pin: Int64 in 1...4 { add(pin, .impression, 10) }
        add(1, .save, 1)
        add(2, .closeup, 6)
        add(4, .save, 1)
        add(4, .closeup, 6)
        let comm = try Communicator.world()
        func order(_ w: Double) throws -> [Int64] {
            try TrendingChannel.build(
                users: comm.rank == 0 ? [u] : [], cut: 10_000, days: 0, perCategory: 4, closeupWeight: w,
                categoriesOf: { $0.map { _ in 7 } }, comm: comm
            ).byCategory[7] ?? []
        }
        #expect(try order(0) == [1, 4, 2, 3], "saves only: ties to the smaller id")
        #expect(try order(TrendingChannel.defaultCloseupWeight) == [4, 2, 1, 3])
    }

    @Test("merge: round-robin over the channels, duplicates dropped, up to the count")
    func mergeRoundRobin() {
        #expect(Candidates.merge([[1, 2, 3], [2, 4]], count: 10) == [1, 2, 3, 4])
        #expect(Candidates.merge([[1, 2, 3], [4, 5, 6]], count: 3) == [1, 4, 2])
        #expect(Candidates.merge([[], []], count: 3).isEmpty)
    }
}

@Suite("Walk (Pixie) channel")
struct WalkChannelTests {
    @Test(
        "candidates aggregate the neighbours of recent engagements, most recent weighted most; engaged and seen pins left out"
    )
    func aggregation() {
        // Engaged 1 then 2 (2 is the most recent: weight 1; 1 gets 1/2).
        let lists: [(ids: [Int64], weights: [Float])] = [
            ([10, 11, 2], [0.5, 0.3, 0.2]), ([11, 12, 1], [0.4, 0.4, 0.2]),
        ]
        let c = WalkChannel.candidates(engaged: [1, 2], lists: lists, k: 10, exclude: [12])
        // Scores: 10 → 0.25, 11 → 0.15 + 0.4 = 0.55; 12 excluded; 1 and 2 are the engaged pins.
        #expect(c == [11, 10])
        #expect(WalkChannel.candidates(engaged: [1, 2], lists: lists, k: 1, exclude: []) == [11])
        #expect(WalkChannel.candidates(engaged: [], lists: [], k: 5, exclude: []).isEmpty)
    }
}
