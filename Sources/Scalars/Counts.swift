/// Exclusive prefix sum: `[3, 1, 2]` → `[0, 3, 4]` (displacements of per-rank counts).
public func exclusiveSum(_ counts: [Int]) -> [Int] {
    var out = [Int](repeating: 0, count: counts.count)
    var acc = 0
    for (i, c) in counts.enumerated() {
        out[i] = acc
        acc += c
    }
    return out
}
