import CBLAS

extension Linalg {
    /// An orthonormal basis of the column space of `a` (rows >= cols): the `rows x cols` factor Q of
    /// the Householder QR decomposition (`LAPACKE_sgeqrf` then `LAPACKE_sorgqr`), so `Q^T Q = I` and,
    /// when `a` has full column rank, `Q Q^T a = a`. Rank-deficient inputs still give orthonormal
    /// columns. Runs on one thread. Throws `ScalpelError.invalid` when rows < cols, a dimension does not
    /// fit in 32 bits, the input holds NaN (LAPACKE's check) or LAPACK reports an error.
    public static func orthonormalizeColumns(_ a: Matrix) throws -> Matrix {
        guard a.rows >= a.cols else {
            throw ScalpelError.invalid(
                file: nil, tensor: nil, reason: "QR needs rows >= columns, got a \(a.rows) x \(a.cols) matrix")
        }
        if a.cols == 0 { return a }
        let m = try lapackInt(a.rows, "rows"), n = try lapackInt(a.cols, "columns")
        _ = singleThreadedBLAS
        var q = a
        var tau = [Float](repeating: 0, count: a.cols)
        let info = q.values.withUnsafeMutableBufferPointer { pq in
            tau.withUnsafeMutableBufferPointer { pt in
                let factored = LAPACKE_sgeqrf(LAPACK_ROW_MAJOR, m, n, pq.baseAddress, n, pt.baseAddress)
                if factored != 0 { return factored }
                return LAPACKE_sorgqr(LAPACK_ROW_MAJOR, m, n, n, pq.baseAddress, n, pt.baseAddress)
            }
        }
        guard info == 0 else {
            throw ScalpelError.invalid(
                file: nil, tensor: nil, reason: "QR of a \(a.rows) x \(a.cols) matrix failed (LAPACK info \(info))")
        }
        return q
    }
}
