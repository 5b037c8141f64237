/// Per-tensor magnitude pruning (`--scope tensor`): exactly the `k` smallest magnitudes become zero,
/// ties by position, reading the data once in the usual case.
///
/// A fixed sample of the keys (1,024 runs of 64 consecutive elements spread over the tensor) brackets
/// the k-th smallest between two keys `low...high`. One fused
/// pass then writes the output with every key below `low` zeroed, counts them, and notes the positions
/// and keys inside the bracket (typically 1-2% of the tensor). If the k-th smallest is indeed among
/// those, its exact value comes from a radix selection over them alone and they are fixed up in element
/// order. Otherwise (an unlucky sample, or heavily tied or clustered data that puts too many keys in
/// the bracket) the output is rewritten from scratch by the two-histogram path
/// (`MagnitudeThreshold.smallest` + `ThresholdMask.apply`). Both paths give the same bits; the sample
/// is fixed, so the path taken never depends on the thread count.
public enum SmallestMask {
    /// Runs of consecutive keys in the sample, and their length.
    static let runs = 1024, runLength = 64
    /// Smaller tensors go straight to the histogram path.
    static let minimumCount = 1 << 18
    /// Largest share of the tensor the bracket may hold (judged on the sample).
    static let maximumShare = 1.0 / 16

    /// Writes `source` into `out` with exactly its `k` smallest magnitudes zeroed (ties by position).
    /// - Precondition: `0 <= k <= source.count`; `out` holds `source.count` elements of its dtype.
    public static func apply(_ k: Int, of source: MagnitudeSource, into out: UnsafeMutableRawBufferPointer) -> PruneCounts {
        precondition(k >= 0 && k <= source.count, "cannot select \(k) of \(source.count) elements")
        if k > 0, source.count >= minimumCount, let (keys, share) = bracket(k, of: source),
           let counts = apply(k, of: source, bracket: keys, share: share, into: out) {
            return counts
        }
        return ThresholdMask.apply(source, .smallest(k, of: source), into: out)
    }

    /// Keys that bracket the k-th smallest with high probability (about 4 standard deviations of the
    /// sample rank on each side), and the share of the sample inside them; nil when that share is too
    /// large.
    static func bracket(_ k: Int, of source: MagnitudeSource) -> (ClosedRange<UInt32>, Double)? {
        let n = source.count, s = runs * runLength
        // Run i starts at a fixed pseudo-random offset inside the i-th of `runs` equal strata.
        var sample = [UInt32](repeating: 0, count: s)
        for i in 0..<runs {
            let start = i * n / runs, room = (i + 1) * n / runs - start - runLength
            let first = start + Int((UInt64(i) &* 0x9E37_79B9_7F4A_7C15) >> 33) % max(1, room)
            for j in 0..<runLength { sample[i * runLength + j] = source.key(at: first + j) }
        }
        let q = Double(k - 1) / Double(n)
        let rank = q * Double(s), spread = 4 * (Double(s) * q * (1 - q)).squareRoot() + 8
        let lowRank = Int(rank - spread), highRank = Int(rank + spread) + 1
        func kth(_ r: Int) -> UInt32 {
            var scratch = sample
            return scratch.withUnsafeMutableBufferPointer { RadixSelect.kth($0, rank: r).key }
        }
        let low = lowRank <= 0 ? 0 : kth(lowRank)
        let high = highRank >= s - 1 ? MagnitudeKey.nan : kth(highRank)
        sample.removeAll { $0 < low || $0 > high }
        let share = Double(sample.count) / Double(s)
        return share <= maximumShare ? (low...high, share) : nil
    }

    /// The one-pass path; nil (with `out` partly written) when the bracket missed or overflowed.
    static func apply(_ k: Int, of source: MagnitudeSource, bracket: ClosedRange<UInt32>, share: Double, into out: UnsafeMutableRawBufferPointer) -> PruneCounts? {
        let n = source.count
        let chunk = ThresholdMask.chunk
        let chunks = (n + chunk - 1) / chunk
        // Room per chunk: 8 times the expected count, plus slack.
        let cap = min(chunk, Int(8 * share * Double(chunk)) + 1024)
        var passes = [ThresholdMask.Pass](repeating: .init(), count: chunks)
        var found = [[UInt64]](repeating: [], count: chunks)
        let dst = UncheckedBox(out.baseAddress!)
        passes.withUnsafeMutableBufferPointer { p in
            found.withUnsafeMutableBufferPointer { f in
                let sink = UncheckedBox((p, f))
                parallelChunks(count: n, chunk: chunk) { r in
                    let c = r.lowerBound / chunk
                    sink.value.1[c].reserveCapacity(cap)
                    sink.value.0[c] = ThresholdMask.fused(source, r, key: bracket.lowerBound, into: dst.value,
                                                          collect: bracket, cap: cap, found: &sink.value.1[c])
                }
            }
        }
        var total = ThresholdMask.Pass()
        for p in passes { total.add(p) }
        let below = total.below
        let bracketed = found.reduce(0) { $0 + $1.count }
        guard !total.overflow, below <= k - 1, k - 1 < below + bracketed else { return nil }
        // The exact threshold among the bracketed keys, then the fix-up in element order.
        var keys = [UInt32]()
        keys.reserveCapacity(bracketed)
        for f in found { for e in f { keys.append(UInt32(truncatingIfNeeded: e)) } }
        let (key, belowInBracket) = keys.withUnsafeMutableBufferPointer { RadixSelect.kth($0, rank: k - 1 - below) }
        var ties = k - below - belowInBracket
        var tiesRemoved = 0, equal = 0
        let width = source.width
        for (c, f) in found.enumerated() {
            for e in f {
                let m = UInt32(truncatingIfNeeded: e)
                if m == key { equal += 1 }
                guard m < key || (m == key && ties > 0) else { continue }
                if m == key {
                    ties -= 1
                    tiesRemoved += 1
                }
                let v = Double(MagnitudeKey.magnitude(m))
                if m < MagnitudeKey.infinity { total.removedSumSquares += v * v }
                (dst.value + width * (c * chunk + Int(e >> 32))).initializeMemory(as: UInt8.self, repeating: 0, count: width)
            }
        }
        return PruneCounts(elements: n, zeroed: k, zerosAfter: k + (key == 0 ? equal - tiesRemoved : 0),
                           sumSquares: total.sumSquares, removedSumSquares: total.removedSumSquares)
    }
}
