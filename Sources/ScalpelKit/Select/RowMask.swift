/// Magnitude pruning inside each row: in every row of `rowLength` consecutive elements, the `k`
/// smallest magnitudes become zero (ties by position within the row).
public enum RowMask {
    /// Elements per parallel chunk, rounded to whole rows.
    static let chunk = 1 << 16

    /// Writes `source` into `out` with the `k` smallest magnitudes of each row zeroed.
    ///
    /// Each row's threshold comes from a radix selection (`RadixSelect`) on a copy of its keys; rows
    /// run in parallel over fixed groups of rows.
    /// - Precondition: `rowLength > 0` divides `source.count`; `0 <= k <= rowLength`; `out` holds
    ///   `source.count` elements of `source.dtype`.
    public static func apply(_ source: MagnitudeSource, rowLength: Int, k: Int, into out: UnsafeMutableRawBufferPointer) -> PruneCounts {
        let n = source.count
        guard n > 0 else { return PruneCounts() }
        precondition(rowLength > 0 && n % rowLength == 0 && (0...rowLength).contains(k), "bad row pruning request")
        precondition(out.count >= n * source.width, "output buffer too small")
        let rowsPerChunk = max(1, chunk / rowLength)
        let rows = n / rowLength
        let chunks = (rows + rowsPerChunk - 1) / rowsPerChunk
        var parts = [PruneCounts](repeating: PruneCounts(), count: chunks)
        let dst = UncheckedBox(out.baseAddress!)
        parts.withUnsafeMutableBufferPointer { p in
            let sink = UncheckedBox(p)
            parallelChunks(count: rows, chunk: rowsPerChunk) { rs in
                let keys = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: rowLength)
                defer { keys.deallocate() }
                var counts = PruneCounts()
                for row in rs {
                    let range = (row * rowLength)..<((row + 1) * rowLength)
                    let threshold = k == 0 ? .nothing : smallest(k, of: source, range, scratch: keys)
                    counts.add(ThresholdMask.apply(source, range, threshold, into: dst.value))
                }
                sink.value[rs.lowerBound / rowsPerChunk] = counts
            }
        }
        var total = PruneCounts()
        for p in parts { total.add(p) }
        return total
    }

    /// The threshold removing the `k` smallest magnitudes of `range` (`scratch` holds `range.count`).
    static func smallest(_ k: Int, of source: MagnitudeSource, _ range: Range<Int>, scratch: UnsafeMutableBufferPointer<UInt32>) -> MagnitudeThreshold {
        let out = UnsafeMutableRawPointer(scratch.baseAddress!)
        source.forEachBlock(in: range) { b, bits in
            let at = b.lowerBound - range.lowerBound
            let full = b.count & ~15
            for i in stride(from: 0, to: full, by: 16) {
                out.storeBytes(of: MagnitudeKey.of(bits: bits.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<UInt32>.self)),
                               toByteOffset: 4 * (at + i), as: SIMD16<UInt32>.self)
            }
            for i in full..<b.count {
                scratch[at + i] = MagnitudeKey.of(bits: bits.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
            }
        }
        let (key, below) = RadixSelect.kth(UnsafeMutableBufferPointer(rebasing: scratch[0..<range.count]), rank: k - 1)
        return MagnitudeThreshold(key: key, ties: k - below)
    }
}
