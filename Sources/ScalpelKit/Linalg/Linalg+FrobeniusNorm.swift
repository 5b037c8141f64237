extension Linalg {
    /// Elements per partial sum of `sumOfSquares`: summed in Float lanes, then added in Double.
    static let sumOfSquaresChunk = 4096

    /// `sum x_i^2`: each chunk of 4096 elements is summed in `SIMD16<Float>` lanes, the chunk sums are
    /// added in Double (a chunk whose Float sum overflows is redone in Double), so the relative error
    /// stays near 1e-7 and any finite input gives a finite result. NaN if any element is NaN, +infinity
    /// if any is infinite and none is NaN. The summation order depends only on the count.
    public static func sumOfSquares(_ x: UnsafeBufferPointer<Float>) -> Double {
        guard let base = x.baseAddress else { return 0 }
        var total = 0.0
        var start = 0
        while start < x.count {
            let chunk = UnsafeBufferPointer(start: base + start, count: min(sumOfSquaresChunk, x.count - start))
            let partial = floatSumOfSquares(chunk)
            total += partial.isInfinite ? doubleSumOfSquares(chunk) : Double(partial)
            start += chunk.count
        }
        return total
    }

    /// `||a||_F^2`, see `sumOfSquares(_:)`.
    public static func sumOfSquares(_ a: Matrix) -> Double {
        a.values.withUnsafeBufferPointer { sumOfSquares($0) }
    }

    /// The Frobenius norm `sqrt(sum a_ij^2)` of `a` (see `sumOfSquares(_:)`).
    public static func frobeniusNorm(_ a: Matrix) -> Double {
        sumOfSquares(a).squareRoot()
    }

    /// Sum of squares in two `SIMD16<Float>` accumulators, then the lanes, then the scalar tail.
    private static func floatSumOfSquares(_ x: UnsafeBufferPointer<Float>) -> Float {
        let raw = UnsafeRawPointer(x.baseAddress!)
        let stride = MemoryLayout<Float>.stride
        var acc0 = SIMD16<Float>(), acc1 = SIMD16<Float>()
        var i = 0
        while i + 32 <= x.count {
            let v0 = raw.loadUnaligned(fromByteOffset: i * stride, as: SIMD16<Float>.self)
            let v1 = raw.loadUnaligned(fromByteOffset: (i + 16) * stride, as: SIMD16<Float>.self)
            acc0 += v0 * v0
            acc1 += v1 * v1
            i += 32
        }
        var total = (acc0 + acc1).sum()
        while i < x.count {
            total += x[i] * x[i]
            i += 1
        }
        return total
    }

    /// Sum of squares in Double, element by element (the rare overflow path).
    private static func doubleSumOfSquares(_ x: UnsafeBufferPointer<Float>) -> Double {
        x.reduce(0.0) { $0 + Double($1) * Double($1) }
    }
}
