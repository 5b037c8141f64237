/// N:M semi-structured pruning: in every group of M consecutive elements, the N largest magnitudes
/// are kept and the other M - N become zero (2:4 is what sparse tensor cores accelerate).
///
/// Within a group, ties go by position like everywhere else: of two equal magnitudes the earlier one is
/// removed first. Element i of a group is removed when fewer than M - N group members come before it in
/// (magnitude, position) order. That is O(M) work per element, so M is limited to `maxGroup`.
public enum PatternMask {
    /// The largest group size M accepted.
    public static let maxGroup = 64
    /// Elements per parallel chunk (rounded to whole groups).
    static let chunk = 1 << 16

    /// Writes `source` into `out` keeping the `keep` largest magnitudes of every `group` consecutive
    /// elements.
    /// - Precondition: `0 <= keep <= group <= maxGroup`, `group` divides `source.count` (groups never
    ///   straddle rows when it divides the row length); `out` holds `source.count` elements.
    public static func apply(_ source: MagnitudeSource, keep: Int, group: Int, into out: UnsafeMutableRawBufferPointer) -> PruneCounts {
        let n = source.count
        guard n > 0 else { return PruneCounts() }
        precondition(group > 0 && group <= maxGroup && (0...group).contains(keep) && n % group == 0, "bad N:M request")
        precondition(out.count >= n * source.width, "output buffer too small")
        let remove = group - keep
        let span = max(1, chunk / group) * group
        let block = max(1, MagnitudeSource.block / group) * group
        let chunks = (n + span - 1) / span
        var parts = [PruneCounts](repeating: PruneCounts(), count: chunks)
        let dst = UncheckedBox(out.baseAddress!)
        let width = source.width
        let src = source.bytes.baseAddress!
        parts.withUnsafeMutableBufferPointer { p in
            let sink = UncheckedBox(p)
            parallelChunks(count: n, chunk: span) { r in
                var counts = PruneCounts(elements: r.count)
                withUnsafeTemporaryAllocation(of: UInt32.self, capacity: group) { keys in
                    var lo = r.lowerBound
                    while lo < r.upperBound {
                        let b = lo..<min(r.upperBound, lo + block)
                        source.withBits(b) { bits in
                            for g in stride(from: 0, to: b.count, by: group) {
                                for j in 0..<group {
                                    keys[j] = MagnitudeKey.of(bits: bits.loadUnaligned(fromByteOffset: 4 * (g + j), as: UInt32.self))
                                }
                                for i in 0..<group {
                                    let ki = keys[i]
                                    var before = 0
                                    for j in 0..<group where keys[j] < ki || (keys[j] == ki && j < i) { before += 1 }
                                    let e = b.lowerBound + g + i
                                    let sq = ki < MagnitudeKey.infinity ? Double(MagnitudeKey.magnitude(ki)) * Double(MagnitudeKey.magnitude(ki)) : 0
                                    counts.sumSquares += sq
                                    if before < remove {
                                        (dst.value + width * e).initializeMemory(as: UInt8.self, repeating: 0, count: width)
                                        counts.zeroed += 1
                                        counts.zerosAfter += 1
                                        counts.removedSumSquares += sq
                                    } else {
                                        (dst.value + width * e).copyMemory(from: src + width * e, byteCount: width)
                                        if ki == 0 { counts.zerosAfter += 1 }
                                    }
                                }
                            }
                        }
                        lo = b.upperBound
                    }
                }
                sink.value[r.lowerBound / span] = counts
            }
        }
        var total = PruneCounts()
        for p in parts { total.add(p) }
        return total
    }
}
