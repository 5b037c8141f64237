/// Writes a tensor with the elements a `MagnitudeThreshold` removes set to zero, in one fused pass
/// that also counts and sums what it removes.
///
/// The output has the input's dtype and byte layout; removed elements become +0 (all bits zero, which
/// compresses best; an existing -0 that is kept stays -0). Everything else is copied bit for bit.
public enum ThresholdMask {
    /// Elements per parallel chunk (fixed: results never depend on the thread count).
    static let chunk = 1 << 16

    /// Writes `source` into `out` with the elements `threshold` removes set to zero, in parallel over
    /// fixed chunks. The ties to remove are handed to the chunks in element order, so exactly the first
    /// `threshold.ties` elements equal to the threshold go, whatever the thread count.
    /// - Precondition: `out` holds `source.count` elements of `source.dtype`; the source has at least
    ///   `threshold.ties` elements equal to the threshold unless `ties` is `Int.max` (remove them all).
    public static func apply(_ source: MagnitudeSource, _ threshold: MagnitudeThreshold, into out: UnsafeMutableRawBufferPointer) -> PruneCounts {
        let n = source.count
        guard n > 0 else { return PruneCounts() }
        precondition(out.count >= n * source.width, "output buffer too small")
        let chunks = (n + chunk - 1) / chunk
        var passes = [Pass](repeating: Pass(), count: chunks)
        let dst = UncheckedBox(out.baseAddress!)
        passes.withUnsafeMutableBufferPointer { p in
            let sink = UncheckedBox(p)
            parallelChunks(count: n, chunk: chunk) { r in
                var none: [UInt64] = []
                sink.value[r.lowerBound / chunk] = fused(source, r, key: threshold.key, into: dst.value, found: &none)
            }
        }
        var quotas = [Int](repeating: 0, count: chunks)
        var left = threshold.ties
        for c in 0..<chunks where left > 0 {
            quotas[c] = min(left, passes[c].equal)
            left -= quotas[c]
        }
        precondition(threshold.ties == .max || left == 0, "fewer elements equal to the threshold than ties to remove")
        let q = UncheckedBox(quotas)
        parallelChunks(count: chunks, chunk: 16) { cs in
            for c in cs where q.value[c] > 0 {
                _ = zeroTies(source, (c * chunk)..<min(n, (c + 1) * chunk), key: threshold.key, count: q.value[c], into: dst.value)
            }
        }
        var total = Pass()
        for p in passes { total.add(p) }
        return total.counts(elements: n, key: threshold.key, tiesRemoved: quotas.reduce(0, +))
    }

    /// `apply` for one range of the source on the calling thread (used row by row).
    static func apply(_ source: MagnitudeSource, _ range: Range<Int>, _ threshold: MagnitudeThreshold, into dst: UnsafeMutableRawPointer) -> PruneCounts {
        var none: [UInt64] = []
        let pass = fused(source, range, key: threshold.key, into: dst, found: &none)
        let wanted = min(threshold.ties, pass.equal)
        precondition(threshold.ties == .max || wanted == threshold.ties, "fewer elements equal to the threshold than ties to remove")
        let removed = wanted > 0 ? zeroTies(source, range, key: threshold.key, count: wanted, into: dst) : 0
        return pass.counts(elements: range.count, key: threshold.key, tiesRemoved: removed)
    }

    /// Sums of one fused pass.
    struct Pass {
        var below = 0
        var equal = 0
        var sumSquares = 0.0
        var removedSumSquares = 0.0
        /// More elements were in the collected key range than the cap allowed.
        var overflow = false

        mutating func add(_ o: Pass) {
            below += o.below
            equal += o.equal
            sumSquares += o.sumSquares
            removedSumSquares += o.removedSumSquares
            overflow = overflow || o.overflow
        }

        /// The counts once `tiesRemoved` elements equal to `key` have been zeroed as well.
        func counts(elements: Int, key: UInt32, tiesRemoved: Int) -> PruneCounts {
            let zeroed = below + tiesRemoved
            let m = Double(MagnitudeKey.magnitude(key))
            let tieSquares = key < MagnitudeKey.infinity ? Double(tiesRemoved) * m * m : 0
            return PruneCounts(elements: elements, zeroed: zeroed,
                               zerosAfter: zeroed + (key == 0 ? equal - tiesRemoved : 0),
                               sumSquares: sumSquares, removedSumSquares: removedSumSquares + tieSquares)
        }
    }

