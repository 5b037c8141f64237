import Testing
@testable import ScalpelKit

enum PruneTestData {
    /// Gaussian-ish values (sum of uniforms), all distinct in practice.
    static func random(_ n: Int, seed: UInt64) -> [Float] {
        var g = TestRandom(seed: seed)
        return (0..<n).map { _ in Float.random(in: -1...1, using: &g) + Float.random(in: -1...1, using: &g) }
    }

    /// Values from a handful of magnitudes with both signs and zeros: many ties.
    static func ties(_ n: Int, seed: UInt64) -> [Float] {
        var g = TestRandom(seed: seed)
        let levels: [Float] = [0, -0.0, 0.25, -0.25, 0.5, -0.5, 1, -1, 2]
        return (0..<n).map { _ in levels[Int.random(in: 0..<levels.count, using: &g)] }
    }

    /// The indices the stable-argsort rule removes: the `k` first in (|w|, index) order, NaN last.
    static func referenceRemoved(_ values: ArraySlice<Float>, _ k: Int) -> Set<Int> {
        let base = values.startIndex
        let order = values.indices.sorted { a, b in
            let ka = MagnitudeKey.of(values[a]), kb = MagnitudeKey.of(values[b])
            return ka != kb ? ka < kb : a < b
        }
        return Set(order.prefix(k).map { $0 - base })
    }

    /// Runs a kernel on f32 values, returns the output values.
    static func run(_ values: [Float], _ kernel: (MagnitudeSource, UnsafeMutableRawBufferPointer) -> PruneCounts) -> (out: [Float], counts: PruneCounts) {
        var out = [Float](repeating: .nan, count: values.count)
        let counts = values.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in kernel(MagnitudeSource(bytes: src, dtype: .f32, count: values.count), dst) }
        }
        return (out, counts)
    }

    /// Indices whose output differs from the input by being set to +0 bits (or that were zero and are
    /// +0 now); the kept ones must be bit-identical.
    static func removed(_ input: [Float], _ output: [Float]) -> Set<Int> {
        var s = Set<Int>()
        for i in input.indices where output[i].bitPattern != input[i].bitPattern || (input[i].bitPattern == 0 && output[i].bitPattern == 0) {
            s.insert(i)
        }
        return s
    }
}

@Suite struct PruneSelectionTests {
    @Test func radixSelectMatchesSortingOnRandomAndTiedKeys() {
        var g = TestRandom(seed: 7)
        for n in [1, 2, 3, 17, 300, 5000] {
            for spread in [UInt32.max, 3, 0] {
                let keys = (0..<n).map { _ in UInt32.random(in: 0...spread, using: &g) }
                let sorted = keys.sorted()
                for rank in Set([0, n / 3, n / 2, n - 1]) {
                    var scratch = keys
                    let (key, below) = scratch.withUnsafeMutableBufferPointer { RadixSelect.kth($0, rank: rank) }
                    #expect(key == sorted[rank])
                    #expect(below == sorted.firstIndex(of: sorted[rank])!)
                }
            }
        }
        var wide: [UInt64] = [5, 1 << 40, 3, 3, UInt64.max, 0]
        let (key, below) = wide.withUnsafeMutableBufferPointer { RadixSelect.kth($0, rank: 3) }
        #expect(key == 5 && below == 3)
    }

