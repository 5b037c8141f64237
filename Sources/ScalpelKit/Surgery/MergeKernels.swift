import CBLAS

/// The f32 arithmetic of merging an adapter into a weight, in place.
enum MergeKernels {
    /// `w += scale * (B @ A)`, or `w += scale * (B @ A)^T` when `transposed`, with OpenBLAS `sgemm`
    /// (beta 1, so the product is accumulated straight into the weight without a temporary).
    ///
    /// - Parameters:
    ///   - w: `rows * cols` floats, row-major [rows, cols] (or [cols, rows] when transposed).
    ///   - b: [rows, rank] row-major. a: [rank, cols] row-major.
    ///   Dimensions must fit 32-bit BLAS integers (checked by the caller).
    static func addProduct(into w: UnsafeMutablePointer<Float>, b: UnsafePointer<Float>, a: UnsafePointer<Float>,
                           rows: Int, cols: Int, rank: Int, scale: Float, transposed: Bool) {
        guard rank > 0, rows > 0, cols > 0 else { return }
        if transposed {
            // [cols, rows] += scale * A^T [cols, rank] @ B^T [rank, rows]
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, Int32(cols), Int32(rows), Int32(rank),
                        scale, a, Int32(cols), b, Int32(rank), 1, w, Int32(rows))
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(cols), Int32(rank),
                        scale, b, Int32(rank), a, Int32(cols), 1, w, Int32(cols))
        }
    }

    /// DoRA's renormalization: each output feature j (row j of [rows, cols], or column j of the
    /// transposed [cols, rows] layout) is multiplied by `magnitude[j] / ||feature j||_2`.
    ///
    /// As PEFT: the norm is rounded to f32 before the division, and a zero norm gives infinities or NaN.
    /// Sums of squares are accumulated in f64.
    static func rescaleToMagnitude(_ w: UnsafeMutableBufferPointer<Float>, magnitude: [Float], rows: Int, cols: Int, transposed: Bool) {
        var sums = [Double](repeating: 0, count: rows)
        if transposed {
            for i in 0..<cols {
                let row = w.baseAddress! + i * rows
                for j in 0..<rows { sums[j] += Double(row[j]) * Double(row[j]) }
            }
        } else {
            let box = UncheckedBox(w.baseAddress!)
            sums.withUnsafeMutableBufferPointer { s in
                let out = UncheckedBox(s.baseAddress!)
                parallelChunks(count: rows, chunk: 64) { r in
                    for j in r {
                        let row = box.value + j * cols
                        var acc = 0.0
                        for i in 0..<cols { acc += Double(row[i]) * Double(row[i]) }
                        out.value[j] = acc
                    }
                }
            }
        }
        let factors = (0..<rows).map { magnitude[$0] / Float(sums[$0].squareRoot()) }
        if transposed {
            for i in 0..<cols {
                let row = w.baseAddress! + i * rows
                for j in 0..<rows { row[j] *= factors[j] }
            }
        } else {
            for j in 0..<rows {
                let row = w.baseAddress! + j * cols
                let f = factors[j]
                for i in 0..<cols { row[i] *= f }
            }
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