    /// Copies `range` into `dst` (same offsets) with keys below `key` zeroed; counts them and the keys
    /// equal to `key`, and sums squares of finite magnitudes (f32 lanes, added to f64 every 1,024
    /// elements).
    ///
    /// With `collect`, also appends to `found`, in order, `offset << 32 | key` for the elements whose
    /// key lies in `collect` (offsets from `range.lowerBound`), at most `cap` of them:
    /// `Pass.overflow` tells when more were there.
    static func fused(_ source: MagnitudeSource, _ range: Range<Int>, key: UInt32, into dst: UnsafeMutableRawPointer,
                      collect: ClosedRange<UInt32>? = nil, cap: Int = 0, found: inout [UInt64]) -> Pass {
        var pass = Pass()
        let low = collect?.lowerBound ?? 1, high = collect?.upperBound ?? 0
        let collecting = collect != nil
        let width = source.width
        let src = source.bytes.baseAddress!
        source.forEachBlock(in: range) { b, bits in
            let s = src + width * b.lowerBound, d = dst + width * b.lowerBound
            let full = b.count & ~15
            // One inlined copy of the vector loop per element width.
            switch width {
            case 4: pass.add(block(bits: bits, src: s, dst: d, count: full, width: 4, key: key, collecting: collecting, low: low, high: high,
                                   first: b.lowerBound - range.lowerBound, cap: cap, found: &found))
            case 2: pass.add(block(bits: bits, src: s, dst: d, count: full, width: 2, key: key, collecting: collecting, low: low, high: high,
                                   first: b.lowerBound - range.lowerBound, cap: cap, found: &found))
            default: pass.add(block(bits: bits, src: s, dst: d, count: full, width: 8, key: key, collecting: collecting, low: low, high: high,
                                    first: b.lowerBound - range.lowerBound, cap: cap, found: &found))
            }
            for i in full..<b.count {
                let k = MagnitudeKey.of(bits: bits.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
                let m = Double(MagnitudeKey.magnitude(k))
                let sq = k < MagnitudeKey.infinity ? m * m : 0
                pass.sumSquares += sq
                if k == key { pass.equal += 1 }
                if collecting && k >= low && k <= high {
                    if found.count < cap { found.append(UInt64(b.lowerBound - range.lowerBound + i) << 32 | UInt64(k)) } else { pass.overflow = true }
                }
                if k < key {
                    pass.below += 1
                    pass.removedSumSquares += sq
                    (d + width * i).initializeMemory(as: UInt8.self, repeating: 0, count: width)
                } else {
                    (d + width * i).copyMemory(from: s + width * i, byteCount: width)
                }
            }
        }
        return pass
    }

    /// The vector part of `fused` over `count` (a multiple of 16) elements at offset `first` of the
    /// collecting range: `bits` are their f32 bit patterns, `src` and `dst` their stored and output
    /// bytes (`width` bytes each).
    ///
    /// Integer lane arithmetic and local accumulators only, so that it compiles to straight vector code.
    @inline(__always)
    static func block(bits: UnsafeRawPointer, src: UnsafeRawPointer, dst: UnsafeMutableRawPointer, count: Int, width: Int, key: UInt32,
                      collecting: Bool, low: UInt32, high: UInt32, first: Int, cap: Int, found: inout [UInt64]) -> Pass {
        var pass = Pass()
        let t = SIMD16<UInt32>(repeating: key), infinity = SIMD16<UInt32>(repeating: MagnitudeKey.infinity)
        let lo = SIMD16<UInt32>(repeating: low), hi = SIMD16<UInt32>(repeating: high)
        var below = SIMD16<UInt32>(), equal = SIMD16<UInt32>()
        var i = 0
        while i < count {
            let stop = min(count, i + 1024)
            var squares = SIMD16<Float>(), removed = SIMD16<Float>()
            while i < stop {
                let v = bits.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<UInt32>.self)
                let k = MagnitudeKey.of(bits: v)
                let lt = MagnitudeKey.below(k, t)
                let m = MagnitudeKey.allOnes(lt)
                below &+= lt
                equal &+= MagnitudeKey.equal(k, t)
                if collecting {
                    let inside = (1 &- MagnitudeKey.below(k, lo)) & (1 &- MagnitudeKey.below(hi, k))
                    if inside.wrappedSum() != 0 {
                        for lane in 0..<16 where inside[lane] != 0 {
                            if found.count < cap { found.append(UInt64(first + i + lane) << 32 | UInt64(k[lane])) } else { pass.overflow = true }
                        }
                    }
                }
                let f = unsafeBitCast(k & MagnitudeKey.allOnes(MagnitudeKey.below(k, infinity)), to: SIMD16<Float>.self)
                let sq = f * f
                squares += sq
                removed += unsafeBitCast(unsafeBitCast(sq, to: SIMD16<UInt32>.self) & m, to: SIMD16<Float>.self)
                switch width {
                case 4:
                    dst.storeBytes(of: v & ~m, toByteOffset: 4 * i, as: SIMD16<UInt32>.self)
                case 2:
                    let raw = src.loadUnaligned(fromByteOffset: 2 * i, as: SIMD16<UInt16>.self)
                    dst.storeBytes(of: raw & (SIMD16<UInt16>(truncatingIfNeeded: lt) &- 1), toByteOffset: 2 * i, as: SIMD16<UInt16>.self)
                default:
                    for lane in 0..<16 {
                        let raw = src.loadUnaligned(fromByteOffset: 8 * (i + lane), as: UInt64.self)
                        dst.storeBytes(of: raw & (UInt64(lt[lane]) &- 1), toByteOffset: 8 * (i + lane), as: UInt64.self)
                    }
                }
                i += 16
            }
            pass.sumSquares += Double(squares.sum())
            pass.removedSumSquares += Double(removed.sum())
        }
        pass.below = Int(below.wrappedSum())
        pass.equal = Int(equal.wrappedSum())
        return pass
    }

    /// Zeroes in `dst` the first `count` elements of `range` whose key equals `key`; returns how many
    /// it found (at most `count`).
    static func zeroTies(_ source: MagnitudeSource, _ range: Range<Int>, key: UInt32, count: Int, into dst: UnsafeMutableRawPointer) -> Int {
        var left = count
        let width = source.width
        source.forEachBlock(in: range) { b, bits in
            var i = 0
            while left > 0 && i < b.count {
                if MagnitudeKey.of(bits: bits.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)) == key {
                    (dst + width * (b.lowerBound + i)).initializeMemory(as: UInt8.self, repeating: 0, count: width)
                    left -= 1
                }
                i += 1
            }
        }
        return count - left
    }
}
