import Collective
import Evaluation
import Ranking

extension RankerModel where T == Float {
    /// Collective: the normalised entropy of the ESU (SIM) attention over this rank's rows of
    /// `data` (`RankerTrainer.localRows`), through the per-slot path; nil for a model without
    /// ESU (the same answer on every rank). `queryScale` multiplies the ESU's query projection
    /// during the pass (restored after): 0 makes every event score the same, the attention of a
    /// model that no longer uses the sequence; above 1 it sharpens the attention.
    func esuEntropy(_ data: CTRData, queryScale: Float = 1, comm: Communicator, batch: Int = 2048) throws
        -> AttentionEntropy?
    {
        guard let esu else { return nil }
        let shared = sharedInference, query = esu.store.value(esu.wq), width = esu.wq.count
        let saved = Array(UnsafeBufferPointer(start: query, count: width))
        for i in 0..<width { query[i] *= queryScale }
        sharedInference = false
        defer {
            sharedInference = shared
            query.update(from: saved, count: width)
        }
        var sums = [0.0, 0.0]
        let mine = RankerTrainer.localRows(data, comm: comm)
        var s = mine.lowerBound
        while s < mine.upperBound {
            let e = min(s + batch, mine.upperBound)
            let b: RankerBatch<Float> = data.batch(s..<e, firstIndex: s, config: config, table: table)
            _ = logits(b, training: false, step: 0)
            let (h, n) = AttentionEntropy.sums(
                weights: esu.lastAttention, mask: b.long.mask, heads: esu.heads, length: config.simK)
            sums[0] += h
            sums[1] += n
            s = e
        }
        try comm.allreduce(&sums)
        return AttentionEntropy(mean: sums[0] / max(sums[1], 1), count: Int(sums[1]))
    }
}
