/// Parameters of the randomized SVD.
public struct RandomizedSVDOptions: Sendable, Equatable {
    /// Extra sketch columns p beyond the rank (>= 0).
    public var oversampling: Int
    /// Power iterations q (>= 0), each re-orthonormalized.
    public var powerIterations: Int
    /// Seed of the Gaussian test matrix: the same seed gives the same bytes.
    public var seed: UInt64
    /// Threads for the matrix products (>= 1). Does not change the result.
    public var threads: Int
    /// First rank tried by the error-targeted search (>= 1), doubled until the target holds.
    public var initialRank: Int

    public init(
        oversampling: Int = 8, powerIterations: Int = 2, seed: UInt64 = 0,
        threads: Int = Linalg.defaultThreadCount, initialRank: Int = 16
    ) {
        self.oversampling = oversampling
        self.powerIterations = powerIterations
        self.seed = seed
        self.threads = threads
        self.initialRank = initialRank
    }
}

/// Truncated SVD by the randomized range finder of Halko, Martinsson and Tropp (2011).
///
/// For A (m x n) and a sketch of l = k + p columns: Omega = Gaussian n x l (seeded), Y = A Omega;
/// q times: Q = qr(Y), Z = A^T Q, Q' = qr(Z), Y = A Q'; then Q = qr(Y), B = Q^T A (l x n),
/// B = Ub S Vt (sgesdd), U = Q Ub, keeping the first k triplets. When l >= min(m, n) the exact SVD is
/// used instead. The output bytes depend only on A, the rank and the options other than `threads`.
public enum RandomizedSVD {
    /// The top `rank` singular triplets of `a` (rank clamped to min(m, n)).
    ///
    /// Throws `ScalpelError.invalid` for an empty matrix, NaN or infinity in `a`, rank < 1, invalid
    /// options, dimensions beyond 32-bit LAPACK sizes, or a LAPACK failure.
    public static func decompose(
        _ a: Matrix, rank: Int, options: RandomizedSVDOptions = RandomizedSVDOptions()
    ) throws -> SingularValueDecomposition {
        let normSquared = try validate(a, options: options)
        try RankRule.fixed(rank).validate()
        let k = min(rank, a.rows, a.cols)
        let columns = k + options.oversampling
        if columns >= min(a.rows, a.cols) { return try Linalg.exactSVD(a).truncated(to: k) }
        return try sketch(a, columns: columns, options: options).leading(k, normSquared: normSquared, threads: options.threads)
    }

    /// The truncation chosen by `rule`, capped at `maxRank` (>= 1) and min(m, n).
    ///
    /// For `energy` and `maxError` the sketch grows: rank `options.initialRank` (capped) is tried, and
    /// doubled while the smallest rank meeting the target among the sketch's values exceeds the rank
    /// tried, until the cap. The test uses `||A||_F^2 - sum s_i^2` with the sketch's own singular values,
    /// which is the exact error of the factorization returned, so a met target holds for the output.
    /// If even the cap misses the target, the cap is returned. Throws as `decompose(_:rank:options:)`,
    /// and for an invalid rule or maxRank < 1.
    public static func decompose(
        _ a: Matrix, rule: RankRule, maxRank: Int, options: RandomizedSVDOptions = RandomizedSVDOptions()
    ) throws -> SingularValueDecomposition {
        try rule.validate()
        guard maxRank >= 1 else {
            throw ScalpelError.invalid(file: nil, tensor: nil, reason: "maximum rank \(maxRank) is below 1")
        }
        if case .fixed(let k) = rule { return try decompose(a, rank: min(k, maxRank), options: options) }
        let normSquared = try validate(a, options: options)
        let cap = min(maxRank, a.rows, a.cols)
        var trial = min(options.initialRank, cap)
        while true {
            let columns = trial + options.oversampling
            if columns >= min(a.rows, a.cols) {
                return try Linalg.exactSVD(a).truncated(rule: rule, maxRank: cap)
            }
            let sketch = try sketch(a, columns: columns, options: options)
            let values = sketch.small.singularValues
            if let k = rule.smallestRank(singularValues: values, frobeniusNormSquared: normSquared), k <= trial {
                return try sketch.leading(k, normSquared: normSquared, threads: options.threads)
            }
            if trial == cap { return try sketch.leading(cap, normSquared: normSquared, threads: options.threads) }
            trial = min(2 * trial, cap)
        }
    }

    /// Checks the input and options; returns `||a||_F^2`.
    private static func validate(_ a: Matrix, options: RandomizedSVDOptions) throws -> Double {
        guard a.rows > 0 && a.cols > 0 else {
            throw ScalpelError.invalid(file: nil, tensor: nil, reason: "SVD of an empty \(a.rows) x \(a.cols) matrix")
        }
        guard options.oversampling >= 0, options.powerIterations >= 0, options.threads >= 1, options.initialRank >= 1
        else {
            throw ScalpelError.invalid(file: nil, tensor: nil, reason: "invalid randomized SVD options \(options)")
        }
        let normSquared = Linalg.sumOfSquares(a)
        guard normSquared.isFinite else {
            throw ScalpelError.invalid(file: nil, tensor: nil, reason: "SVD input holds NaN or infinity")
        }
        return normSquared
    }

    /// The range finder and the SVD of the projected matrix, for `columns` < min(m, n).
    private static func sketch(_ a: Matrix, columns: Int, options: RandomizedSVDOptions) throws -> Sketch {
        let threads = options.threads
        let omega = Matrix.standardNormal(rows: a.cols, cols: columns, seed: options.seed)
        var y = try Linalg.multiply(a, omega, threads: threads)
        for _ in 0..<options.powerIterations {
            let q = try Linalg.orthonormalizeColumns(y)
            let z = try Linalg.multiply(a, q, transposeA: true, threads: threads)
            y = try Linalg.multiply(a, try Linalg.orthonormalizeColumns(z), threads: threads)
        }
        let basis = try Linalg.orthonormalizeColumns(y)
        let projected = try Linalg.multiply(basis, a, transposeA: true, threads: threads)
        return Sketch(basis: basis, small: try Linalg.exactSVD(projected))
    }

    /// An orthonormal basis Q (m x l) of the sketched range and the SVD of B = Q^T A.
    private struct Sketch {
        let basis: Matrix
        let small: SingularValueDecomposition

        /// U = Q Ub, S, Vt restricted to the first `k` triplets.
        func leading(_ k: Int, normSquared: Double, threads: Int) throws -> SingularValueDecomposition {
            let u = try Linalg.multiply(basis, small.u.leadingColumns(k), threads: threads)
            return SingularValueDecomposition(
                u: u, singularValues: Array(small.singularValues[0..<k]), vt: small.vt.leadingRows(k),
                frobeniusNormSquared: normSquared)
        }
    }
}
