import Feed
import Linalg
import Testing

@Suite("Diversity re-rank")
struct DiversityRerankTests {
    /// n candidates in `categories`, scores descending, random 8-d embeddings.
    func candidates(_ categories: [Int32], seed: UInt64 = 1) -> (scores: [Float], embeddings: [Float]) {
        var r = RandomStream(seed: seed)
        let scores = categories.indices.map { Float(categories.count - $0) }
        return (scores, (0..<categories.count * 8).map { _ in Float(r.normal()) })
    }

    @Test("λ = 1 with a loose cap keeps the ranked order")
    func relevanceOnly() {
        let cats: [Int32] = [0, 1, 2, 3, 4, 5, 6, 7]
        let (s, e) = candidates(cats)
        let order = DiversityRerank(lambda: 1, window: 4, maxPerCategory: 4).order(
            scores: s, categories: cats, embeddings: e, d: 8, k: 8)
        #expect(order == Array(0..<8))
    }

    @Test("the sliding-window category cap holds whenever the candidates allow it")
    func categoryCap() {
        // The 10 best are all category 0; 10 more of category 1, 10 of category 2.
        let cats =
            [Int32](repeating: 0, count: 10) + [Int32](repeating: 1, count: 10) + [Int32](repeating: 2, count: 10)
        let (s, e) = candidates(cats)
        let rerank = DiversityRerank(lambda: 1, window: 4, maxPerCategory: 2)
        let order = rerank.order(scores: s, categories: cats, embeddings: e, d: 8, k: 15)
        #expect(order.count == 15 && Set(order).count == 15)
        #expect(DiversityRerank.maxCategoryRun(order.map { cats[$0] }, window: 4) <= 2)
        #expect(DiversityRerank.maxCategoryRun(Array(cats.prefix(15)), window: 4) == 4)  // the cap did something
        // Within what the cap allows, relevance order is kept: the first two are the two best.
        #expect(order.prefix(2) == [0, 1])
    }

    @Test("MMR puts an orthogonal pin before a near-duplicate of the top pin")
    func nearDuplicates() {
        let e: [Float] = [1, 0, 0, 0, 0.999, 0.04, 0, 0, 0, 1, 0, 0]  // a, a' ≈ a, b ⟂ a
        let order = DiversityRerank(lambda: 0.5, window: 4, maxPerCategory: 4).order(
            scores: [1.0, 0.99, 0.9], categories: [-1, -1, -1], embeddings: e, d: 4, k: 3)
        #expect(order == [0, 2, 1])
        let plain = DiversityRerank(lambda: 1, window: 4, maxPerCategory: 4).order(
            scores: [1.0, 0.99, 0.9], categories: [-1, -1, -1], embeddings: e, d: 4, k: 3)
        #expect(plain == [0, 1, 2])
    }

    @Test("when every candidate is capped the cap is relaxed: the feed is never short")
    func relaxation() {
        let cats = [Int32](repeating: 5, count: 6)
        let (s, e) = candidates(cats)
        let order = DiversityRerank(lambda: 1, window: 8, maxPerCategory: 1).order(
            scores: s, categories: cats, embeddings: e, d: 8, k: 6)
        #expect(order == Array(0..<6))
        #expect(DiversityRerank(lambda: 0.5).order(scores: [], categories: [], embeddings: [], d: 8, k: 3).isEmpty)
    }
}

@Suite("Multi-interest interleave")
struct InterleaveTests {
    @Test("clustered interests (PinnerSage): one medoid per planted group, the largest first, unknown pins left out")
    func clusteredInterests() {
        // Three near (1, 0), two near (0, 1), one unknown (zeros), most recent last.
        let e: [Float] = [1, 0.1, 0.9, 0, 0, 1, 1, -0.1, 0, 0, 0.1, 0.9]
        let top = ContentChannel.clusteredInterests(embeddings: e, d: 2, count: 3)
        #expect(top.engagement == [3, 2], "two groups found: \(top.engagement)")
        #expect(Array(top.queries[0..<2]) == [0.9, 0], "the medoid of the larger group: \(top.queries)")
        #expect(Array(top.queries[2..<4]) == [0, 1] || Array(top.queries[2..<4]) == [0.1, 0.9])
        #expect(ContentChannel.clusteredInterests(embeddings: [0, 0], d: 2, count: 3).queries.isEmpty)
        #expect(ContentChannel.clusteredInterests(embeddings: e, d: 2, count: 1).engagement == [5])
    }

    @Test("slots follow engagement (largest remainder), round-robin, nearest first; seen pins and duplicates left out")
    func quotasAndExclusion() {
        let a: [(pin: Int64, distance: Float)] = [(1, 0.1), (2, 0.2), (3, 0.3), (4, 0.4), (5, 0.5)]
        let b: [(pin: Int64, distance: Float)] = [(2, 0.15), (10, 0.2), (11, 0.3), (12, 0.4)]
        let out = ContentChannel.interleave(lists: [a, b], engagement: [3, 1], k: 4, exclude: [1])
        // Quotas 3 and 1; pin 1 is seen, pin 2 taken by list 0 first, so list 1 skips it.
        #expect(out.map(\.pin) == [2, 10, 3, 4])
        #expect(out.map(\.list) == [0, 1, 0, 0])
        // Short lists: the feed is as long as the candidates allow.
        #expect(ContentChannel.interleave(lists: [[(7, 0)]], engagement: [1], k: 3, exclude: []).map(\.pin) == [7])
    }
}
