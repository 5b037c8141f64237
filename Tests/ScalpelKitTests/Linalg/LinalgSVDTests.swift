import Testing
import Foundation
import ScalpelKit

@Suite struct LinalgSVDTests {
    @Test func orthonormalizedColumnsSpanTheInput() throws {
        let y = Matrix.standardNormal(rows: 300, cols: 40, seed: 5)
        let q = try Linalg.orthonormalizeColumns(y)
        #expect(q.rows == 300 && q.cols == 40)
        #expect(try LinalgTestMatrix.orthonormalityDefect(columnsOf: q) < 1e-5)
        // Q Q^T Y = Y.
        let projected = try Linalg.multiply(q, try Linalg.multiply(q, y, transposeA: true))
        #expect(LinalgTestMatrix.relativeDifference(y, projected) < 1e-5)
    }

    @Test func rankDeficientInputStillGivesOrthonormalColumns() throws {
        var y = Matrix.standardNormal(rows: 50, cols: 6, seed: 6)
        for i in 0..<50 {
            y[i, 3] = y[i, 0]  // duplicate column
            y[i, 5] = 0  // zero column
        }
        #expect(try LinalgTestMatrix.orthonormalityDefect(columnsOf: Linalg.orthonormalizeColumns(y)) < 1e-5)
    }

    @Test func qrOfAWideMatrixThrows() {
        #expect(throws: ScalpelError.invalid(file: nil, tensor: nil, reason: "QR needs rows >= columns, got a 3 x 4 matrix")) {
            try Linalg.orthonormalizeColumns(Matrix(rows: 3, cols: 4))
        }
    }

    @Test func twoByTwoSingularValues() throws {
        // [[3, 0], [4, 5]]: A^T A = [[25, 20], [20, 25]], eigenvalues 45 and 5.
        let svd = try Linalg.exactSVD(Matrix(rows: 2, cols: 2, values: [3, 0, 4, 5]))
        #expect(abs(svd.singularValues[0] - Float(45).squareRoot()) < 1e-5)
        #expect(abs(svd.singularValues[1] - Float(5).squareRoot()) < 1e-5)
        #expect(svd.frobeniusNormSquared == 50)
        let back = try LinalgTestMatrix.reconstruct(svd)
        for (x, y) in zip(back.values, [Float(3), 0, 4, 5]) { #expect(abs(x - y) < 1e-5) }
    }

    /// Tall and wide matrices with a known spectrum: values, orthonormality, reconstruction.
    @Test(arguments: [(120, 80), (80, 120)])
    func knownSpectrumIsRecovered(rows: Int, cols: Int) throws {
        let spectrum = (0..<80).map { Float(10 * pow(0.93, Double($0))) }
        let a = try LinalgTestMatrix.withSpectrum(spectrum, rows: rows, cols: cols, seed: 7)
        let svd = try Linalg.exactSVD(a)
        #expect(svd.u.rows == rows && svd.u.cols == 80 && svd.vt.rows == 80 && svd.vt.cols == cols)
        let worst = zip(svd.singularValues, spectrum).map { abs($0 - $1) }.max()!
        #expect(worst < 1e-4, "max singular value error \(worst)")
        #expect(try LinalgTestMatrix.orthonormalityDefect(columnsOf: svd.u) < 1e-5)
        #expect(try LinalgTestMatrix.orthonormalityDefect(rowsOf: svd.vt) < 1e-5)
        #expect(LinalgTestMatrix.relativeDifference(a, try LinalgTestMatrix.reconstruct(svd)) < 1e-5)
        #expect(svd.relativeError < 1e-3)
        // Truncation: the error is the optimal one.
        let top = svd.truncated(to: 10)
        #expect(top.singularValues == Array(svd.singularValues[0..<10]))
        #expect(abs(top.relativeError - LinalgTestMatrix.optimalError(spectrum, rank: 10)) < 1e-5)
        #expect(abs(LinalgTestMatrix.relativeDifference(a, try LinalgTestMatrix.reconstruct(top)) - top.relativeError) < 1e-5)
    }

    @Test func nonFiniteOrEmptyInputThrows() {
        #expect(throws: ScalpelError.invalid(file: nil, tensor: nil, reason: "SVD input holds NaN or infinity")) {
            try Linalg.exactSVD(Matrix(rows: 2, cols: 2, values: [1, .nan, 0, 1]))
        }
        #expect(throws: ScalpelError.invalid(file: nil, tensor: nil, reason: "SVD of an empty 0 x 3 matrix")) {
            try Linalg.exactSVD(Matrix(rows: 0, cols: 3))
        }
    }
}
