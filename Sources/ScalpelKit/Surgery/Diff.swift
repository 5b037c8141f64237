/// The `diff` command's comparison: how two checkpoints differ, tensor by tensor.
///
/// Tensors are matched by logical name (a quantized weight spread over several file tensors is one
/// logical tensor, decoded to f32 on the fly), so a model can be compared with its GGUF, bitsandbytes
/// or compressed-tensors quantization. One tensor pair is in memory at a time; F32 tensors are read
/// straight from the mapped file.
public enum Diff {
    /// What to compute.
    public struct Options: Sendable {
        /// Add, per 2-D tensor, the energy of the difference captured by each rank in `ranks` and the
        /// rank needed for `energy` (randomized SVD, as extract-lora).
        public var rankProfile = false
        /// Ranks of the profile.
        public var ranks = [8, 16, 32, 64, 128]
        /// Energy fraction in (0, 1] for `rank_for_energy` and the summary rank.
        public var energy = 0.9
        /// Randomized SVD parameters (the seed fixes the result; threads do not change it).
        public var svd = RandomizedSVDOptions()

        public init() {}
    }

    /// One tensor present in both checkpoints with the same shape.
    public struct TensorDiff: Sendable {
        public var name: String
        public var shape: [Int]
        /// How each side stores it (dtype, ggml type, or NF4/FP4/INT8/INT4).
        public var storageA: String
        public var storageB: String
        /// Σa², Σb², Σab, Σ(b-a)² (f64) and max |b - a|.
        public var sumSquaresA: Double
        public var sumSquaresB: Double
        public var dot: Double
        public var differenceEnergy: Double
        public var maxAbsDiff: Double
        /// Rank profile of the difference (2-D tensors, with `rankProfile`).
        public var profile: RankProfile?

        /// ||B - A|| / ||A||: 0 when identical; infinity when only A is all zero.
        public var relativeChange: Double {
            differenceEnergy == 0 ? 0 : (differenceEnergy / sumSquaresA).squareRoot()
        }

        /// <A, B> / (||A|| ||B||): 1 when both are zero, 0 when only one is.
        public var cosine: Double {
            if sumSquaresA == 0 && sumSquaresB == 0 { return 1 }
            if sumSquaresA == 0 || sumSquaresB == 0 { return 0 }
            return dot / (sumSquaresA.squareRoot() * sumSquaresB.squareRoot())
        }

        public var isChanged: Bool { differenceEnergy != 0 || storageA != storageB }
    }

    /// A tensor whose shape differs between the two sides (not compared value by value).
    public struct ShapeChange: Sendable {
        public var name: String
        public var shapeA: [Int]
        public var shapeB: [Int]
        public var storageA: String
        public var storageB: String
    }

    /// The whole comparison.
    public struct Result: Sendable {
        public var pathA: String
        public var pathB: String
        public var options: Options
        /// Tensors in both, in A's order.
        public var tensors: [TensorDiff]
        public var onlyInA: [String]
        public var onlyInB: [String]
        public var shapeChanges: [ShapeChange]
    }

