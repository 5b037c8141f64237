import Foundation
import Testing
import ScalpelKit

/// Randomized vs exact SVD on LoRA-sized low-rank-plus-noise matrices. Opt-in (slow, timing-dependent):
/// `SCALPEL_LINALG_BENCH=1 swift test -c release --filter RandomizedSVDBenchmarkTests`.
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["SCALPEL_LINALG_BENCH"] != nil))
struct RandomizedSVDBenchmarkTests {
    /// Rank 256 signal with singular values 10 * 0.98^i plus Gaussian noise of standard deviation 0.01.
    static func lowRankPlusNoise(rows: Int, cols: Int) throws -> Matrix {
        let signal = try LinalgTestMatrix.withSpectrum(
            (0..<256).map { Float(10 * pow(0.98, Double($0))) }, rows: rows, cols: cols, seed: 21)
        let noise = Matrix.standardNormal(rows: rows, cols: cols, seed: 22)
        return Matrix(rows: rows, cols: cols, values: zip(signal.values, noise.values).map { $0 + 0.01 * $1 })
    }

    /// Best wall time of `repeats` runs, and the last result.
    static func timed<T>(repeats: Int, _ body: () throws -> T) rethrows -> (seconds: Double, result: T) {
        var best = Double.infinity
        var result: T?
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            result = try body()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return (best, result!)
    }

    @Test(arguments: [(2048, 2048), (2048, 5632)])
    func randomizedIsTenTimesFasterAndNearOptimal(rows: Int, cols: Int) throws {
        let a = try Self.lowRankPlusNoise(rows: rows, cols: cols)
        let exact = try Self.timed(repeats: 1) { try Linalg.exactSVD(a) }
        print(String(format: "%d x %d exact sgesdd: %.3f s", rows, cols, exact.seconds))
        for rank in [16, 64] {
            let optimal = exact.result.truncated(to: rank).relativeError
            for threads in [1, 2] {
                let randomized = try Self.timed(repeats: 3) {
                    try RandomizedSVD.decompose(a, rank: rank, options: RandomizedSVDOptions(threads: threads))
                }
                let error = randomized.result.relativeError
                print(String(
                    format: "%d x %d rank %d threads %d: randomized %.3f s (%.0fx faster), error %.5f, optimal %.5f (ratio %.5f)",
                    rows, cols, rank, threads, randomized.seconds, exact.seconds / randomized.seconds, error, optimal,
                    error / optimal))
                #expect(error <= optimal * 1.01)
                #expect(exact.seconds / randomized.seconds >= 10)
            }
        }
    }
}
