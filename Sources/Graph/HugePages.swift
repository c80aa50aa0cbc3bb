#if canImport(Glibc)
    import Glibc
#endif

/// Transparent huge pages for the large, randomly probed node tables of the walks: with 4 KiB
/// pages nearly every probe would also miss the TLB.
enum HugePages {
    /// Asks the kernel to back the whole 2 MiB pages inside `bytes` at `pointer` with huge pages
    /// when they are first touched (`MADV_HUGEPAGE`; the machine's THP mode is often `madvise`).
    /// Advice only: failures are ignored. (Collapsing already-touched arrays with `MADV_COLLAPSE`
    /// was measured slower than it saves for the neighbour arrays.)
    static func advise(_ pointer: UnsafeRawPointer?, bytes: Int) {
        #if os(Linux)
            guard let pointer, bytes >= 4 << 20 else { return }
            let huge = 2 << 20
            let lo = (Int(bitPattern: pointer) + huge - 1) & ~(huge - 1)
            let hi = (Int(bitPattern: pointer) + bytes) & ~(huge - 1)
            guard hi > lo, let start = UnsafeMutableRawPointer(bitPattern: lo) else { return }
            _ = madvise(start, hi - lo, 14)  // MADV_HUGEPAGE
        #endif
    }
}
