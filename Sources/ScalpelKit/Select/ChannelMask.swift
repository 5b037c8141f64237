/// Structured pruning of whole output channels: the `k` rows with the smallest L2 norm become zero
/// (shapes are unchanged), like `torch.nn.utils.prune.ln_structured(n=2, dim=0)`.
///
/// A row's norm is taken over the stored values' magnitudes (as f32), summing squares in f64 in
/// element order. A row holding NaN has norm NaN, which counts as the largest (pruned last); ties go by
/// row index, the lower row first.
public enum ChannelMask {
    /// Elements per parallel chunk, rounded to whole rows.
    static let chunk = 1 << 16

    /// Writes `source` into `out` with the `k` rows of smallest norm zeroed.
    /// - Precondition: `rowLength > 0` divides `source.count`; `0 <= k <= rows`; `out` holds
    ///   `source.count` elements of `source.dtype`.
    public static func apply(_ source: MagnitudeSource, rowLength: Int, k: Int, into out: UnsafeMutableRawBufferPointer) -> PruneCounts {
        let n = source.count
        guard n > 0 else { return PruneCounts() }
        let rows = n / rowLength
        precondition(rowLength > 0 && n % rowLength == 0 && (0...rows).contains(k), "bad channel pruning request")
        precondition(out.count >= n * source.width, "output buffer too small")
        let rowsPerChunk = max(1, chunk / rowLength)
        var norms = [RowNorm](repeating: RowNorm(), count: rows)
        norms.withUnsafeMutableBufferPointer { p in
            let sink = UncheckedBox(p)
            parallelChunks(count: rows, chunk: rowsPerChunk) { rs in
                for row in rs { sink.value[row] = RowNorm(source, (row * rowLength)..<((row + 1) * rowLength)) }
            }
        }
        var removed = [Bool](repeating: false, count: rows)
        if k > 0 {
            var keys = norms.map(\.key)
            let (key, below) = keys.withUnsafeMutableBufferPointer { RadixSelect.kth($0, rank: k - 1) }
            var ties = k - below
            for row in 0..<rows {
                if norms[row].key < key {
                    removed[row] = true
                } else if norms[row].key == key && ties > 0 {
                    removed[row] = true
                    ties -= 1
                }
            }
        }
        let dst = UncheckedBox(out.baseAddress!)
        let src = UncheckedBox(source.bytes.baseAddress!)
        let bytesPerRow = rowLength * source.width
        let flags = UncheckedBox(removed)
        parallelChunks(count: rows, chunk: rowsPerChunk) { rs in
            for row in rs {
                let d = dst.value + row * bytesPerRow
                if flags.value[row] {
                    d.initializeMemory(as: UInt8.self, repeating: 0, count: bytesPerRow)
                } else {
                    d.copyMemory(from: src.value + row * bytesPerRow, byteCount: bytesPerRow)
                }
            }
        }
        var counts = PruneCounts(elements: n)
        for row in 0..<rows {
            counts.sumSquares += norms[row].finiteSquares
            if removed[row] {
                counts.zeroed += rowLength
                counts.zerosAfter += rowLength
                counts.removedSumSquares += norms[row].finiteSquares
            } else {
                counts.zerosAfter += norms[row].zeros
            }
        }
        return counts
    }

    /// One row's squared norm as a sortable key, its finite sum of squares and its zero count.
    struct RowNorm {
        /// Bit pattern of the f64 sum of squares (+Inf with an infinity, one NaN pattern with a NaN).
        var key: UInt64 = 0
        var finiteSquares = 0.0
        var zeros = 0

        init() {}

        init(_ source: MagnitudeSource, _ range: Range<Int>) {
            var all = 0.0, finite = 0.0
            source.forEachBlock(in: range) { b, bits in
                for i in 0..<b.count {
                    let k = MagnitudeKey.of(bits: bits.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
                    let m = Double(MagnitudeKey.magnitude(k))
                    all += m * m
                    if k < MagnitudeKey.infinity { finite += m * m }
                    if k == 0 { zeros += 1 }
                }
            }
            key = all.isNaN ? Double.nan.bitPattern : all.bitPattern
            finiteSquares = finite
        }
    }
}
