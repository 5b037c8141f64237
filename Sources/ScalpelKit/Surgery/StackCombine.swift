/// The dense combinations of `stack` (docs/methods.md, "Combining adapters"), computed on the full
/// updates `tau_i = w_i * s_i * B_i @ A_i` of one module, row-major [rows, cols], in f32.
enum StackCombine {
    /// The sparsify-and-sum rules.
    enum Rule: Sendable, Equatable {
        /// Keep the top `density` fraction of each tau_i by |value|; sum.
        case magnitudePrune(density: Double)
        /// Magnitude-prune each tau_i, elect a sign per entry, average the agreeing entries.
        case ties(density: Double, sign: Stack.MajoritySign)
        /// DARE: drop each entry with probability 1 - density, rescale by 1/density; sum.
        case dareLinear(density: Double, seed: UInt64)
        /// DARE's masks, then TIES' sign election and disjoint mean.
        case dareTies(density: Double, seed: UInt64, sign: Stack.MajoritySign)
    }

    /// `tau = factor * B @ A` as a new dense [rows, cols] array.
    static func update(_ m: StackModule.Member) throws -> [Float] {
        let a = try FloatConversion.floats(try m.adapter.view(m.module.aName))
        let b = try FloatConversion.floats(try m.adapter.view(m.module.bName))
        let rows = m.module.productShape[0], cols = m.module.productShape[1]
        var tau = [Float](repeating: 0, count: rows * cols)
        tau.withUnsafeMutableBufferPointer { t in
            a.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { bp in
                    MergeKernels.addProduct(into: t.baseAddress!, rows: 0..<rows, b: bp.baseAddress!, a: ap.baseAddress!,
                                            productRows: rows, productCols: cols, rank: m.module.rank, scale: Float(m.factor),
                                            transposed: false)
                }
            }
        }
        return tau
    }

    /// The combined dense update of `module` under `rule`.
    static func combine(_ module: StackModule, rule: Rule) throws -> [Float] {
        var taus = try module.members.map(update)
        let n = module.rows * module.cols
        for (i, member) in module.members.enumerated() {
            taus[i].withUnsafeMutableBufferPointer { t in
                switch rule {
                case .magnitudePrune(let density), .ties(let density, _):
                    StackMasks.keepLargest(t, count: Int(density * Double(n)))
                case .dareLinear(let density, let seed), .dareTies(let density, let seed, _):
                    StackMasks.dropAndRescale(t, mask: DAREMask(seed: seed, adapterIndex: member.adapterIndex, path: module.path, density: density))
                }
            }
        }
        switch rule {
        case .magnitudePrune, .dareLinear:
            return sum(taus, count: n)
        case .ties(_, let sign), .dareTies(_, _, let sign):
            return disjointMean(taus, count: n, sign: sign)
        }
    }

    /// Elementwise sum (in input order).
    static func sum(_ taus: [[Float]], count n: Int) -> [Float] {
        var out = [Float](repeating: 0, count: n)
        for tau in taus {
            for e in 0..<n { out[e] += tau[e] }
        }
        return out
    }

    /// TIES' sign election and disjoint mean, per entry: the elected sign is that of sum_i tau_i
    /// (`total`) or of sum_i sign(tau_i) (`frequency`), + when the sum is 0 (as PEFT); the result is the
    /// mean of the non-zero tau_i whose sign is the elected one (0 when there are none).
    static func disjointMean(_ taus: [[Float]], count n: Int, sign: Stack.MajoritySign) -> [Float] {
        var out = [Float](repeating: 0, count: n)
        out.withUnsafeMutableBufferPointer { o in
            let box = UncheckedBox(o.baseAddress!)
            parallelChunks(count: n, chunk: 1 << 16) { r in
                for e in r {
                    var s: Float = 0
                    for tau in taus {
                        let x = tau[e]
                        s += sign == .total ? x : (x > 0 ? 1 : (x < 0 ? -1 : 0))
                    }
                    let positive = s >= 0
                    var total: Float = 0
                    var agreeing = 0
                    for tau in taus {
                        let x = tau[e]
                        if positive ? x > 0 : x < 0 {
                            total += x
                            agreeing += 1
                        }
                    }
                    box.value[e] = agreeing > 0 ? total / Float(agreeing) : 0
                }
            }
        }
        return out
    }
}
