/// A (possibly truncated) singular value decomposition `A ≈ U diag(S) Vt` of an m x n matrix A.
public struct SingularValueDecomposition: Sendable, Equatable {
    /// m x r, orthonormal columns (left singular vectors).
    public let u: Matrix
    /// The r singular values, non-negative and non-increasing.
    public let singularValues: [Float]
    /// r x n, orthonormal rows (right singular vectors, transposed).
    public let vt: Matrix
    /// `||A||_F^2` of the decomposed matrix (accumulated in Double), for the error of the truncation.
    public let frobeniusNormSquared: Double

    public init(u: Matrix, singularValues: [Float], vt: Matrix, frobeniusNormSquared: Double) {
        precondition(u.cols == singularValues.count && vt.rows == singularValues.count, "inconsistent SVD factors")
        self.u = u
        self.singularValues = singularValues
        self.vt = vt
        self.frobeniusNormSquared = frobeniusNormSquared
    }

    /// The number of singular triplets kept (r).
    public var rank: Int { singularValues.count }

    /// `||A - U diag(S) Vt||_F / ||A||_F`, computed as `sqrt(max(0, ||A||_F^2 - sum s_i^2)) / ||A||_F`
    /// (0 when A = 0). The identity holds whenever `U diag(S) Vt` is A projected onto orthonormal
    /// bases, as for truncations of `Linalg.exactSVD` and every `RandomizedSVD` result. Being a
    /// difference of squares, values below about 1e-3 are dominated by f32 rounding.
    public var relativeError: Double {
        guard frobeniusNormSquared > 0 else { return 0 }
        return (Self.tailEnergy(singularValues, rank: rank, frobeniusNormSquared: frobeniusNormSquared)
            / frobeniusNormSquared).squareRoot()
    }

    /// The first `k` singular triplets (`k` in 0...rank).
    public func truncated(to k: Int) -> SingularValueDecomposition {
        precondition(k >= 0 && k <= rank, "cannot keep \(k) of \(rank) singular triplets")
        if k == rank { return self }
        return SingularValueDecomposition(
            u: u.leadingColumns(k), singularValues: Array(singularValues[0..<k]), vt: vt.leadingRows(k),
            frobeniusNormSquared: frobeniusNormSquared)
    }

    /// The truncation chosen by `rule` among these singular values, capped at `maxRank`
    /// (see `RankRule.rank(singularValues:frobeniusNormSquared:maxRank:)`).
    public func truncated(rule: RankRule, maxRank: Int) -> SingularValueDecomposition {
        truncated(to: rule.rank(singularValues: singularValues, frobeniusNormSquared: frobeniusNormSquared, maxRank: maxRank))
    }

    /// `max(0, ||A||_F^2 - sum_{i < rank} s_i^2)`, summed in Double.
    static func tailEnergy(_ s: [Float], rank: Int, frobeniusNormSquared: Double) -> Double {
        var kept = 0.0
        for i in 0..<rank { kept += Double(s[i]) * Double(s[i]) }
        return max(0, frobeniusNormSquared - kept)
    }
}
