import CBLAS

extension Linalg {
    /// The thin SVD of `a` (m x n) by LAPACK's divide and conquer `sgesdd` (jobz 'S'): U m x r,
    /// r = min(m, n) singular values in non-increasing order, Vt r x n. Runs on one thread.
    ///
    /// Throws `ScalpelError.invalid` when the matrix is empty, holds NaN or infinity, is too large for
    /// LAPACK's 32-bit workspace sizes (min(m, n) above about 20,000), or when sgesdd does not converge.
    public static func exactSVD(_ a: Matrix) throws -> SingularValueDecomposition {
        guard a.rows > 0 && a.cols > 0 else {
            throw ScalpelError.invalid(file: nil, tensor: nil, reason: "SVD of an empty \(a.rows) x \(a.cols) matrix")
        }
        let normSquared = sumOfSquares(a)
        guard normSquared.isFinite else {
            throw ScalpelError.invalid(file: nil, tensor: nil, reason: "SVD input holds NaN or infinity")
        }
        // The row-major m x n buffer is the column-major n x m matrix A^T = V S U^T, so LAPACK, asked in
        // column-major order for the SVD of A^T, writes V (n x r column-major, i.e. Vt row-major) into
        // its U argument and U^T (r x m column-major, i.e. U row-major) into its VT argument: no copies.
        let r = min(a.rows, a.cols), large = max(a.rows, a.cols)
        // sgesdd's workspace is about 4 r^2 + 7 r + max(m, n) elements and must fit in a 32-bit int.
        guard 5 * r * r + 8 * r + large + 4096 <= Int(Int32.max) else {
            throw ScalpelError.invalid(
                file: nil, tensor: nil,
                reason: "SVD of a \(a.rows) x \(a.cols) matrix needs a LAPACK workspace beyond 32-bit sizes")
        }
        let lm = try lapackInt(a.cols, "columns"), ln = try lapackInt(a.rows, "rows"), lr = try lapackInt(r, "rank")
        _ = singleThreadedBLAS

        var work = a.values
        var s = [Float](repeating: 0, count: r)
        var vt = [Float](repeating: 0, count: r * a.cols)  // LAPACK's U: n x r column-major
        var u = [Float](repeating: 0, count: a.rows * r)  // LAPACK's VT: r x m column-major
        var iwork = [Int32](repeating: 0, count: 8 * r)
        let info = work.withUnsafeMutableBufferPointer { pa in
            s.withUnsafeMutableBufferPointer { ps in
                vt.withUnsafeMutableBufferPointer { pv in
                    u.withUnsafeMutableBufferPointer { pu in
                        iwork.withUnsafeMutableBufferPointer { pi -> Int32 in
                            var query: Float = 0
                            let asked = LAPACKE_sgesdd_work(
                                LAPACK_COL_MAJOR, CChar(UInt8(ascii: "S")), lm, ln, pa.baseAddress, lm, ps.baseAddress,
                                pv.baseAddress, lm, pu.baseAddress, lr, &query, -1, pi.baseAddress)
                            if asked != 0 { return asked }
                            // The size comes back as a Float (24-bit mantissa): round it up generously.
                            let lwork = Int(Double(query) * (1 + 1e-6)) + 1
                            guard let lwork32 = Int32(exactly: lwork) else { return Int32.min }
                            var scratch = [Float](repeating: 0, count: lwork)
                            return scratch.withUnsafeMutableBufferPointer { pw in
                                LAPACKE_sgesdd_work(
                                    LAPACK_COL_MAJOR, CChar(UInt8(ascii: "S")), lm, ln, pa.baseAddress, lm,
                                    ps.baseAddress, pv.baseAddress, lm, pu.baseAddress, lr, pw.baseAddress, lwork32,
                                    pi.baseAddress)
                            }
                        }
                    }
                }
            }
        }
        guard info == 0 else {
            let why = info == Int32.min ? "needs a LAPACK workspace beyond 32-bit sizes" : "failed (LAPACK sgesdd info \(info))"
            throw ScalpelError.invalid(file: nil, tensor: nil, reason: "SVD of a \(a.rows) x \(a.cols) matrix \(why)")
        }
        return SingularValueDecomposition(
            u: Matrix(rows: a.rows, cols: r, values: u), singularValues: s,
            vt: Matrix(rows: r, cols: a.cols, values: vt), frobeniusNormSquared: normSquared)
    }
}
