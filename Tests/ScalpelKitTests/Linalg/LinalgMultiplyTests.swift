import Testing
import ScalpelKit

@Suite struct LinalgMultiplyTests {
    /// `op(a) op(b)` in Double, element by element.
    private func reference(_ a: Matrix, _ b: Matrix, transposeA: Bool, transposeB: Bool) -> [Double] {
        let m = transposeA ? a.cols : a.rows, k = transposeA ? a.rows : a.cols
        let n = transposeB ? b.rows : b.cols
        var c = [Double](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0
                for l in 0..<k {
                    let x = transposeA ? a[l, i] : a[i, l]
                    let y = transposeB ? b[j, l] : b[l, j]
                    sum += Double(x) * Double(y)
                }
                c[i * n + j] = sum
            }
        }
        return c
    }

    @Test func smallProductIsExact() throws {
        let a = Matrix(rows: 2, cols: 2, values: [1, 2, 3, 4])
        let b = Matrix(rows: 2, cols: 2, values: [5, 6, 7, 8])
        #expect(try Linalg.multiply(a, b).values == [19, 22, 43, 50])
        #expect(try Linalg.multiply(a, b, transposeA: true).values == [26, 30, 38, 44])
        #expect(try Linalg.multiply(a, b, transposeB: true).values == [17, 23, 39, 53])
        #expect(try Linalg.multiply(a, b, transposeA: true, transposeB: true).values == [23, 31, 34, 46])
    }

    /// Shapes above the parallel threshold, split by rows (300 x 260) and by columns (70 x 600).
    @Test(arguments: [(300, 70, 260), (70, 120, 600)])
    func blockedProductsMatchReference(m: Int, k: Int, n: Int) throws {
        for (transposeA, transposeB) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = Matrix.standardNormal(rows: transposeA ? k : m, cols: transposeA ? m : k, seed: 1)
            let b = Matrix.standardNormal(rows: transposeB ? n : k, cols: transposeB ? k : n, seed: 2)
            let c = try Linalg.multiply(a, b, transposeA: transposeA, transposeB: transposeB)
            #expect(c.rows == m && c.cols == n)
            let expected = reference(a, b, transposeA: transposeA, transposeB: transposeB)
            let worst = zip(c.values, expected).map { abs(Double($0) - $1) }.max()!
            #expect(worst < 1e-4, "transposeA \(transposeA) transposeB \(transposeB): max error \(worst)")
        }
    }

    @Test func resultDoesNotDependOnThreadCount() throws {
        let a = Matrix.standardNormal(rows: 700, cols: 300, seed: 3)
        let b = Matrix.standardNormal(rows: 700, cols: 90, seed: 4)
        let one = try Linalg.multiply(a, b, transposeA: true, threads: 1)
        for threads in [2, 3, 8] {
            #expect(try Linalg.multiply(a, b, transposeA: true, threads: threads).values == one.values)
        }
    }

    @Test func mismatchedShapesThrow() throws {
        let a = Matrix(rows: 2, cols: 3), b = Matrix(rows: 2, cols: 3)
        #expect(throws: ScalpelError.invalid(file: nil, tensor: nil, reason: "cannot multiply a 2 x 3 matrix by a 2 x 3 matrix")) {
            try Linalg.multiply(a, b)
        }
        #expect(try Linalg.multiply(a, b, transposeB: true).values == [0, 0, 0, 0])
    }

    @Test func dimensionsBeyond32BitsThrow() throws {
        #expect(try Linalg.lapackInt(2_147_483_647, "rows") == Int32.max)
        #expect(throws: ScalpelError.invalid(
            file: nil, tensor: nil, reason: "rows 3000000000 is outside the 32-bit range of BLAS/LAPACK (0...2147483647)"))
        {
            try Linalg.lapackInt(3_000_000_000, "rows")
        }
        #expect(throws: ScalpelError.self) { try Linalg.lapackInt(-1, "columns") }
    }

    @Test func frobeniusNormAccumulatesInDouble() {
        // 1007 ones (not a multiple of the 32-wide loop): exactly sqrt(1007).
        #expect(Linalg.frobeniusNorm(Matrix(rows: 19, cols: 53, values: .init(repeating: 1, count: 1007))) == Double(1007).squareRoot())
        #expect(Linalg.frobeniusNorm(Matrix(rows: 1, cols: 2, values: [3, -4])) == 5)
        // Squares beyond Float's range stay finite.
        #expect(Linalg.sumOfSquares(Matrix(rows: 1, cols: 2, values: [1e30, 1e30])) == 2 * Double(Float(1e30)) * Double(Float(1e30)))
        var values = [Float](repeating: 0.5, count: 100)
        values[77] = .infinity
        #expect(Linalg.sumOfSquares(Matrix(rows: 10, cols: 10, values: values)) == .infinity)
        values[12] = .nan
        #expect(Linalg.sumOfSquares(Matrix(rows: 10, cols: 10, values: values)).isNaN)
    }
}
