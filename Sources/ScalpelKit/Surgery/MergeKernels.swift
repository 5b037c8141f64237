import CBLAS

/// The f32 arithmetic of merging an adapter into a weight, in place, on a range of the weight's rows.
enum MergeKernels {
    /// Adds `scale * (B @ A)` to rows `rows` of a weight held in `w` (those rows only, row-major).
    ///
    /// The product P = B @ A is [productRows, productCols] (B: [productRows, rank], A: [rank, productCols],
    /// row-major). Not transposed, the weight is P-shaped and its row i gets `scale * B[i, :] @ A`;
    /// transposed, the weight is [productCols, productRows] and its row i gets `scale * A[:, i]^T @ B^T`.
    /// One OpenBLAS `sgemm` with beta 1 accumulates straight into `w`, on the calling thread (OpenBLAS
    /// is kept single-threaded by `Linalg`; callers parallelize over fixed row chunks). Dimensions must
    /// fit 32-bit BLAS integers (checked by the caller).
    static func addProduct(into w: UnsafeMutablePointer<Float>, rows: Range<Int>, b: UnsafePointer<Float>, a: UnsafePointer<Float>,
                           productRows: Int, productCols: Int, rank: Int, scale: Float, transposed: Bool) {
        guard rank > 0, !rows.isEmpty, productRows > 0, productCols > 0 else { return }
        _ = Linalg.singleThreadedBLAS
        let n = Int32(rows.count)
        if transposed {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, n, Int32(productRows), Int32(rank),
                        scale, a + rows.lowerBound, Int32(productCols), b, Int32(rank), 1, w, Int32(productRows))
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, Int32(productCols), Int32(rank),
                        scale, b + rows.lowerBound * rank, Int32(rank), a, Int32(productCols), 1, w, Int32(productCols))
        }
    }

    /// DoRA's renormalization when output features are rows: row j of `w` (`cols` values) is multiplied
    /// by `magnitude[j] / ||row j||_2`.
    ///
    /// As PEFT: the norm is rounded to f32 before the division, and a zero norm gives infinities or NaN.
    /// Sums of squares are accumulated in f64.
    static func rescaleRowsToMagnitude(_ w: UnsafeMutableBufferPointer<Float>, magnitude: [Float], cols: Int) {
        for j in 0..<magnitude.count {
            let row = UnsafeMutableBufferPointer(rebasing: w[(j * cols)..<((j + 1) * cols)])
            var sum = 0.0
            for x in row { sum += Double(x) * Double(x) }
            let f = magnitude[j] / Float(sum.squareRoot())
            for i in row.indices { row[i] *= f }
        }
    }

    /// DoRA's renormalization when output features are columns (fan_in_fan_out layers, embeddings):
    /// column j of the [rows, cols] `w` is multiplied by `magnitude[j] / ||column j||_2` (rounding as
    /// `rescaleRowsToMagnitude`).
    static func rescaleColumnsToMagnitude(_ w: UnsafeMutableBufferPointer<Float>, magnitude: [Float], rows: Int, cols: Int) {
        var sums = [Double](repeating: 0, count: cols)
        for i in 0..<rows {
            for j in 0..<cols { sums[j] += Double(w[i * cols + j]) * Double(w[i * cols + j]) }
        }
        let factors = (0..<cols).map { magnitude[$0] / Float(sums[$0].squareRoot()) }
        for i in 0..<rows {
            for j in 0..<cols { w[i * cols + j] *= factors[j] }
        }
    }

    /// `w += weight * (t - w)`: `t` itself when weight is 1 (copied exactly), `w` when weight is 0.
    static func interpolate(_ w: UnsafeMutableBufferPointer<Float>, toward t: UnsafeBufferPointer<Float>, weight: Float) {
        if weight == 1 {
            _ = w.update(fromContentsOf: t)
            return
        }
        for i in 0..<w.count { w[i] += weight * (t[i] - w[i]) }
    }

    /// `v += scale * x`, elementwise (bias updates).
    static func addScaled(_ v: UnsafeMutableBufferPointer<Float>, _ x: [Float], scale: Float) {
        for i in 0..<v.count { v[i] += x[i] * scale }
    }
}
