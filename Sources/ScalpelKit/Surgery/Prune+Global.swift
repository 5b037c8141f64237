extension Prune {
    /// The per-tensor thresholds of one global selection over the tensors `chosen` (indices into
    /// `input.tensors`), which together remove exactly `amount.count(of: total elements)` elements.
    ///
    /// Streaming, never holding more than one tensor: a pass counting the high 16 bits of every key
    /// finds the bucket of the k-th smallest magnitude; a second pass counting the low 16 bits inside
    /// that bucket gives the exact threshold. Ties at the threshold are removed in (tensor order,
    /// position) order: when only some of them go, a third pass counts them in the tensors that have
    /// keys in the bucket, in order, until the quota is met. Each tensor's pages are released after
    /// each pass (block-quantized tensors are dequantized for each pass).
    static func globalThresholds(_ input: Checkpoint, _ chosen: [Int], _ amount: Amount) throws -> [MagnitudeThreshold] {
        let total = chosen.reduce(0) { $0 + input.tensors[$1].elementCount }
        let k = amount.count(of: total)
        guard k > 0 else { return Array(repeating: .nothing, count: chosen.count) }

        func withSource<R>(_ slot: Int, _ body: (MagnitudeSource) -> R) throws -> R {
            let info = input.tensors[chosen[slot]]
            defer { input.release(info.name) }
            return try withMagnitudes(input.view(at: chosen[slot]), file: input.path, body)
        }

        var high = [Int](repeating: 0, count: KeyHistogram.buckets)
        for slot in chosen.indices { try withSource(slot) { KeyHistogram.addHigh($0, into: &high) } }
        let (bucket, belowHigh) = KeyHistogram.locate(high, rank: k - 1)

        var low = [Int](repeating: 0, count: KeyHistogram.buckets)
        var inBucket = [Int](repeating: 0, count: chosen.count)
        for slot in chosen.indices {
            inBucket[slot] = try withSource(slot) { KeyHistogram.addLow($0, high: bucket, into: &low) }
        }
        let (digit, belowLow) = KeyHistogram.locate(low, rank: k - 1 - belowHigh)
        let key = UInt32(bucket << 16 | digit)
        let ties = k - belowHigh - belowLow

        if ties == low[digit] { return Array(repeating: MagnitudeThreshold(key: key, ties: .max), count: chosen.count) }
        var thresholds = Array(repeating: MagnitudeThreshold(key: key, ties: 0), count: chosen.count)
        var left = ties
        for slot in chosen.indices where left > 0 && inBucket[slot] > 0 {
            let equal = try withSource(slot) { KeyHistogram.countEqual($0, key: key) }
            thresholds[slot].ties = min(equal, left)
            left -= thresholds[slot].ties
        }
        return thresholds
    }
}
