import Foundation

/// The truncation step of the `svd` stacking methods.
enum StackSVD {
    /// The exact thin SVD of `b @ a` (b: m x r, a: r x n) from its factors, without forming the m x n
    /// product when r < min(m, n): with the Householder QR factorizations b = Qb Rb and a^T = Qa Ra,
    /// `b a = Qb (Rb Ra^T) Qa^T`, so the SVD of the r x r core C = Rb Ra^T = (Qb^T b)(a Qa) = Uc S Vc^T
    /// gives `b a = (Qb Uc) S (Vc^T Qa^T)`. All r singular values are those of `b a`, so truncating the
    /// result is the optimal low-rank approximation and its `relativeError` is exact (up to f32 rounding).
    /// When r >= min(m, n) the product is decomposed directly.
    static func ofProduct(b: Matrix, a: Matrix) throws -> SingularValueDecomposition {
        if b.cols >= min(b.rows, a.cols) { return try Linalg.exactSVD(try Linalg.multiply(b, a)) }
        let qb = try Linalg.orthonormalizeColumns(b)
        let qa = try Linalg.orthonormalizeColumns(transposed(a))
        let core = try Linalg.multiply(try Linalg.multiply(qb, b, transposeA: true), try Linalg.multiply(a, qa))
        let small = try Linalg.exactSVD(core)
        return SingularValueDecomposition(
            u: try Linalg.multiply(qb, small.u), singularValues: small.singularValues,
            vt: try Linalg.multiply(small.vt, qa, transposeB: true), frobeniusNormSquared: small.frobeniusNormSquared)
    }

    /// `m^T`.
    static func transposed(_ m: Matrix) -> Matrix {
        var out = [Float](repeating: 0, count: m.values.count)
        for i in 0..<m.rows {
            for j in 0..<m.cols { out[j * m.rows + i] = m.values[i * m.cols + j] }
        }
        return Matrix(rows: m.cols, cols: m.rows, values: out)
    }
}
