/// N:M semi-structured pruning: in every group of M consecutive elements, the N largest magnitudes
/// are kept and the other M - N become zero (2:4 is what sparse tensor cores accelerate).
///
/// Within a group, ties go by position like everywhere else: of two equal magnitudes the earlier one is
/// removed first. Element i of a group is removed when fewer than M - N group members come before it in
/// (magnitude, position) order. That is O(M) work per element, so M is limited to `maxGroup`; it is done
/// 16 groups at a time, one group per SIMD lane.
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
        let span = max(1, chunk / group) * group
        let block = max(1, MagnitudeSource.block / group) * group
        var parts = [PruneCounts](repeating: PruneCounts(), count: (n + span - 1) / span)
        let dst = UncheckedBox(out.baseAddress!)
        parts.withUnsafeMutableBufferPointer { p in
            let sink = UncheckedBox(p)
            parallelChunks(count: n, chunk: span) { r in
                var counts = PruneCounts(elements: r.count)
                withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 32 * group) { lanes in
                    withUnsafeTemporaryAllocation(of: UInt64.self, capacity: group) { order in
                        var lo = r.lowerBound
                        while lo < r.upperBound {
                            let b = lo..<min(r.upperBound, lo + block)
                            source.withBits(b) { bits in
                                let wide = b.count / (16 * group) * (16 * group)
                                for g in stride(from: 0, to: wide, by: 16 * group) {
                                    pruneSixteenGroups(source, at: b.lowerBound + g, bits: bits + 4 * g, remove: group - keep,
                                                       lanes: lanes, into: dst.value, counts: &counts)
                                }
                                for g in stride(from: wide, to: b.count, by: group) {
                                    pruneGroup(source, at: b.lowerBound + g, bits: bits + 4 * g, remove: group - keep,
                                               order: order, into: dst.value, counts: &counts)
                                }
                            }
                            lo = b.upperBound
                        }
                    }
                }
                sink.value[r.lowerBound / span] = counts
            }
        }
        var total = PruneCounts()
        for p in parts { total.add(p) }
        return total
    }

    /// Prunes the 16 consecutive groups starting at element `start` (their f32 bit patterns at `bits`).
    ///
    /// `lanes` (32 * group words) is scratch: the keys transposed so that vector j holds member j of
    /// each group (lane g = group g), then the keep masks in the same layout. Reads and writes of the
    /// tensor stay in element order.
    @inline(__always)
    static func pruneSixteenGroups(_ source: MagnitudeSource, at start: Int, bits: UnsafeRawPointer, remove: Int,
                                   lanes: UnsafeMutableBufferPointer<UInt32>, into dst: UnsafeMutableRawPointer,
                                   counts: inout PruneCounts) {
        let group = lanes.count / 32
        let keys = lanes.baseAddress!, masks = lanes.baseAddress! + 16 &* group
        for g in 0..<16 {
            for j in 0..<group {
                keys[j &* 16 &+ g] = bits.loadUnaligned(fromByteOffset: 4 &* (g &* group &+ j), as: UInt32.self)
            }
        }
        let r = SIMD16<UInt32>(repeating: UInt32(remove)), zero = SIMD16<UInt32>()
        let infinity = SIMD16<UInt32>(repeating: MagnitudeKey.infinity)
        var squares = SIMD16<Float>(), removedSquares = SIMD16<Float>()
        var zeroed = SIMD16<UInt32>(), zeros = SIMD16<UInt32>()
        func vector(_ p: UnsafeMutablePointer<UInt32>, _ j: Int) -> SIMD16<UInt32> {
            UnsafeRawPointer(p + j &* 16).loadUnaligned(as: SIMD16<UInt32>.self)
        }
        for j in 0..<group { UnsafeMutableRawPointer(keys + j &* 16).storeBytes(of: MagnitudeKey.of(bits: vector(keys, j)), as: SIMD16<UInt32>.self) }
        for i in 0..<group {
            let ki = vector(keys, i)
            // Members before i in (magnitude, position) order: earlier ones with key <= ki, later
            // ones with key < ki.
            var before = SIMD16<UInt32>()
            for j in 0..<i { before &+= 1 &- MagnitudeKey.below(ki, vector(keys, j)) }
            for j in (i + 1)..<group { before &+= MagnitudeKey.below(vector(keys, j), ki) }
            let removed = MagnitudeKey.below(before, r)
            let keep = removed &- 1
            UnsafeMutableRawPointer(masks + i &* 16).storeBytes(of: keep, as: SIMD16<UInt32>.self)
            zeroed &+= removed
            zeros &+= removed | MagnitudeKey.equal(ki, zero)
            let f = unsafeBitCast(ki & MagnitudeKey.allOnes(MagnitudeKey.below(ki, infinity)), to: SIMD16<Float>.self)
            let sq = f * f
            squares += sq
            removedSquares += unsafeBitCast(unsafeBitCast(sq, to: SIMD16<UInt32>.self) & ~keep, to: SIMD16<Float>.self)
        }
        let width = source.width
        let src = source.bytes.baseAddress! + width &* start
        let out = dst + width &* start
        for g in 0..<16 {
            for j in 0..<group {
                let e = g &* group &+ j
                let keep = masks[j &* 16 &+ g]
                switch width {
                case 4: out.storeBytes(of: src.loadUnaligned(fromByteOffset: 4 &* e, as: UInt32.self) & keep, toByteOffset: 4 &* e, as: UInt32.self)
                case 2: out.storeBytes(of: src.loadUnaligned(fromByteOffset: 2 &* e, as: UInt16.self) & UInt16(truncatingIfNeeded: keep), toByteOffset: 2 &* e, as: UInt16.self)
                default: out.storeBytes(of: src.loadUnaligned(fromByteOffset: 8 &* e, as: UInt64.self) & (UInt64(keep) | UInt64(keep) << 32), toByteOffset: 8 &* e, as: UInt64.self)
                }
            }
        }
        counts.sumSquares += Double(squares.sum())
        counts.removedSumSquares += Double(removedSquares.sum())
        counts.zeroed += Int(zeroed.wrappedSum())
        counts.zerosAfter += Int(zeros.wrappedSum())
    }

    /// Prunes the group starting at element `start` (its f32 bit patterns at `bits`).
    @inline(__always)
    static func pruneGroup(_ source: MagnitudeSource, at start: Int, bits: UnsafeRawPointer, remove: Int,
                           order: UnsafeMutableBufferPointer<UInt64>, into dst: UnsafeMutableRawPointer, counts: inout PruneCounts) {
        let group = order.count
        // (key, position) packed into one integer: distinct within the group, ordered as the tie rule.
        for j in 0..<group {
            order[j] = UInt64(MagnitudeKey.of(bits: bits.loadUnaligned(fromByteOffset: 4 * j, as: UInt32.self))) << 8 | UInt64(j)
        }
        let width = source.width
        let src = source.bytes.baseAddress! + width * start
        let out = dst + width * start
        for i in 0..<group {
            let oi = order[i]
            // Packed keys are below 2^40: the top bit of a difference is the comparison.
            var before: UInt64 = 0
            for j in 0..<group { before &+= (order[j] &- oi) >> 63 }
            let removed = (before &- UInt64(remove)) >> 63
            let key = UInt32(truncatingIfNeeded: oi >> 8)
            let m = Double(MagnitudeKey.magnitude(key))
            let sq = key < MagnitudeKey.infinity ? m * m : 0
            counts.sumSquares += sq
            counts.removedSumSquares += sq * Double(removed)
            counts.zeroed &+= Int(removed)
            counts.zerosAfter &+= Int(removed | (key == 0 ? 1 : 0))
            let keepMask = removed &- 1
            switch width {
            case 4: out.storeBytes(of: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self) & UInt32(truncatingIfNeeded: keepMask), toByteOffset: 4 * i, as: UInt32.self)
            case 2: out.storeBytes(of: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self) & UInt16(truncatingIfNeeded: keepMask), toByteOffset: 2 * i, as: UInt16.self)
            default: out.storeBytes(of: src.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self) & keepMask, toByteOffset: 8 * i, as: UInt64.self)
            }
        }
    }
}