    @Test func tensorScopeRemovesExactlyTheStableArgsortPrefix() {
        // Sizes below, at and well above one parallel chunk (65,536), with tails not a multiple of 16;
        // the last one is large enough for SmallestMask's sampled one-pass path.
        for (n, seed) in [(1, 1), (37, 2), (4096, 3), (65_536 * 3 + 5, 4), ((1 << 18) + 21, 5)] as [(Int, UInt64)] {
            for values in [PruneTestData.random(n, seed: seed), PruneTestData.ties(n, seed: seed)] {
                for s in n > 10_000 ? [0.45] : [0.0, 0.3, 0.5, 0.9, 1.0] {
                    let k = Prune.Amount.sparsity(s).count(of: n)
                    // The two-read path (bucket fix-up, or its fallback on tied data) and the plain
                    // threshold path give the same output.
                    let (out, counts) = PruneTestData.run(values) { src, dst in SmallestMask.apply(k, of: src, into: dst) }
                    let (plain, plainCounts) = PruneTestData.run(values) { src, dst in
                        ThresholdMask.apply(src, .smallest(k, of: src), into: dst)
                    }
                    #expect(out.map(\.bitPattern) == plain.map(\.bitPattern))
                    #expect(counts.zeroed == plainCounts.zeroed && counts.zerosAfter == plainCounts.zerosAfter)
                    #expect(abs(counts.removedSumSquares - plainCounts.removedSumSquares) <= 1e-5 * max(1, plainCounts.removedSumSquares))
                    let expected = PruneTestData.referenceRemoved(values[...], k)
                    #expect(counts.zeroed == k)
                    for i in expected { #expect(out[i].bitPattern == 0) }
                    for i in 0..<n where !expected.contains(i) { #expect(out[i].bitPattern == values[i].bitPattern) }
                }
            }
        }
    }

    @Test func sampledBracketPathIsTakenOnSpreadDataAndRefusedWhenItMisses() {
        let values = PruneTestData.random(300_000, seed: 9)
        let k = 123_457
        values.withUnsafeBytes { src in
            let source = MagnitudeSource(bytes: src, dtype: .f32, count: values.count)
            var a = [Float](repeating: 0, count: values.count), b = a
            guard let (keys, share) = SmallestMask.bracket(k, of: source) else {
                Issue.record("no bracket on random data")
                return
            }
            #expect(share < 0.05)
            let one = a.withUnsafeMutableBytes { SmallestMask.apply(k, of: source, bracket: keys, share: share, into: $0) }
            let two = b.withUnsafeMutableBytes { ThresholdMask.apply(source, .smallest(k, of: source), into: $0) }
            #expect(one?.zeroed == k && one?.zerosAfter == two.zeroed)
            #expect(a.map(\.bitPattern) == b.map(\.bitPattern))
            // A bracket that misses the k-th smallest is refused (the caller falls back).
            let miss = a.withUnsafeMutableBytes { SmallestMask.apply(k, of: source, bracket: 0...1, share: share, into: $0) }
            #expect(miss == nil)
        }
    }

    @Test func allEqualValuesArePrunedFromTheFront() {
        // The sample bracket would hold everything: SmallestMask takes its histogram path.
        let values = [Float](repeating: -0.75, count: 300_000)
        let (out, counts) = PruneTestData.run(values) { src, dst in SmallestMask.apply(40_000, of: src, into: dst) }
        #expect(counts.zeroed == 40_000 && counts.zerosAfter == 40_000)
        #expect(out[0..<40_000].allSatisfy { $0.bitPattern == 0 })
        #expect(out[40_000...].allSatisfy { $0 == -0.75 })
        values.withUnsafeBytes { #expect(SmallestMask.bracket(40_000, of: MagnitudeSource(bytes: $0, dtype: .f32, count: values.count)) == nil) }
    }

    @Test func nanIsTheLargestMagnitudeAndInfinityComesJustBefore() {
        let values: [Float] = [.nan, 3, -.infinity, -Float.nan, 1, 0, -2, Float(bitPattern: 0x7FC0_1234)]
        let order = [5, 4, 6, 1, 2, 0, 3, 7]  // 0, 1, -2, 3, -inf, then the three NaNs by position
        for k in 0...values.count {
            let (out, counts) = PruneTestData.run(values) { src, dst in ThresholdMask.apply(src, .smallest(k, of: src), into: dst) }
            #expect(counts.zeroed == k)
            for (rank, i) in order.enumerated() {
                if rank < k { #expect(out[i].bitPattern == 0) } else { #expect(out[i].bitPattern == values[i].bitPattern) }
            }
        }
    }

    @Test func existingZerosCountTowardTheTarget() {
        // 6 zeros out of 10: pruning 3 removes three zeros (the first ones) and nothing else.
        let values: [Float] = [0, 5, 0, -0.0, 4, 0, 3, 0, 2, 0]
        let (out, counts) = PruneTestData.run(values) { src, dst in ThresholdMask.apply(src, .smallest(3, of: src), into: dst) }
        #expect(counts.zeroed == 3)
        #expect(counts.zerosAfter == 6)
        #expect(counts.removedSumSquares == 0)
        #expect(out.map { $0.bitPattern } == values.map { $0.bitPattern }.enumerated().map { $0.offset == 3 ? 0 : $0.element })
    }

    @Test func normRemovedFractionIsTheRelativeError() {
        let values: [Float] = [3, -4, 0.5, 12]
        let (_, counts) = PruneTestData.run(values) { src, dst in ThresholdMask.apply(src, .smallest(2, of: src), into: dst) }
        #expect(counts.sumSquares == 9 + 16 + 0.25 + 144)
        #expect(counts.removedSumSquares == 0.25 + 9)
        #expect(abs(counts.normRemovedFraction - (9.25 / 169.25).squareRoot()) < 1e-12)
    }

    @Test func halfPrecisionKeepsItsBitsAndPrunesOnStoredMagnitudes() {
        // F16 values with many exact ties; the mask must follow the F16 magnitudes, the output stay F16.
        var g = TestRandom(seed: 11)
        let halves = (0..<1000).map { _ in Float16(Float(Int.random(in: -8...8, using: &g)) / 8) }
        let asFloats = halves.map { Float($0) }
        for dtype in [DType.f16, .bf16] {
            let raw: [UInt16] = dtype == .f16 ? halves.map(\.bitPattern) : asFloats.map { UInt16($0.bitPattern >> 16) }
            var out = [UInt16](repeating: 0xFFFF, count: raw.count)
            let counts = raw.withUnsafeBytes { src in
                out.withUnsafeMutableBytes { dst in
                    let s = MagnitudeSource(bytes: src, dtype: dtype, count: raw.count)
                    return ThresholdMask.apply(s, .smallest(600, of: s), into: dst)
                }
            }
            let expected = PruneTestData.referenceRemoved(asFloats[...], 600)
            #expect(counts.zeroed == 600)
            for i in raw.indices { #expect(out[i] == (expected.contains(i) ? 0 : raw[i])) }
        }
    }

    @Test func doublePrecisionIsWrittenBackUnchanged() {
        let values: [Double] = (0..<100).map { Double($0 % 10) - 4.5 + 1e-12 * Double($0) }
        var out = [Double](repeating: .nan, count: values.count)
        let counts = values.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                let s = MagnitudeSource(bytes: src, dtype: .f64, count: values.count)
                return ThresholdMask.apply(s, .smallest(20, of: s), into: dst)
            }
        }
        #expect(counts.zeroed == 20)
        // |x| = 0.5 (+tiny) are the 20 smallest: values 4 and 5 of each ten.
        for i in values.indices { #expect(out[i] == ([4, 5].contains(i % 10) ? 0 : values[i])) }
    }

    @Test func roundingHalfToEvenLikePython() {
        #expect(Prune.Amount.sparsity(0.5).count(of: 5) == 2)   // round(2.5) == 2
        #expect(Prune.Amount.sparsity(0.5).count(of: 7) == 4)   // round(3.5) == 4
        #expect(Prune.Amount.sparsity(0.3).count(of: 10) == 3)
        #expect(Prune.Amount.sparsity(0).count(of: 10) == 0)
        #expect(Prune.Amount.keep(0.5).count(of: 5) == 3)       // keeps round(2.5) == 2
        #expect(Prune.Amount.keep(1).count(of: 9) == 0)
    }
}
