/// How the singular values are shared between the two LoRA factors.
public enum LoRAFactorSplit: Sendable, Equatable {
    /// `B = U_k diag(S_k)`, `A = Vt_k`: A has orthonormal rows.
    case intoB
    /// `B = U_k diag(sqrt(S_k))`, `A = diag(sqrt(S_k)) Vt_k` (mergekit's split): balanced norms.
    case balanced
}

/// A low-rank factorization `delta ≈ B A` in PEFT's layout: `b` is out x r (`lora_B.weight`), `a` is
/// r x in (`lora_A.weight`), for a delta of shape out x in (row-major, like the base weight).
public struct LoRAFactors: Sendable, Equatable {
    public let b: Matrix
    public let a: Matrix

    public init(b: Matrix, a: Matrix) {
        precondition(b.cols == a.rows, "LoRA factors \(b.rows) x \(b.cols) and \(a.rows) x \(a.cols) do not chain")
        self.b = b
        self.a = a
    }

    /// The rank r.
    public var rank: Int { a.rows }
}

extension SingularValueDecomposition {
    /// The LoRA factors of this (truncated) decomposition, `B A = U diag(S) Vt` up to f32 rounding.
    public func loraFactors(split: LoRAFactorSplit = .intoB) -> LoRAFactors {
        switch split {
        case .intoB:
            return LoRAFactors(b: Self.scalingColumns(u, by: singularValues), a: vt)
        case .balanced:
            let roots = singularValues.map { $0.squareRoot() }
            return LoRAFactors(b: Self.scalingColumns(u, by: roots), a: Self.scalingRows(vt, by: roots))
        }
    }

    /// `m diag(d)`: column j multiplied by d[j].
    private static func scalingColumns(_ m: Matrix, by d: [Float]) -> Matrix {
        var out = m
        out.values.withUnsafeMutableBufferPointer { p in
            for i in 0..<m.rows {
                for j in 0..<m.cols { p[i * m.cols + j] *= d[j] }
            }
        }
        return out
    }

    /// `diag(d) m`: row i multiplied by d[i].
    private static func scalingRows(_ m: Matrix, by d: [Float]) -> Matrix {
        var out = m
        out.values.withUnsafeMutableBufferPointer { p in
            for i in 0..<m.rows {
                for j in 0..<m.cols { p[i * m.cols + j] *= d[i] }
            }
        }
        return out
    }
}

extension LoRAFactors {
    /// The factors of the transposed delta: (B A)^T = A^T B^T, so B' = A^T and A' = B^T.
    public var transposed: LoRAFactors {
        LoRAFactors(b: a.transposed, a: b.transposed)
    }
}
