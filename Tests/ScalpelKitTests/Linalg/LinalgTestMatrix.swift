import ScalpelKit

/// Matrices with known singular values, and exact (Double) comparisons, for the Linalg tests.
enum LinalgTestMatrix {
    /// A rows x cols matrix with orthonormal columns (rows >= cols), from a seeded Gaussian.
    static func orthonormal(rows: Int, cols: Int, seed: UInt64) throws -> Matrix {
        try Linalg.orthonormalizeColumns(Matrix.standardNormal(rows: rows, cols: cols, seed: seed))
    }

    /// `U diag(spectrum) V^T` with random orthonormal U (rows x r) and V (cols x r), r = spectrum.count.
    static func withSpectrum(_ spectrum: [Float], rows: Int, cols: Int, seed: UInt64) throws -> Matrix {
        let u = try orthonormal(rows: rows, cols: spectrum.count, seed: seed)
        let v = try orthonormal(rows: cols, cols: spectrum.count, seed: seed &+ 1)
        var us = u
        for i in 0..<rows {
            for j in 0..<spectrum.count { us[i, j] *= spectrum[j] }
        }
        return try Linalg.multiply(us, v, transposeB: true)
    }

    /// `U diag(S) Vt` of a decomposition.
    static func reconstruct(_ svd: SingularValueDecomposition) throws -> Matrix {
        let factors = svd.loraFactors(split: .intoB)
        return try Linalg.multiply(factors.b, factors.a)
    }

    /// `||a - b||_F / ||a||_F`, accumulated in Double.
    static func relativeDifference(_ a: Matrix, _ b: Matrix) -> Double {
        precondition(a.rows == b.rows && a.cols == b.cols)
        var diff = 0.0, norm = 0.0
        for (x, y) in zip(a.values, b.values) {
            diff += (Double(x) - Double(y)) * (Double(x) - Double(y))
            norm += Double(x) * Double(x)
        }
        return (diff / norm).squareRoot()
    }

    /// The optimal relative error of a rank-k approximation: `sqrt(sum_{i>=k} s_i^2 / sum s_i^2)`.
    static func optimalError(_ spectrum: [Float], rank k: Int) -> Double {
        let energies = spectrum.map { Double($0) * Double($0) }
        return (energies[k...].reduce(0, +) / energies.reduce(0, +)).squareRoot()
    }

    /// The largest `|(Q^T Q)_ij - delta_ij|`: how far the columns of `q` are from orthonormal.
    static func orthonormalityDefect(columnsOf q: Matrix) throws -> Float {
        try identityDefect(Linalg.multiply(q, q, transposeA: true))
    }

    /// The largest `|(Q Q^T)_ij - delta_ij|`: how far the rows of `q` are from orthonormal.
    static func orthonormalityDefect(rowsOf q: Matrix) throws -> Float {
        try identityDefect(Linalg.multiply(q, q, transposeB: true))
    }

    private static func identityDefect(_ gram: Matrix) -> Float {
        var worst: Float = 0
        for i in 0..<gram.rows {
            for j in 0..<gram.cols { worst = max(worst, abs(gram[i, j] - (i == j ? 1 : 0))) }
        }
        return worst
    }
}