    /// Compares `a` with `b` (B - A). Reads both inputs once, a tensor pair at a time.
    /// - Throws: `ScalpelError.invalid` for a tensor whose values cannot be decoded on either side
    ///   (F8, F4...) unless both sides hold the same bytes, or an invalid energy.
    public static func compare(_ a: Checkpoint, _ b: Checkpoint, options: Options = Options()) throws -> Result {
        guard options.energy > 0 && options.energy <= 1 else {
            throw ScalpelError.invalid(file: nil, tensor: nil, reason: "--energy must be in (0, 1], not \(options.energy)")
        }
        let left = try LogicalTensors.resolve(a)
        let right = try LogicalTensors.resolve(b)
        let rightByName = Dictionary(right.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let leftNames = Set(left.map(\.name))
        var result = Result(pathA: a.path, pathB: b.path, options: options, tensors: [],
                            onlyInA: left.map(\.name).filter { rightByName[$0] == nil },
                            onlyInB: right.map(\.name).filter { !leftNames.contains($0) }, shapeChanges: [])
        for la in left {
            guard let lb = rightByName[la.name] else { continue }
            guard la.shape == lb.shape else {
                result.shapeChanges.append(ShapeChange(name: la.name, shapeA: la.shape, shapeB: lb.shape,
                                                       storageA: la.storage, storageB: lb.storage))
                continue
            }
            let sa = SourceTensor(checkpoint: a, logical: la, allowNonfinite: true)
            let sb = SourceTensor(checkpoint: b, logical: lb, allowNonfinite: true)
            defer { sa.release(); sb.release() }
            result.tensors.append(try compare(sa, sb, options: options))
        }
        return result
    }

    /// Compares one pair of same-shape tensors.
    static func compare(_ a: SourceTensor, _ b: SourceTensor, options: Options) throws -> TensorDiff {
        let name = a.logical.name
        var d = TensorDiff(name: name, shape: a.logical.shape, storageA: a.logical.storage, storageB: b.logical.storage,
                           sumSquaresA: 0, sumSquaresB: 0, dot: 0, differenceEnergy: 0, maxAbsDiff: 0, profile: nil)
        var decoded = false
        do {
            try a.withValues(checkFinite: false) { x in
                try b.withValues(checkFinite: false) { y in
                    decoded = true
                    // Σa², Σ(a-b)² and max|a-b| by the kernel quantize's report uses, so the relative change
                    // of a round trip equals the relative RMSE quantize printed.
                    let e = QuantError.measure(original: x, reconstructed: y)
                    let (bb, ab) = DiffSums.squaresAndDot(y, x)
                    d.sumSquaresA = e.signalEnergy
                    d.differenceEnergy = e.errorEnergy
                    d.maxAbsDiff = e.maxAbsError
                    d.sumSquaresB = bb
                    d.dot = ab
                    if options.rankProfile, d.shape.count == 2, d.shape[0] > 0, d.shape[1] > 0 {
                        do {
                            d.profile = try RankProfile.measure(x, y, rows: d.shape[0], cols: d.shape[1], options: options)
                        } catch let e as ScalpelError { throw located(e, file: b.checkpoint.path, tensor: name) }
                    }
                }
            }
        } catch let error as ScalpelError where !decoded {
            // Types with no numeric meaning (F8, F4...) compare by bytes when both sides are one file tensor.
            guard let ia = a.logical.fileIndex, let ib = b.logical.fileIndex,
                  a.checkpoint.tensors[ia].type == b.checkpoint.tensors[ib].type else {
                throw located(error, file: a.checkpoint.path, tensor: name)
            }
            let va = try a.checkpoint.view(at: ia), vb = try b.checkpoint.view(at: ib)
            guard va.bytes.elementsEqual(vb.bytes) else {
                throw ScalpelError.invalid(file: b.checkpoint.path, tensor: name,
                                           reason: "\(a.logical.storage) values differ and cannot be compared numerically")
            }
            d.sumSquaresA = 1
            d.sumSquaresB = 1
            d.dot = 1
        }
        return d
    }

    /// An error without a file (from Linalg or a decoder) gets the file and tensor it happened on.
    private static func located(_ e: ScalpelError, file: String, tensor: String) -> ScalpelError {
        if case .invalid(nil, _, let reason) = e { return .invalid(file: file, tensor: tensor, reason: reason) }
        return e
    }
}

/// Σb² and Σab over fixed chunks in parallel (f64 SIMD lanes), independent of the thread count.
enum DiffSums {
    static let chunk = 1 << 16

    static func squaresAndDot(_ b: UnsafeBufferPointer<Float>, _ a: UnsafeBufferPointer<Float>) -> (Double, Double) {
        let n = b.count
        guard n > 0 else { return (0, 0) }
        let chunks = (n + chunk - 1) / chunk
        var partial = [Double](repeating: 0, count: 2 * chunks)
        let io = UncheckedBox((a.baseAddress!, b.baseAddress!))
        partial.withUnsafeMutableBufferPointer { out in
            let sink = UncheckedBox(out.baseAddress!)
            parallelChunks(count: n, chunk: chunk) { r in
                let (pa, pb) = io.value
                var bb = SIMD8<Double>(), ab = SIMD8<Double>()
                var i = r.lowerBound
                while i + 8 <= r.upperBound {
                    let x = SIMD8<Double>(UnsafeRawPointer(pa + i).loadUnaligned(as: SIMD8<Float>.self))
                    let y = SIMD8<Double>(UnsafeRawPointer(pb + i).loadUnaligned(as: SIMD8<Float>.self))
                    bb += y * y
                    ab += x * y
                    i += 8
                }
                var sbb = bb.sum(), sab = ab.sum()
                while i < r.upperBound {
                    let x = Double(pa[i]), y = Double(pb[i])
                    sbb += y * y
                    sab += x * y
                    i += 1
                }
                sink.value[2 * (r.lowerBound / chunk)] = sbb
                sink.value[2 * (r.lowerBound / chunk) + 1] = sab
            }
        }
        var bb = 0.0, ab = 0.0
        for c in 0..<chunks {
            bb += partial[2 * c]
            ab += partial[2 * c + 1]
        }
        return (bb, ab)
    }
}
