import CBLAS
import Dispatch

extension Linalg {
    /// Rows (or columns) of the output computed by one single-threaded `cblas_sgemm` call.
    static let productBlock = 256
    /// Products with fewer multiply-adds than this run as one call on the calling thread.
    static let parallelProductThreshold = 1 << 22

    /// `op(a) * op(b)` with `op` the identity or the transpose (`cblas_sgemm`, row-major, f32).
    ///
    /// The output is split along its longer side into fixed blocks of `productBlock` rows or columns,
    /// each computed by one single-threaded sgemm call, spread over `threads` threads. Block boundaries
    /// depend only on the shapes, so the result is bit-identical for every `threads` >= 1.
    /// Throws `ScalpelError.invalid` when the inner dimensions differ or a dimension does not fit in
    /// 32 bits. NaN and infinity propagate as in IEEE arithmetic.
    public static func multiply(
        _ a: Matrix, _ b: Matrix, transposeA: Bool = false, transposeB: Bool = false,
        threads: Int = Linalg.defaultThreadCount
    ) throws -> Matrix {
        let m = transposeA ? a.cols : a.rows
        let k = transposeA ? a.rows : a.cols
        let kB = transposeB ? b.cols : b.rows
        let n = transposeB ? b.rows : b.cols
        guard k == kB else {
            throw ScalpelError.invalid(
                file: nil, tensor: nil, reason: "cannot multiply a \(m) x \(k) matrix by a \(kB) x \(n) matrix")
        }
        var c = Matrix(rows: m, cols: n)
        if m == 0 || n == 0 || k == 0 { return c }
        let dims = (m: try lapackInt(m, "rows"), n: try lapackInt(n, "columns"), k: try lapackInt(k, "inner dimension"))
        let lda = try lapackInt(a.cols, "leading dimension"), ldb = try lapackInt(b.cols, "leading dimension")
        _ = singleThreadedBLAS

        let splitRows = m >= n
        let blocks = m * n * k < parallelProductThreshold ? 1 : ((splitRows ? m : n) + productBlock - 1) / productBlock
        let blockSize = blocks == 1 ? (splitRows ? m : n) : productBlock
        let opA = transposeA ? CblasTrans : CblasNoTrans, opB = transposeB ? CblasTrans : CblasNoTrans
        a.values.withUnsafeBufferPointer { pa in
            b.values.withUnsafeBufferPointer { pb in
                c.values.withUnsafeMutableBufferPointer { pc in
                    let p = ProductPointers(a: pa.baseAddress!, b: pb.baseAddress!, c: pc.baseAddress!)
                    forEachBlock(count: blocks, threads: threads) { block in
                        let start = block * blockSize
                        let size = Int32(min(blockSize, (splitRows ? m : n) - start))
                        if splitRows {
                            // Rows start..<start+size of op(a), all of op(b).
                            let aStart = transposeA ? start : start * a.cols
                            cblas_sgemm(
                                CblasRowMajor, opA, opB, size, dims.n, dims.k, 1, p.a + aStart, lda, p.b, ldb,
                                0, p.c + start * n, dims.n)
                        } else {
                            // All of op(a), columns start..<start+size of op(b).
                            let bStart = transposeB ? start * b.cols : start
                            cblas_sgemm(
                                CblasRowMajor, opA, opB, dims.m, size, dims.k, 1, p.a, lda, p.b + bStart, ldb,
                                0, p.c + start, dims.n)
                        }
                    }
                }
            }
        }
        return c
    }

    /// Calls `body(0..<count)` with block `i` run by worker `i % threads`: which thread runs a block
    /// never changes what the block computes.
    private static func forEachBlock(count: Int, threads: Int, _ body: @Sendable (Int) -> Void) {
        let workers = max(1, min(threads, count))
        if workers == 1 {
            for block in 0..<count { body(block) }
            return
        }
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            for block in stride(from: worker, to: count, by: workers) { body(block) }
        }
    }
}

/// The operand pointers of one product, shared by the blocks (each block writes a disjoint part of `c`).
/// `@unchecked Sendable`: `a` and `b` are only read, and each block writes its own rows or columns of `c`.
private struct ProductPointers: @unchecked Sendable {
    let a: UnsafePointer<Float>
    let b: UnsafePointer<Float>
    let c: UnsafeMutablePointer<Float>
}
