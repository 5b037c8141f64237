/// One module of a non-LoRA PEFT adapter (AdaLoRA, IA3, LoHa, LoKr): the tensors it holds and the rule
/// that turns them into a change of one base weight. The rules are PEFT's (`tuners/<family>/layer.py`,
/// `get_delta_weight` and `merge`), read from its source:
///
/// - AdaLoRA: `delta = B @ (A * E) * scaling / (ranknum + 1e-5)` with A [r, in], E [r, 1], B [out, r];
///   `scaling = lora_alpha` (or `init_r` when lora_alpha is 0) and `ranknum = init_r`: PEFT creates every
///   layer with `init_r` triplets and keeps that ranknum when a `rank_pattern` prunes triplets, so a
///   saved module with fewer rows than init_r still divides by init_r. Transposed with `fan_in_fan_out`.
/// - LoHa: `delta = (w1_a @ w1_b) * (w2_a @ w2_b) * alpha / r` (elementwise product; w*_a [out, r],
///   w*_b [r, in]), reshaped to the base shape (a Conv2d's [out, in*kh*kw]). Rank dropout applies only
///   in training. The CP form (`hada_t1`, `hada_t2`) is not read.
/// - LoKr: `delta = kron(w1, w2) * scale`, w1 [a, c] = `lokr_w1` or `lokr_w1_a @ lokr_w1_b`, w2 [b, d]
///   likewise, reshaped to the base shape [a*b, c*d]; `scale` as `AdapterFamilyReader` documents.
/// - IA3: `W *= l`, l [out, 1] scaling output rows (and the bias), or l [1, in] (feedforward_modules)
///   scaling input columns; transposed with `fan_in_fan_out`.
///
/// Every additive rule is written as exact low-rank factors `delta = B' @ A'` (the scale folded into A'),
/// so that merging, stacking, resizing and converting treat the module as a LoRA module of rank k:
/// AdaLoRA k = r; LoHa k = r1 * r2 (`(U1 V1) * (U2 V2) = (U1 ⊙ U2)(V1 ⊙ V2)` with ⊙ the row-wise
/// Kronecker product of the rows of U and columns of V); LoKr k = k1 * k2 (`kron(U1 V1, U2 V2) =
/// kron(U1, U2) kron(V1, V2)`, a full factor as `W I` or `I W`, whichever is narrower). When k would
/// reach min(out, in), the dense delta D is stored instead (`B' = D`, `A' = I` or `B' = I`, `A' = D`).
public struct AdapterDeltaModule: Sendable {
    /// A LoKr factor: one full matrix or the product of two.
    public enum KronFactor: Sendable, Equatable {
        case full(String)
        case product(a: String, b: String)
    }

    public enum Rule: Sendable, Equatable {
        /// AdaLoRA.
        case svdTriplets(a: String, e: String, b: String)
        /// LoHa.
        case hadamard(w1a: String, w1b: String, w2a: String, w2b: String)
        /// LoKr.
        case kronecker(w1: KronFactor, w2: KronFactor)
        /// IA3: the vector and whether it scales input columns (feedforward) instead of output rows.
        case scaleVector(String, columns: Bool)
    }

    /// PEFT's module path ("model.layers.0.self_attn.q_proj").
    public var path: String
    public var family: AdapterFamily
    public var rule: Rule
    /// The base tensor changed ("<path>.weight").
    public var weightName: String
    /// `[rows, cols]` of the delta in PEFT's [out, in] orientation.
    public var productShape: [Int]
    /// The base weight holds the transpose (`fan_in_fan_out`).
    public var transposed: Bool
    /// The rank the config gives the module (AdaLoRA: the triplets kept; IA3: 1).
    public var rank: Int
    /// The factor applied to the raw product (alpha / r, AdaLoRA's scaling / ranknum; 1 for IA3).
    public var scale: Double
    /// Elements of the module's tensors.
    public var parameters: Int

    /// The shape the base weight must have (2-D; a Conv2d weight is compared after flattening).
    public var baseShape: [Int] { transposed ? [productShape[1], productShape[0]] : productShape }

