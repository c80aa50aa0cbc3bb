/// The rows of a global batch that one rank processes.
public enum BatchSharding {
    /// Rank `rank`'s contiguous slice of a global batch of `globalBatch` examples over `size`
    /// ranks (sizes differ by at most one). The global batch does not depend on the rank count,
    /// so 1, 2 or 4 ranks compute the same gradient.
    public static func slice(globalBatch: Int, rank: Int, size: Int) -> Range<Int> {
        (rank * globalBatch / size)..<((rank + 1) * globalBatch / size)
    }
}
