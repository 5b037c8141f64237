/// Summary statistics of one tensor's values.
///
/// min, max, mean, std (population) and mean |x| are over the finite values only; NaN and ±Inf are
/// counted apart. `zeroFraction` is over all elements (±0 count as zero). An empty tensor, or one with
/// no finite value, has 0 for the finite statistics.
public struct TensorStats: Sendable, Equatable {
    public var count = 0
    public var finiteCount = 0
    public var min: Double = 0
    public var max: Double = 0
    public var mean: Double = 0
    public var std: Double = 0
    public var meanAbs: Double = 0
    public var zeroFraction: Double = 0
    public var nanCount = 0
    public var infCount = 0

    /// Elements per parallel chunk: fixed, so the result never depends on the thread count.
    static let chunk = 1 << 16

    /// Computes the statistics of a tensor of any type Scalpel can decode (in parallel, chunk by chunk,
    /// without an f32 copy of the whole tensor).
    public static func compute(_ view: TensorView) throws -> TensorStats {
        let n = view.info.elementCount
        let type = view.info.type
        // Block types decode in whole blocks; chunk on a multiple of the block size.
        let blockElems: Int = { if case .block(let g) = type { return g.blockSize } else { return 1 } }()
        let chunk = Swift.max(blockElems, chunk / blockElems * blockElems)
        let chunks = (n + chunk - 1) / chunk
        var parts = [Partial](repeating: Partial(), count: chunks)
        let src = UncheckedBox(view.bytes)
        try parts.withUnsafeMutableBufferPointer { p in
            let out = UncheckedBox(p)
            try parallelChunksThrowing(count: n, chunk: chunk) { r in
                let byteLo = type.byteCount(elements: r.lowerBound)!, byteHi = type.byteCount(elements: r.upperBound)!
                let bytes = UnsafeRawBufferPointer(rebasing: src.value[byteLo..<byteHi])
                if type == .plain(.f32) {
                    out.value[r.lowerBound / chunk] = Partial(bytes.bindMemory(to: Float.self))
                } else {
                    var tmp = [Float](repeating: 0, count: r.count)
                    try tmp.withUnsafeMutableBufferPointer { t in
                        try FloatConversion.decode(type, bytes, into: t, tensor: view.info.name)
                        out.value[r.lowerBound / chunk] = Partial(UnsafeBufferPointer(t))
                    }
                }
            }
        }
        var s = TensorStats()
        s.count = n
        var total = Partial()
        for p in parts { total.merge(p) }
        s.finiteCount = total.finite
        s.nanCount = total.nan
        s.infCount = total.inf
        s.zeroFraction = n > 0 ? Double(total.zeros) / Double(n) : 0
        if total.finite > 0 {
            s.min = Double(total.min)
            s.max = Double(total.max)
            s.mean = total.mean
            s.std = (total.m2 / Double(total.finite)).squareRoot()
            s.meanAbs = total.absSum / Double(total.finite)
        }
        return s
    }

    /// Statistics of one chunk, mergeable (Chan et al. parallel variance).
    struct Partial {
        var finite = 0, nan = 0, inf = 0, zeros = 0
        var min = Float.infinity, max = -Float.infinity
        var mean = 0.0, m2 = 0.0, absSum = 0.0

        init() {}

        init(_ x: UnsafeBufferPointer<Float>) {
            var vmin = SIMD16<Float>(repeating: .infinity), vmax = SIMD16<Float>(repeating: -.infinity)
            var vsum = SIMD16<Float>(), vabs = SIMD16<Float>()
            var vfinite = SIMD16<Int32>(), vzero = SIMD16<Int32>(), vnan = SIMD16<Int32>()
            let infv = SIMD16<Float>(repeating: .infinity)
            let base = UnsafeRawPointer(x.baseAddress!)
            let full = x.count / 16 * 16
            var i = 0
            while i < full {
                let v = base.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
                let a = v.replacing(with: -v, where: v .< 0)
                let isFinite = a .< infv
                let isNaN = v .!= v
                vfinite &+= SIMD16<Int32>(repeating: 0).replacing(with: 1, where: isFinite)
                vnan &+= SIMD16<Int32>(repeating: 0).replacing(with: 1, where: isNaN)
                vzero &+= SIMD16<Int32>(repeating: 0).replacing(with: 1, where: v .== 0)
                let f = SIMD16<Float>(repeating: 0).replacing(with: v, where: isFinite)
                vsum += f
                vabs += f.replacing(with: -f, where: f .< 0)
                vmin = pointwiseMin(vmin, infv.replacing(with: v, where: isFinite))
                vmax = pointwiseMax(vmax, (-infv).replacing(with: v, where: isFinite))
                i += 16
            }
            var sum = Double(vsum.sum()), absSum = Double(vabs.sum())
            finite = Int(vfinite.wrappedSum()); nan = Int(vnan.wrappedSum()); zeros = Int(vzero.wrappedSum())
            min = vmin.min(); max = vmax.max()
            while i < x.count {
                let v = x[i]
                if v.isFinite {
                    finite += 1; sum += Double(v); absSum += Double(Swift.abs(v))
                    min = Swift.min(min, v); max = Swift.max(max, v)
                } else if v.isNaN { nan += 1 }
                if v == 0 { zeros += 1 }
                i += 1
            }
            inf = x.count - finite - nan
            self.absSum = absSum
            guard finite > 0 else { return }
            // f32 lanes overflow for values near the top of the range (sums of 1e20s square past f32):
            // such chunks are redone in f64.
            guard sum.isFinite, absSum.isFinite else { self.exactInDouble(x); return }
            mean = sum / Double(finite)
            // Second pass over the (cached) chunk for the centred sum of squares.
            let m = Float(mean)
            var vm2 = SIMD16<Float>()
            i = 0
            while i < full {
                let v = base.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
                let d = SIMD16<Float>(repeating: 0).replacing(with: v - m, where: v.replacing(with: -v, where: v .< 0) .< infv)
                vm2 += d * d
                i += 16
            }
            var m2 = Double(vm2.sum())
            while i < x.count {
                if x[i].isFinite { let d = Double(x[i] - m); m2 += d * d }
                i += 1
            }
            // Correct for using the f32-rounded mean.
            let shift = mean - Double(m)
            self.m2 = Swift.max(0, m2 - Double(finite) * shift * shift)
            if !self.m2.isFinite || !m.isFinite { self.exactInDouble(x) }
        }

        /// The sums of a chunk in f64 (slow path for values whose f32 sums or squares overflow).
        private mutating func exactInDouble(_ x: UnsafeBufferPointer<Float>) {
            var sum = 0.0, absSum = 0.0
            for v in x where v.isFinite { sum += Double(v); absSum += Double(Swift.abs(v)) }
            mean = finite > 0 ? sum / Double(finite) : 0
            self.absSum = absSum
            var m2 = 0.0
            for v in x where v.isFinite { let d = Double(v) - mean; m2 += d * d }
            self.m2 = m2
        }

        mutating func merge(_ o: Partial) {
            let n = finite + o.finite
            if o.finite > 0 {
                let delta = o.mean - mean
                m2 += o.m2 + delta * delta * Double(finite) * Double(o.finite) / Double(n)
                mean += delta * Double(o.finite) / Double(n)
            }
            finite = n
            nan += o.nan; inf += o.inf; zeros += o.zeros
            absSum += o.absSum
            min = Swift.min(min, o.min); max = Swift.max(max, o.max)
        }
    }
}