    /// The exact factors of the scaled delta, `delta = b @ a` in [out, in] orientation.
    /// - Throws: `ScalpelError.invalid` for IA3, whose change depends on the base weight.
    public func factors(_ ckpt: Checkpoint) throws -> LoRAFactors {
        func matrix(_ name: String) throws -> Matrix {
            let view = try ckpt.view(name)
            let shape = view.info.shape
            let rows = shape.first ?? 1
            return Matrix(rows: rows, cols: rows == 0 ? 0 : view.info.elementCount / rows, values: try FloatConversion.floats(view))
        }
        let (rows, cols) = (productShape[0], productShape[1])
        switch rule {
        case .svdTriplets(let aName, let eName, let bName):
            let a = try matrix(aName), e = try FloatConversion.floats(try ckpt.view(eName)), b = try matrix(bName)
            var scaled = a
            let s = Float(scale)
            for i in 0..<a.rows { for j in 0..<a.cols { scaled[i, j] = a[i, j] * e[i] * s } }
            return LoRAFactors(b: b, a: scaled)
        case .hadamard(let w1aName, let w1bName, let w2aName, let w2bName):
            let w1a = try matrix(w1aName), w1b = try matrix(w1bName), w2a = try matrix(w2aName), w2b = try matrix(w2bName)
            let (r1, r2) = (w1a.cols, w2a.cols)
            let s = Float(scale)
            if r1 * r2 >= min(rows, cols) {
                let p1 = try Linalg.multiply(w1a, w1b), p2 = try Linalg.multiply(w2a, w2b)
                var d = p1
                for i in 0..<d.values.count { d.values[i] = p1.values[i] * p2.values[i] * s }
                return AdapterDeltaModule.dense(d)
            }
            var u = Matrix(rows: rows, cols: r1 * r2), v = Matrix(rows: r1 * r2, cols: cols)
            for i in 0..<rows { for p in 0..<r1 { for q in 0..<r2 { u[i, p * r2 + q] = w1a[i, p] * w2a[i, q] } } }
            for p in 0..<r1 { for q in 0..<r2 { for j in 0..<cols { v[p * r2 + q, j] = w1b[p, j] * w2b[q, j] * s } } }
            return LoRAFactors(b: u, a: v)
        case .kronecker(let w1, let w2):
            let (u1, v1) = try kronParts(w1, matrix)
            let (u2, v2) = try kronParts(w2, matrix)
            let k = u1.cols * u2.cols
            if k >= min(rows, cols) {
                let d = AdapterDeltaModule.kron(try Linalg.multiply(u1, v1), try Linalg.multiply(u2, v2), scale: Float(scale))
                return AdapterDeltaModule.dense(d)
            }
            return LoRAFactors(b: AdapterDeltaModule.kron(u1, u2, scale: 1), a: AdapterDeltaModule.kron(v1, v2, scale: Float(scale)))
        case .scaleVector:
            throw ScalpelError.invalid(file: ckpt.path, tensor: weightName, reason: "is an IA3 module: it scales the base weight, so its change cannot be written as a LoRA update without the base (merge it, then use extract-lora)")
        }
    }

    /// The IA3 vector (length out for rows, in for columns).
    public func scaleVector(_ ckpt: Checkpoint) throws -> [Float] {
        guard case .scaleVector(let name, _) = rule else { return [] }
        return try FloatConversion.floats(try ckpt.view(name))
    }

    /// A LoKr factor as (U, V) with W = U V: a product's two parts, or a full W as `W I` / `I W`.
    private func kronParts(_ f: KronFactor, _ matrix: (String) throws -> Matrix) throws -> (Matrix, Matrix) {
        switch f {
        case .product(let a, let b):
            return (try matrix(a), try matrix(b))
        case .full(let name):
            let w = try matrix(name)
            return w.rows <= w.cols ? (AdapterDeltaModule.identity(w.rows), w) : (w, AdapterDeltaModule.identity(w.cols))
        }
    }

    static func identity(_ n: Int) -> Matrix {
        var m = Matrix(rows: n, cols: n)
        for i in 0..<n { m[i, i] = 1 }
        return m
    }

    /// `kron(x, y) * scale`: block (i, j) is `x[i, j] * y`.
    static func kron(_ x: Matrix, _ y: Matrix, scale: Float) -> Matrix {
        var out = Matrix(rows: x.rows * y.rows, cols: x.cols * y.cols)
        let cols = out.cols
        out.values.withUnsafeMutableBufferPointer { o in
            for i in 0..<x.rows {
                for j in 0..<x.cols {
                    let f = x.values[i * x.cols + j] * scale
                    for p in 0..<y.rows {
                        let base = (i * y.rows + p) * cols + j * y.cols
                        for q in 0..<y.cols { o[base + q] = f * y.values[p * y.cols + q] }
                    }
                }
            }
        }
        return out
    }

    /// Exact factors of a dense delta: `D = I @ D` (rows <= cols) or `D @ I`.
    static func dense(_ d: Matrix) -> LoRAFactors {
        d.rows <= d.cols ? LoRAFactors(b: identity(d.rows), a: d) : LoRAFactors(b: d, a: identity(d.cols))
    }
}
